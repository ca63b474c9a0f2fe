"""Live events applied to a loaded :class:`~kg.query.Recommender`, in place.

:class:`LiveState` takes the events :class:`ingest.events.EventLog` reads back from Neo4j (in
sequence order) and changes what the queries read:

* **interactions**: the user's history gets the product at the end (a new user is created), so
  ``recommend``, ``cross_category`` and ``explain`` see it at once; the co-occurrence counts
  change as training counted them (:mod:`gnn.baselines.cooccurrence`: every earlier item within
  ``window`` positions forms a pair with it, weighted ``distance_decay ** (d - 1)``, plus
  ``backward_weight`` of it the other way, each row renormalised by its raw sum to the power
  ``normalize``), in the model's blend and in ``related``'s co-interaction term; the product's
  popularity grows by one interaction;
* **new products**: placed in the model's terms from their text, category and brand
  (:func:`gnn.new_products.place_product`) and appended to every per-product array and index:
  they can be recommended, listed as related and explained from then on;
* **product changes**: availability (an unavailable or retired product leaves every ranking),
  and the category, brand and title of a known product;
* an interaction whose ``(user, order)`` the loaded graph already holds is skipped, so replaying
  every event over a snapshot that already contains some of them changes nothing.

What stays as loaded until the next restart (documented limits): the co-occurrence columns and
strongest-neighbour lists that two-hop explanation paths read, the clusters of the approximate
``related`` search (new products still reach it through their category and brand), and the
normaliser of popularity (the most popular product's count at load).

:meth:`LiveState.apply` returns what changed (:class:`Touched`), for the precomputed answers
(:mod:`kg.query.answers`) to invalidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.compute as pc

from gnn.new_products import place_product
from ingest import schema
from ingest.sources.categories import PATH_JOINER

if TYPE_CHECKING:
    from ingest.events import AppliedEvent
    from kg.query.recommender import Recommender

__all__ = ["LiveState", "Touched"]


@dataclass
class Touched:
    """What a batch of events changed.

    Attributes:
        users: users whose history changed (their personalised answers are stale).
        products: products whose co-occurrence changed (their ``related`` answers are stale).
        catalogue: a product was added or changed (any answer may be stale).
        applied: events applied; skipped: already in the loaded graph, or naming a product
            the model cannot place.
    """

    users: set[str] = field(default_factory=set)
    products: set[str] = field(default_factory=set)
    catalogue: bool = False
    applied: int = 0
    skipped: int = 0


class LiveState:
    """The live changes of one :class:`~kg.query.Recommender` (module docstring).

    Args:
        rec: the recommender to change in place (it reads its histories through this state).
    """

    def __init__(self, rec: Recommender) -> None:
        self.rec = rec
        self.seq = 0
        self.extra: dict[str, list[int]] = {}
        self.unavailable: set[int] = set()
        inter = rec.tables.interactions
        if inter.num_rows:
            top = inter.group_by("user_id").aggregate([("order", "max")])
            self.max_order = dict(
                zip(top["user_id"].to_pylist(), top["order_max"].to_pylist(), strict=True)
            )
            counts = pc.value_counts(inter["product_id"])
            self._pop_scale = float(pc.max(counts.field("counts")).as_py())
        else:
            self.max_order, self._pop_scale = {}, 1.0
        cfg = rec.model.cooc_config
        self.window = int(cfg.get("window", 8))
        self.distance_decay = float(cfg.get("distance_decay", 0.8))
        self.backward = float(cfg.get("backward_weight", 0.25))
        self.normalize = float(cfg.get("normalize", 0.25))
        self._raw: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
        #: raw counts added to co-occurrence rows and not renormalised yet; by column, the rows
        #: they touch. A row is rebuilt when a query reads it (:meth:`flush_rows`): an event
        #: costs a few dictionary updates, and a row read many times between events is built once
        self._pending: dict[int, dict[int, float]] = {}
        self._pending_cols: dict[int, set[int]] = {}
        rec.live = self
        rec.scorer.before_read = self.flush_rows
        rec.cooc.watch(self.flush_rows, self.flush_column)

    # ------------------------------------------------------------------ reading
    def history(self, user: str) -> np.ndarray | None:
        """The live part of ``user``'s history (product indices, oldest first), or ``None``."""
        extra = self.extra.get(user)
        return None if extra is None else np.asarray(extra, np.int64)

    def blocked(self) -> np.ndarray:
        """Product indices no ranking may return (unavailable or retired)."""
        return np.fromiter(sorted(self.unavailable), np.int64, len(self.unavailable))

    def flush_rows(self, rows: Iterable[int]) -> None:
        """Rebuild the co-occurrence rows among ``rows`` that events changed since they were
        last read."""
        if not self._pending:
            return
        for i in rows:
            delta = self._pending.pop(int(i), None)
            if delta:
                self._update_row(int(i), delta)

    def flush_column(self, j: int) -> None:
        """Rebuild the rows that events gave an entry in column ``j``."""
        rows = self._pending_cols.pop(int(j), None)
        if rows:
            self.flush_rows(rows)

    def _flush_all(self) -> None:
        self.flush_rows(list(self._pending))
        self._pending_cols.clear()

    # ------------------------------------------------------------------ applying
    def apply(self, events: Sequence[AppliedEvent]) -> Touched:
        """Apply events (in sequence order; those at or below :attr:`seq` are skipped)."""
        touched = Touched()
        new: list[schema.ProductEvent] = []
        for applied in events:
            if applied.seq <= self.seq:
                continue
            event = applied.event
            if isinstance(event, schema.InteractionEvent):
                if new:  # products first, in order, before an interaction that may name them
                    self._add_products(new, touched)
                    new = []
                self._interaction(event, applied.order, touched)
            elif event.product_id in self.rec.index.product_index:
                self._change_product(event, applied.retired, touched)
            elif not applied.retired:
                new.append(event)
            self.seq = applied.seq
        if new:
            self._add_products(new, touched)
        return touched

    def _interaction(
        self, event: schema.InteractionEvent, order: int | None, touched: Touched
    ) -> None:
        rec, user = self.rec, event.user_id
        j = rec.index.product_index.get(event.product_id)
        last = self.max_order.get(user, -1)
        if j is None or (order is not None and order <= last):
            touched.skipped += 1
            return
        known = user in rec.index.user_index or user in self.extra
        history = rec.history_of(user) if known else np.zeros(0, np.int64)
        self.max_order[user] = last + 1 if order is None else order
        self.extra.setdefault(user, []).append(j)
        touched.users.add(user)
        touched.applied += 1
        self._count_pairs(history, j, touched)
        pop = float(rec.scorer.arrays.popularity[j]) + 1.0 / self._pop_scale
        rec.scorer.set_popularity(j, pop)

    def _count_pairs(self, history: np.ndarray, j: int, touched: Touched) -> None:
        """The co-occurrence pairs a new last item ``j`` forms with the history before it."""
        deltas: dict[int, dict[int, float]] = {}
        for d, a in enumerate(history[::-1][: self.window].tolist(), start=1):
            if a == j:
                continue
            w = self.distance_decay ** (d - 1)
            deltas.setdefault(a, {})[j] = deltas.get(a, {}).get(j, 0.0) + w
            if self.backward:
                deltas.setdefault(j, {})[a] = deltas.get(j, {}).get(a, 0.0) + self.backward * w
        ids = self.rec.index.product_ids
        for row, delta in deltas.items():
            pending = self._pending.setdefault(row, {})
            for k, v in delta.items():
                pending[k] = pending.get(k, 0.0) + v
                self._pending_cols.setdefault(k, set()).add(row)
            touched.products.add(ids[row])

    def _update_row(self, i: int, delta: dict[int, float]) -> None:
        """Add raw counts to co-occurrence row ``i`` and renormalise it."""
        rec = self.rec
        if i not in self._raw:
            products, values = rec.scorer.cooc_row(i)
            total = float(values.sum())
            nu = self.normalize
            # a row of C is raw / S ** nu with S its raw sum, so sum(C) = S ** (1 - nu)
            s = total ** (1.0 / (1.0 - nu)) if total > 0 and nu < 1 else total
            scale = s**nu if s > 0 else 1.0
            self._raw[i] = (products.astype(np.int64), values * scale, s)
        products, raw, s = self._raw[i]
        keys = np.fromiter(sorted(delta), np.int64, len(delta))
        add = np.array([delta[j] for j in keys.tolist()], np.float64)
        at = np.searchsorted(products, keys)
        held = np.zeros(keys.size, bool)
        if products.size:
            held = (at < products.size) & (products[np.minimum(at, products.size - 1)] == keys)
        raw = raw.copy()
        np.add.at(raw, at[held], add[held])
        if not held.all():
            products = np.insert(products, at[~held], keys[~held])
            raw = np.insert(raw, at[~held], add[~held])
        s += float(add.sum())
        self._raw[i] = (products, raw, s)
        values = raw / (s**self.normalize)
        rec.scorer.set_cooc_row(i, products, values)
        rec.cooc.set_row(i, products, values)

    # ------------------------------------------------------------------ products
    def _change_product(self, event: schema.ProductEvent, retired: bool, touched: Touched) -> None:
        rec = self.rec
        i = rec.index.product_index[event.product_id]
        if retired or not event.available:
            self.unavailable.add(i)
        else:
            self.unavailable.discard(i)
            rec.index.titles[i] = event.title or rec.index.titles[i]
            leaf = rec.index.category_index.get(PATH_JOINER.join(event.category))
            brand = rec.index.brand_index.get(event.brand) if event.brand else None
            rec.index.set_product(i, leaf=leaf, brand=brand)
        touched.catalogue = True
        touched.applied += 1

    def _add_products(self, events: list[schema.ProductEvent], touched: Touched) -> None:
        """Place and append new products (their category and brand must be known: a product
        of a category or brand the loaded graph lacks is placed without it)."""
        rec = self.rec
        ix = rec.index
        placed, rows = [], []
        encoder = rec.new_products
        texts = encoder.encode_new([(e.title, e.description, _known(ix.category_index, e),
                                     ix.brand_index.get(e.brand or "")) for e in events])  # fmt: skip
        tv = encoder.text_vectors()
        for event, text in zip(events, texts, strict=True):
            leaf = _known(ix.category_index, event)
            brand = ix.brand_index.get(event.brand or "")
            members = ix.under([leaf])[ix.leaf] if leaf is not None else None
            try:
                parts = place_product(
                    rec.model, tv, text,
                    category_members=None if members is None else np.flatnonzero(members),
                    brand_members=None if brand is None else ix.products_of_brand(brand),
                    neighbours=rec.weights.cold_neighbours,
                    weights=(rec.weights.cold_text, rec.weights.cold_category,
                             rec.weights.cold_brand),
                )  # fmt: skip
            except ValueError:
                touched.skipped += 1
                continue
            placed.append(parts)
            rows.append((event, leaf, brand, text))
            if not event.available:
                self.unavailable.add(ix.n_products + len(rows) - 1)
        if placed:
            # rows as they stand now, then the borrowed columns on top (the raw counts are
            # read back from the grown rows at the next change)
            self._flush_all()
            self._raw.clear()
            rec.add_products(
                [e.product_id for e, _, _, _ in rows],
                [e.title for e, _, _, _ in rows],
                np.array([ix.n_categories if c is None else c for _, c, _, _ in rows]),
                np.array([ix.n_brands if b is None else b for _, _, b, _ in rows]),
                placed,
                np.stack([t for _, _, _, t in rows]),
            )
            touched.catalogue = True
            touched.applied += len(placed)
            # product search's index is built again on its next use, with the new products
            # (their text vectors and category and brand links; not yet their words for BM25)
            vars(rec).pop("product_search", None)


def _known(index: dict[str, int], event: schema.ProductEvent) -> int | None:
    """The deepest category of the event's path that the loaded graph knows, or ``None``."""
    for depth in range(len(event.category), 0, -1):
        c = index.get(PATH_JOINER.join(event.category[:depth]))
        if c is not None:
            return c
    return None
