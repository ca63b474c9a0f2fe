"""Short typed graph paths from a user's history (or one product) to a product.

The kinds of path, their weights and their length limit are stated in :mod:`kg.query.scoring`.
:class:`PathSearch` works on arrays: the co-occurrence column of the target product is looked
up once, the history items are matched against it (and against each other's rows for two-hop
paths), and only the chosen paths are turned into :class:`~kg.query.types.GraphPath` records.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from gnn.scoring import concat_ranges
from kg.query.index import GraphIndex
from kg.query.scoring import ScoreWeights
from kg.query.types import GraphPath, PathNode, PathStep

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["TWO_HOP_FANOUT", "CoocIndex", "PathSearch"]

#: Default: the intermediate product of a two-hop path is among its source's 32 strongest
#: co-interaction neighbours.
TWO_HOP_FANOUT = 32


@dataclass(frozen=True, eq=False)
class CoocIndex:
    """The model's co-occurrence matrix, by rows and by columns, rescaled per row.

    ``co(i, j) = C[i, j] / max_j' C[i, j']`` (see :mod:`kg.query.scoring`).

    Args:
        matrix: ``(P, P)`` co-occurrence matrix (any scipy sparse format).
    """

    matrix: sp.spmatrix
    csr: sp.csr_matrix = field(init=False)
    csc: sp.csc_matrix = field(init=False)
    _strongest: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        init=False, default_factory=dict, repr=False
    )
    #: rows live interactions changed (:meth:`set_row`); by column, the rows whose overlay
    #: holds an entry the loaded matrix lacks
    _rows: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        init=False, default_factory=dict, repr=False
    )
    _cols: dict[int, set[int]] = field(init=False, default_factory=dict, repr=False)
    #: called before a row, or a column, is read (live: pending changes are built then)
    before_read: Callable[[Iterable[int]], None] | None = field(init=False, default=None)
    before_column: Callable[[int], None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        csr = sp.csr_matrix(self.matrix, dtype=np.float64)
        csr.eliminate_zeros()
        row_max = np.zeros(csr.shape[0], np.float64)
        nonempty = np.diff(csr.indptr) > 0
        row_max[nonempty] = np.maximum.reduceat(csr.data, csr.indptr[:-1][nonempty])
        scale = np.divide(1.0, row_max, out=np.zeros_like(row_max), where=row_max > 0)
        scaled = sp.diags(scale) @ csr
        scaled = sp.csr_matrix(scaled, dtype=np.float32)
        scaled.sort_indices()
        csc = scaled.tocsc()
        csc.sort_indices()
        object.__setattr__(self, "csr", scaled)
        object.__setattr__(self, "csc", csc)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(products j, co(i, j))`` with ``C[i, j] > 0``, ``j`` ascending."""
        if self.before_read is not None:
            self.before_read((i,))
        live = self._rows.get(i)
        if live is not None:
            return live
        lo, hi = self.csr.indptr[i], self.csr.indptr[i + 1]
        return self.csr.indices[lo:hi], self.csr.data[lo:hi]

    def watch(self, rows: Callable[[Iterable[int]], None], column: Callable[[int], None]) -> None:
        """Call ``rows(indices)`` before rows are read and ``column(j)`` before column ``j`` is
        (:mod:`kg.query.live` builds the rows that events changed then)."""
        object.__setattr__(self, "before_read", rows)
        object.__setattr__(self, "before_column", column)

    def set_row(self, i: int, products: np.ndarray, values: np.ndarray) -> None:
        """Replace row ``i`` of ``C`` (``products`` ascending; live interactions, see
        :mod:`kg.query.live`): :meth:`row` and :meth:`column` read it from now on (the
        strongest-neighbour lists of :meth:`strongest` keep the loaded rows)."""
        top = float(values.max()) if values.size else 0.0
        scaled = (values / top if top > 0 else values).astype(np.float32)
        products = np.asarray(products, np.int32)
        for j in np.setdiff1d(products, self.row(i)[0], assume_unique=True).tolist():
            self._cols.setdefault(j, set()).add(i)
        self._rows[i] = (products, scaled)

    def add_products(self, n: int) -> None:
        """Make room for ``n`` new products (empty rows and columns)."""
        size = self.csr.shape[0] + n
        csr = sp.csr_matrix(
            (self.csr.data, self.csr.indices, np.pad(self.csr.indptr, (0, n), mode="edge")),
            shape=(size, size),
        )
        csc = sp.csc_matrix(
            (self.csc.data, self.csc.indices, np.pad(self.csc.indptr, (0, n), mode="edge")),
            shape=(size, size),
        )
        object.__setattr__(self, "csr", csr)
        object.__setattr__(self, "csc", csc)
        for key, (indptr, indices, values) in list(self._strongest.items()):
            self._strongest[key] = (np.pad(indptr, (0, n), mode="edge"), indices, values)

    def strongest(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's ``n`` largest entries, strongest first (ties: lower ``j`` first), as CSR
        arrays ``(indptr, indices, values)``; computed once per ``n`` (one sort of all
        entries), so a query only slices rows."""
        if n not in self._strongest:
            csr = self.csr
            sizes = np.diff(csr.indptr).astype(np.int64)
            rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), sizes)
            order = np.lexsort((-csr.data, rows))  # rows stay in place, strongest first
            rank = np.arange(csr.nnz, dtype=np.int64) - np.repeat(csr.indptr[:-1], sizes)
            keep = order[rank < n]
            indptr = np.zeros(csr.shape[0] + 1, np.int64)
            np.cumsum(np.minimum(sizes, n), out=indptr[1:])
            self._strongest[n] = (indptr, csr.indices[keep], csr.data[keep])
        return self._strongest[n]

    def column(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """``(products x, co(x, j))`` with ``C[x, j] > 0``, ``x`` ascending."""
        if self.before_column is not None:
            self.before_column(j)
        lo, hi = self.csc.indptr[j], self.csc.indptr[j + 1]
        rows, values = self.csc.indices[lo:hi], self.csc.data[lo:hi]
        if not self._rows:
            return rows, values
        changed = {x for x in rows.tolist() if x in self._rows} | self._cols.get(j, set())
        if not changed:
            return rows, values
        merged = dict(zip(rows.tolist(), values.tolist(), strict=True))
        for x in changed:
            products, scaled = self._rows[x]
            k = int(np.searchsorted(products, j))
            merged[x] = float(scaled[k]) if k < products.size and products[k] == j else 0.0
        kept = sorted(x for x, v in merged.items() if v > 0)
        return (np.array(kept, np.int32), np.array([merged[x] for x in kept], np.float32))


_KIND_ORDER = ("co_interaction", "brand", "category", "co_interaction_2hop")
_KIND_RANK = {kind: rank for rank, kind in enumerate(_KIND_ORDER)}
_Found = tuple[float, str, int, int]  # weight, kind, source position, payload


class PathSearch:
    """Paths from one set of sources (a history) to any number of targets.

    What depends on the sources only (their brands, category paths, recency weights and the
    co-occurrence rows of the two-hop sources) is gathered once here; :meth:`paths` then does
    a few vectorised lookups per target.

    Args:
        index: the graph index.
        cooc: the co-occurrence index.
        weights: term weights and the recency decay ``γ``.
        sources: product indices, latest first (a user's history reversed, or one product).
        user: prepend ``(User user)-[:INTERACTED]->`` to every path, when given.
        max_hops: most relationships between a source product and a target.
        two_hop_sources: latest sources searched for two-hop co-interaction paths.
        two_hop_fanout: the intermediate product ``x`` of a two-hop path is among the
            ``two_hop_fanout`` strongest co-interaction neighbours of its source.
    """

    def __init__(
        self,
        index: GraphIndex,
        cooc: CoocIndex,
        weights: ScoreWeights,
        sources: np.ndarray,
        *,
        user: str | None = None,
        max_hops: int = 4,
        two_hop_sources: int = 10,
        two_hop_fanout: int = TWO_HOP_FANOUT,
    ) -> None:
        self.index, self.cooc, self.weights = index, cooc, weights
        self.src = np.asarray(sources, np.int64)
        self.user = user
        self._user_node: PathNode | None = None  # made once, shared by the paths
        self.max_hops = max_hops
        self.decay = weights.recency_decay ** np.arange(self.src.size, dtype=np.float64)
        self.brand = index.brand[self.src]
        self.leaf = index.leaf[self.src]
        self.path = index.cat_path[self.leaf]
        self.depth = index.cat_depth[self.leaf]
        indptr, indices, values = cooc.strongest(two_hop_fanout)
        heads = self.src[:two_hop_sources]
        at, sizes = concat_ranges(indptr[heads], indptr[heads + 1])
        self.mid, self.mid_co = indices[at], values[at]
        self.mid_src = np.repeat(np.arange(heads.size), sizes)

    def paths(self, target: int, max_paths: int = 3) -> list[GraphPath]:
        """Up to ``max_paths`` strongest paths to product ``target``, strongest first.

        The best path of each kind comes first, then the next best of any kind (see
        :mod:`kg.query.scoring` for kinds and weights); empty when nothing links them.
        """
        ix, w, src = self.index, self.weights, self.src
        keep = src != target
        found: list[_Found] = []
        col_rows, col_vals = self.cooc.column(target)
        co_on = w.co_interaction > 0 and col_rows.size > 0
        if co_on:
            pos = np.minimum(np.searchsorted(col_rows, src), col_rows.size - 1)
            for k in np.flatnonzero(keep & (col_rows[pos] == src)):
                co = float(col_vals[pos[k]])
                found.append((self.decay[k] * w.co_interaction * co, "co_interaction", int(k), -1))
        b = int(ix.brand[target])
        if w.brand > 0 and b < ix.n_brands:
            for k in np.flatnonzero(keep & (self.brand == b)):
                found.append((self.decay[k] * w.brand, "brand", int(k), b))
        leaf = int(ix.leaf[target])
        if w.category > 0 and leaf < ix.n_categories and src.size:
            ref = ix.cat_path[leaf]
            shared = ((self.path == ref) & (ref >= 0)).sum(axis=1)
            d_t = int(ix.cat_depth[leaf])
            hops = 2 + (self.depth - shared) + (d_t - shared)
            strength = shared / np.maximum(self.depth, d_t)
            for k in np.flatnonzero(keep & (shared >= 1) & (hops <= self.max_hops)):
                found.append((self.decay[k] * w.category * strength[k], "category", int(k), -1))
        if co_on and self.mid.size:
            found += self._two_hop(target, col_rows, col_vals, keep)
        return [self._build(target, *c) for c in _choose(found, max_paths)]

    def best_paths(self, targets: np.ndarray) -> list[GraphPath | None]:
        """The strongest path to each of ``targets`` (``None`` where nothing links them): the
        same as ``paths(t, 1)`` for each ``t``, with the brand and category matches of all
        targets computed at once (what cross-category results and ``paths=True`` need)."""
        ix, w, src = self.index, self.weights, self.src
        targets = np.asarray(targets, np.int64)
        if src.size == 0 or targets.size == 0:
            return [None] * targets.size
        keep = src[:, None] != targets[None, :]  # (S, T)
        # Best (weight, kind, source position, payload) per target and kind; kinds in order.
        best: list[list[_Found]] = [[] for _ in range(targets.size)]
        b_t = ix.brand[targets]
        if w.brand > 0:
            hit = keep & (self.brand[:, None] == b_t[None, :]) & (b_t < ix.n_brands)[None, :]
            for t in np.flatnonzero(hit.any(axis=0)):
                k = int(np.argmax(hit[:, t]))  # latest source: the largest decay
                best[t].append((self.decay[k] * w.brand, "brand", k, int(b_t[t])))
        leaf_t = ix.leaf[targets]
        if w.category > 0:
            ref = ix.cat_path[np.minimum(leaf_t, ix.n_categories)]  # (T, D)
            valid_t = (leaf_t < ix.n_categories)[None, :]
            shared = ((self.path[:, None, :] == ref[None, :, :]) & (ref >= 0)[None]).sum(axis=2)
            d_t = ix.cat_depth[np.minimum(leaf_t, ix.n_categories)][None, :]
            hops = 2 + (self.depth[:, None] - shared) + (d_t - shared)
            strength = shared / np.maximum(np.maximum(self.depth[:, None], d_t), 1)
            weight = self.decay[:, None] * w.category * strength
            ok = keep & valid_t & (shared >= 1) & (hops <= self.max_hops)
            weight = np.where(ok, weight, -1.0)
            for t in np.flatnonzero(ok.any(axis=0)):
                k = int(np.argmax(weight[:, t]))  # ties: the latest source
                best[t].append((float(weight[k, t]), "category", k, -1))
        if w.co_interaction > 0:
            self._best_co(targets, keep, best)
        # _choose(found, 1)[0] is the first of the ranked list: the smallest rank key
        return [
            self._build(target, *min(found, key=_rank_key)) if found else None
            for target, found in zip(targets.tolist(), best, strict=True)
        ]

    def _best_co(self, targets: np.ndarray, keep: np.ndarray, best: list[list[_Found]]) -> None:
        """Append each target's best direct and best two-hop co-interaction path to ``best``.

        Every product looked up (the sources and the two-hop intermediates) gets a slot in a
        product-sized lookup array; one pass over the co-occurrence columns of all targets
        then finds every (source or intermediate, target) entry. Ties go to the latest
        source, as in :meth:`paths`."""
        csc, n = self.cooc.csc, self.index.n_products
        lo, hi = csc.indptr[targets], csc.indptr[targets + 1]
        if not (hi - lo).any():
            return
        # a few slices: faster than gathering through a concatenated range index
        spans = zip(lo.tolist(), hi.tolist(), strict=True)
        rows = np.concatenate([csc.indices[a:b] for a, b in spans])
        looked_up = np.concatenate([self.src, self.mid])
        slot = np.full(n, -1, np.int32)  # per call: a search may run in several threads
        slot[looked_up] = np.arange(looked_up.size, dtype=np.int32)  # repeats: the last wins
        rep = slot[looked_up]  # the column holding each looked-up product's values
        s = slot[rows]
        entry = np.flatnonzero(s >= 0)
        ends = np.cumsum(hi - lo)
        t_of = np.searchsorted(ends, entry, side="right")
        found_tx = np.zeros((targets.size, looked_up.size), bool)
        value_tx = np.zeros((targets.size, looked_up.size), csc.data.dtype)
        found_tx[t_of, s[entry]] = True
        value_tx[t_of, s[entry]] = csc.data[lo[t_of] + entry - (ends - (hi - lo))[t_of]]
        w_co = self.weights.co_interaction
        cols = rep[: self.src.size]
        hit = found_tx[:, cols].T & keep
        weight = np.where(hit, self.decay[:, None] * w_co * value_tx[:, cols].T, -1.0)
        _append_best(best, hit, weight, "co_interaction", lambda k: (k, -1))
        if not self.mid.size:
            return
        cols = rep[self.src.size :]
        hit = found_tx[:, cols].T
        hit &= self.mid[:, None] != targets[None, :]
        hit &= keep[self.mid_src]
        hit &= (self.mid != self.src[self.mid_src])[:, None]
        k_of = self.mid_src
        weight = np.where(
            hit, (self.decay[k_of] * w_co * self.mid_co)[:, None] * value_tx[:, cols].T, -1.0
        )
        # mids are grouped by source, latest first: the first best is the latest source's
        _append_best(
            best, hit, weight, "co_interaction_2hop", lambda m: (int(k_of[m]), int(self.mid[m]))
        )

    def _two_hop(
        self, target: int, col_rows: np.ndarray, col_vals: np.ndarray, keep: np.ndarray
    ) -> list[_Found]:
        """Best ``h -> x -> target`` path of each two-hop source: ``γ^k w_co co(h,x) co(x,t)``."""
        pos = np.minimum(np.searchsorted(col_rows, self.mid), col_rows.size - 1)
        hit = (col_rows[pos] == self.mid) & (self.mid != target) & keep[self.mid_src]
        hit &= self.mid != self.src[self.mid_src]
        if not hit.any():
            return []
        k_of = self.mid_src[hit]
        weight = (
            self.decay[k_of] * self.weights.co_interaction * self.mid_co[hit] * col_vals[pos[hit]]
        )
        order = np.lexsort((-weight, k_of))  # by source, strongest first
        first = np.unique(k_of[order], return_index=True)[1]
        mids = self.mid[hit][order][first]
        return [
            (float(wt), "co_interaction_2hop", int(k), int(x))
            for wt, k, x in zip(weight[order][first], k_of[order][first], mids, strict=True)
        ]

    def _build(self, target: int, weight: float, kind: str, k: int, payload: int) -> GraphPath:
        if self._user_node is None and self.user is not None:
            self._user_node = PathNode("User", self.user)
        source = int(self.src[k])
        return _build(self.index, source, target, self._user_node, weight, kind, payload)


def _append_best(
    best: list[list[_Found]],
    hit: np.ndarray,
    weight: np.ndarray,
    kind: str,
    where: Callable[[int], tuple[int, int]],
) -> None:
    """Append to ``best[t]`` the first row of column ``t`` of ``weight`` (rows x targets) with
    the largest weight, for each target with a ``hit``; ``where(row)`` gives the path's
    source position and payload."""
    rows = weight.argmax(axis=0)
    values = weight[rows, np.arange(rows.size)].tolist()
    rows_l = rows.tolist()
    for t in np.flatnonzero(hit.any(axis=0)).tolist():
        best[t].append((values[t], kind, *where(rows_l[t])))


def _choose(found: list[_Found], max_paths: int) -> list[_Found]:
    """Best of each kind first, then the next best of any kind; ordered by weight."""
    ranked = sorted(found, key=_rank_key)
    chosen: list[_Found] = []
    kinds: set[str] = set()
    for c in ranked:
        if c[1] not in kinds and len(chosen) < max_paths:
            chosen.append(c)
            kinds.add(c[1])
    for c in ranked:
        if len(chosen) >= max_paths:
            break
        if c not in chosen:
            chosen.append(c)
    return sorted(chosen, key=_rank_key)


def _rank_key(found: _Found) -> tuple[float, int, int]:
    """Stronger first; at equal weight by kind (:data:`_KIND_ORDER`), then the more recent
    source (the smaller position)."""
    return (-found[0], _KIND_RANK[found[1]], found[2])


def _product(index: GraphIndex, i: int) -> PathNode:
    return PathNode("Product", index.product_ids[i], index.titles[i])


def _category(index: GraphIndex, c: int) -> PathNode:
    return PathNode("Category", index.category_ids[c], index.category_names[c])


def _build(
    index: GraphIndex,
    source: int,
    target: int,
    user: PathNode | None,
    weight: float,
    kind: str,
    payload: int,
) -> GraphPath:
    h = _product(index, source)
    j = _product(index, target)
    steps: list[PathStep] = []
    if user is not None:
        steps.append(PathStep("INTERACTED", user, h))
    if kind == "co_interaction":
        steps.append(PathStep("CO_INTERACTED", h, j))
    elif kind == "co_interaction_2hop":
        x = _product(index, payload)
        steps += [PathStep("CO_INTERACTED", h, x), PathStep("CO_INTERACTED", x, j)]
    elif kind == "brand":
        b = PathNode("Brand", index.brand_ids[payload], index.brand_names[payload])
        steps += [PathStep("MADE_BY", h, b), PathStep("MADE_BY", b, j, forward=False)]
    else:
        up = index.cat_path[index.leaf[source]]
        down = index.cat_path[index.leaf[target]]
        shared = int(((up == down) & (down >= 0)).sum())
        ups = [_category(index, int(c)) for c in up[up >= 0][shared - 1 :][::-1]]
        downs = [_category(index, int(c)) for c in down[down >= 0][shared - 1 :]]
        steps.append(PathStep("IN_CATEGORY", h, ups[0]))
        steps += [PathStep("SUBCATEGORY_OF", a, b) for a, b in itertools.pairwise(ups)]
        steps += [
            PathStep("SUBCATEGORY_OF", a, b, forward=False) for a, b in itertools.pairwise(downs)
        ]
        steps.append(PathStep("IN_CATEGORY", downs[-1], j, forward=False))
    return GraphPath(tuple(steps), float(weight), kind)
