"""The state and lookups of :class:`~kg.query.Recommender`: loading, indexes, id checks.

:class:`RecommenderBase` loads a fusion run and its graph and indexes everything a query needs
in numpy (:mod:`kg.query.index`); :class:`~kg.query.Recommender` adds the queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gnn.fusion_io import FusionArrays
from gnn.scoring import FusionScorer
from kg.query.candidates import ApproximateSearch, ClusterIndex
from kg.query.cold_start import NewProductEncoder
from kg.query.index import build_index
from kg.query.paths import TWO_HOP_FANOUT, CoocIndex
from kg.query.pruning import PRUNE_ABOVE
from kg.query.scoring import ScoreWeights
from kg.query.types import UnknownIdError

if TYPE_CHECKING:
    from typing import Self

    from gnn.fusion import FusionRecommender
    from gnn.new_products import NewProductParts
    from ingest.tables import GraphTables
    from kg.neo4j.settings import Neo4jSettings
    from kg.query.live import LiveState

__all__ = ["RecommenderBase", "UserRef"]

#: A user id, or a new user's product ids (oldest first).
UserRef = str | Sequence[str]


class RecommenderBase:
    """A loaded fusion model with its graph indexed for queries (see :class:`~kg.query.Recommender`).

    Args:
        model: the model: its arrays (:class:`~gnn.fusion_io.FusionArrays`, what
            :meth:`load` reads, without PyTorch), or a fitted
            :class:`~gnn.fusion.FusionRecommender` (its :meth:`arrays`). :attr:`model` holds
            the arrays either way (every array that decides a score), :attr:`scorer` their
            :class:`~gnn.scoring.FusionScorer`.
        tables: the graph; its products must be the model's products.
        weights: score weights (default :class:`ScoreWeights`).
        text_model: BERT folder for new products (default: the model's text encoder).
        text_cache: text cache root for new products (default ``~/.kgrec/cache/text``).
        explain_history: latest history items paths are searched from.
        approximate: score only candidate products (:mod:`kg.query.candidates`); ``None``:
            every product (exact). The cluster indexes (one for ``related``, one for the
            personalised queries) are built here, about 1.5 s each at 100k products.

    Raises:
        ValueError: the tables' products differ from the model's.
    """

    def __init__(
        self,
        model: FusionArrays | FusionRecommender,
        tables: GraphTables,
        *,
        weights: ScoreWeights | None = None,
        text_model: str | Path | None = None,
        text_cache: str | Path | None = None,
        explain_history: int = 50,
        approximate: ApproximateSearch | None = None,
    ) -> None:
        if not isinstance(model, FusionArrays):
            model = model.arrays()
        self.model = model
        self.tables = tables  # the graph, kept for its fingerprint (kg.query.answers)
        self.weights = weights or ScoreWeights()
        self.index = build_index(tables, model.node_ids["product"])
        lookups = ("product_index", "user_index", "category_index", "brand_index", "cat_levels")
        for lookup in lookups:
            getattr(self.index, lookup)  # built now, not by the first query
        self.index.products_of_brand(0)
        self.index.products_of_leaf(0)
        raw = model.product_vectors.astype(np.float32)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        self.vectors = np.ascontiguousarray(np.divide(raw, norms, where=norms > 0, out=raw))
        self.cooc = CoocIndex(model.cooc)
        self.cooc.strongest(TWO_HOP_FANOUT)  # the two-hop path index, built now
        self.scorer = FusionScorer(model)
        self.explain_history = explain_history
        self.approximate = approximate
        self.product_clusters: ClusterIndex | None = None
        #: the inverted file of the personalised queries (``None``: they are exact)
        self.user_clusters: ClusterIndex | None = None
        if approximate is not None:
            self.product_clusters = ClusterIndex(self.vectors, approximate)
            rows = self.scorer.inner_product_rows() if self.n_products > PRUNE_ABOVE else None
            if rows is not None:
                self.user_clusters = ClusterIndex(rows, approximate)
        self._model_users = {u: i for i, u in enumerate(model.node_ids.get("user", []))}
        #: live events applied to this recommender (:class:`~kg.query.live.LiveState`), if any
        self.live: LiveState | None = None
        self.new_products = NewProductEncoder(
            self.index,
            self.vectors,
            tables,
            feature_info=model.feature_info,
            features=model.features,
            text_model=text_model,
            text_cache=text_cache,
        )

    @classmethod
    def load(
        cls,
        run_folder: str | Path,
        tables: GraphTables | str | Path | None = None,
        *,
        neo4j: Neo4jSettings | None = None,
        weights: ScoreWeights | None = None,
        text_model: str | Path | None = None,
        text_cache: str | Path | None = None,
        show_progress: bool = False,
        approximate: ApproximateSearch | None = None,
    ) -> Self:
        """Load a fusion run folder (:meth:`~gnn.fusion_io.FusionArrays.load`: numpy only, no
        PyTorch import) and its graph.

        Args:
            run_folder: what ``kgrec train`` wrote (``config.json``, ``model.safetensors``...).
            tables: the graph, or a folder of saved tables; ``None`` with ``neo4j`` given
                exports it from that Neo4j.
            neo4j: where to export the graph from when ``tables`` is ``None``.
            weights, text_model, text_cache, approximate: see :class:`Recommender`.
            show_progress: progress bars of the Neo4j export.

        Raises:
            ValueError: neither tables nor Neo4j settings given, or other products than the
                model's.
        """
        from ingest.tables import GraphTables

        if tables is None:
            if neo4j is None:
                raise ValueError("Recommender.load needs tables (or a folder) or Neo4j settings")
            from ingest.neo4j_export import export_graph
            from kg.neo4j.driver import open_driver

            with open_driver(neo4j) as driver:
                tables = export_graph(driver, database=neo4j.database, show_progress=show_progress)
        elif not isinstance(tables, GraphTables):
            tables = GraphTables.load(tables)
        model = FusionArrays.load(run_folder)
        return cls(
            model,
            tables,
            weights=weights,
            text_model=text_model,
            text_cache=text_cache,
            approximate=approximate,
        )

    # ------------------------------------------------------------------ lookups
    @property
    def search_mode(self) -> str:
        """``"exact"``, or ``"approximate: n_probe of n_lists clusters"`` (of ``related``),
        followed by ``"; personalised: n_probe_user of L clusters"`` when the personalised
        queries are approximate too."""
        if self.approximate is None or self.product_clusters is None:
            return "exact"
        mode = (
            f"approximate: {self.approximate.n_probe} of {self.product_clusters.n_lists} clusters"
        )
        if self.user_clusters is not None:
            mode += (
                f"; personalised: {self.approximate.n_probe_user} of "
                f"{self.user_clusters.n_lists} clusters"
            )
        return mode

    @property
    def n_products(self) -> int:
        """Number of products."""
        return self.index.n_products

    def _product(self, product_id: str) -> int:
        i = self.index.product_index.get(product_id)
        if i is None:
            raise UnknownIdError("product", product_id)
        return i

    def _check_k(self, k: int, name: str = "k") -> None:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {k!r}")
        if not 1 <= k <= self.n_products:
            raise ValueError(f"{name} must be between 1 and {self.n_products}, got {k}")

    def history_of(self, user: str) -> np.ndarray:
        """User ``user``'s history, oldest first (int64 product indices), live events included.

        Raises:
            UnknownIdError: no such user.
        """
        u = self.index.user_index.get(user)
        extra = None if self.live is None else self.live.history(user)
        if u is None:
            if extra is None:
                raise UnknownIdError("user", user)
            return extra
        base = self.index.history(u).astype(np.int64)
        return base if extra is None else np.concatenate([base, extra])

    def _history(self, user: UserRef) -> tuple[np.ndarray, str | None]:
        """``(product indices oldest first, user id or None for a new user)``."""
        if isinstance(user, str):
            return self.history_of(user), user
        items = [self._product(p) for p in user]
        if not items:
            raise ValueError("a new user needs at least one product id")
        return np.asarray(items, np.int64), None

    def _blocked(self, exclude: Iterable[str], seen: np.ndarray | None = None) -> np.ndarray:
        """Product indices to leave out: ``exclude`` (ids) and ``seen``."""
        blocked = np.asarray([self._product(p) for p in exclude], np.int64)
        parts = [blocked]
        if seen is not None:
            parts.append(seen)
        if self.live is not None and self.live.unavailable:
            parts.append(self.live.blocked())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def add_products(
        self,
        ids: Sequence[str],
        titles: Sequence[str | None],
        leaf: np.ndarray,
        brand: np.ndarray,
        parts: Sequence[NewProductParts],
        text_vectors: np.ndarray,
    ) -> None:
        """Append new products to every array a query reads (live: :mod:`kg.query.live`).

        Args:
            ids, titles: the products.
            leaf, brand: their leaf category and brand indices (the index's sentinels for none).
            parts: their arrays in the model's terms (:func:`gnn.new_products.place_product`).
            text_vectors: ``(n, t)`` their L2-normalised text vectors.
        """
        self.index.add_products(ids, titles, leaf, brand)
        self.model.node_ids["product"].extend(ids)
        self.scorer.add_products(parts)
        raw = np.stack([p.vector for p in parts]).astype(np.float32)
        raw /= np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
        self.vectors = np.ascontiguousarray(np.vstack([self.vectors, raw]))
        self.cooc.add_products(len(parts))
        self.new_products.add_products(self.vectors, text_vectors)

    def _brand(self, brand_id: str) -> int:
        b = self.index.brand_index.get(brand_id)
        if b is None:
            raise UnknownIdError("brand", brand_id)
        return b

    def _category(self, category_id: str) -> int:
        c = self.index.category_index.get(category_id)
        if c is None:
            raise UnknownIdError("category", category_id)
        return c
