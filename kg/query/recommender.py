""":class:`Recommender`: the query layer's one entry point (Python API of the CLI and HTTP API).

    from kg.query import Recommender

    rec = Recommender.load("runs/fusion", "tables/")
    rec.related("p1", k=10)
    rec.recommend("u7", k=10)                 # or rec.recommend(["p1", "p9"]) for a new user
    rec.cross_category("u7", k=10, level=1)
    rec.explain("u7", "p42")
    rec.search("nitrile gloves", user="u7", k=10)

Everything a query needs is indexed in numpy at load (:mod:`kg.query.index`); each call does a
few vectorised passes over the products and a top-k selection. Personalised queries take the
model's score from :class:`gnn.scoring.FusionScorer` and add their graph terms only to the
products that can reach the top k (:mod:`kg.query.pruning`); ``related`` with
``approximate=`` scores candidates only (:mod:`kg.query.candidates`). Scores:
:mod:`kg.query.scoring`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from gnn.scoring import to_ratio
from kg.query import _results as results
from kg.query.base import RecommenderBase, UserRef
from kg.query.paths import PathSearch
from kg.query.pruning import user_totals
from kg.query.relative import relative_scores
from kg.query.scoring import Parts, related_scores, user_scores, weighted_history_terms
from kg.query.search import ProductSearch
from kg.query.types import GraphPath, Recommendation

__all__ = ["BRAND_CANDIDATES", "VOTE_CANDIDATES", "Recommender"]

#: With approximate search, the products of a product's brand join the candidates of its
#: related products when the brand has at most this many.
BRAND_CANDIDATES = 1024
#: With approximate search, the products with the most co-occurrence votes of a user's latest
#: items join the candidates of the personalised queries, up to this many.
VOTE_CANDIDATES = 1024


class Recommender(RecommenderBase):
    """Related, personalised and cross-category products with graph-path explanations.

    Build it with :meth:`load` (a run folder and its tables or Neo4j) or from a fitted model:
    ``Recommender(model, tables, weights=..., text_model=..., text_cache=...)`` (see
    :class:`~kg.query.base.RecommenderBase`). Unknown ids raise
    :class:`~kg.query.UnknownIdError`; ``k`` outside ``1..n_products`` raises ``ValueError``.
    """

    # ------------------------------------------------------------------ queries
    def related(
        self,
        product_id: str,
        k: int = 10,
        *,
        same_category: bool | None = None,
        exclude: Iterable[str] = (),
        paths: bool = False,
    ) -> list[Recommendation]:
        """Products related to ``product_id`` by the related score (:mod:`kg.query.scoring`).

        Args:
            product_id: the product.
            k: most results, ``1 <= k <= n_products``.
            same_category: ``True``: only its leaf category; ``False``: only other leaves
                (and products without a category); ``None``: both.
            exclude: product ids to leave out (the product itself always is).
            paths: attach the strongest graph path from the product to each result.
        """
        i = self._product(product_id)
        self._check_k(k)
        top, scores, parts = self._rank_related(i, k, same_category, self._blocked(exclude))
        found = self._paths(np.array([i]), top, None) if paths else None
        return results.build(self, top, scores, parts, "related", product_id, found)

    def related_many(
        self, product_ids: Sequence[str], k: int = 10, *, block: int = 64
    ) -> Iterator[tuple[str, list[Recommendation]]]:
        """``related(p, k)`` of each product, computed ``block`` products at a time.

        The cosines of a block come from one matrix product, so this is much faster per
        product than calling :meth:`related` in a loop (used by the Neo4j write-back).

        Yields:
            ``(product_id, results)`` in the order of ``product_ids``.
        """
        self._check_k(k)
        index = [self._product(p) for p in product_ids]
        for lo in range(0, len(index), block):
            rows = index[lo : lo + block]
            cos = self.vectors[rows] @ self.vectors.T
            for r, i in enumerate(rows):
                total, parts = self._related_total(i, cos[r])
                top = results.top_k(total, k)
                pid = self.index.product_ids[i]
                yield pid, results.build(self, top, total[top], parts(top), "related", pid, None)

    def recommend(
        self,
        user: UserRef,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        categories: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
        paths: bool = False,
    ) -> list[Recommendation]:
        """Personalised products for a user id, or for a new user given as product ids.

        Args:
            user: a user id, or a list of product ids oldest first (a new user).
            k: most results, ``1 <= k <= n_products``.
            exclude_seen: leave out the products in the user's history.
            categories: keep only products under any of these category ids (any level).
            exclude: product ids to leave out.
            paths: attach the strongest path from the history to each result.
        """
        history, user_id = self._history(user)
        self._check_k(k)
        keep = None
        if categories is not None:
            keep = self.index.under([self._category(c) for c in categories])
        blocked = self._blocked(exclude, history if exclude_seen else None)
        top, scores, parts = self._rank_user(history, user_id, k, keep, blocked)
        found = self._paths(history, top, user_id) if paths else None
        return results.build(self, top, scores, parts, "recommend", user_id, found)

    def cross_category(
        self,
        user: UserRef,
        k: int = 10,
        *,
        level: int | None = None,
        exclude: Iterable[str] = (),
    ) -> list[Recommendation]:
        """Personalised products from level-``level`` categories the user has no item in.

        Each result carries the strongest path from the user's history (``None`` when no path
        within the length limit links them; see :mod:`kg.query.scoring`).

        Args:
            user: a user id, or a list of product ids (a new user).
            k: most results, ``1 <= k <= n_products``.
            level: the tree level compared (1 = top-level departments). ``None``: the
                shallowest level with two categories or more (``index.branching_level``), so
                a catalogue under one root category compares its departments at level 2 (at
                level 1 every user has bought in the root).
            exclude: product ids to leave out.

        Raises:
            ValueError: ``level`` is not a level of the tree.
        """
        history, user_id = self._history(user)
        self._check_k(k)
        ix = self.index
        if level is None:
            level = ix.branching_level
        ancestor = ix.ancestor_at(level)
        # a flag per category instead of np.isin: about 60 µs less per query
        taken = np.zeros(ix.n_categories + 1, bool)
        taken[ancestor[ix.leaf[history]]] = True  # -1 (no ancestor that deep): the sentinel
        fresh = (ancestor >= 0) & ~taken[ancestor]
        top, scores, parts = self._rank_user(
            history, user_id, k, fresh, self._blocked(exclude, history)
        )
        paths = self._paths(history, top, user_id)
        return results.build(
            self, top, scores, parts, "cross_category", user_id, paths, level=level
        )

    def explain(self, user: UserRef, product_id: str, max_paths: int = 3) -> list[GraphPath]:
        """Typed graph paths from the user's history to ``product_id``, strongest first.

        Args:
            user: a user id, or a list of product ids (a new user: paths start at a product).
            product_id: the product to explain.
            max_paths: most paths (>= 1).

        Returns:
            up to ``max_paths`` paths (see :mod:`kg.query.scoring` for kinds and weights);
            empty when no short path links them.
        """
        history, user_id = self._history(user)
        j = self._product(product_id)
        if max_paths < 1:
            raise ValueError(f"max_paths must be >= 1, got {max_paths}")
        return self._search(history, user_id).paths(j, max_paths)

    def related_to_new_product(
        self,
        title: str,
        description: str | None = None,
        *,
        category_id: str | None = None,
        brand_id: str | None = None,
        k: int = 10,
        same_category: bool | None = None,
    ) -> list[Recommendation]:
        """Catalogue products related to a product that is not in the graph (cold start).

        The new product's vector comes from :meth:`new_product_vector`; the ranking is the
        related score without the co-interaction term (it has no interactions).

        Args:
            title: the new product's title.
            description: its description.
            category_id: its category (any level), or ``None``.
            brand_id: its brand, or ``None``.
            k: most results, ``1 <= k <= n_products``.
            same_category: ``True``/``False``: only products under / outside ``category_id``.
        """
        self._check_k(k)
        if same_category is not None and category_id is None:
            raise ValueError("same_category needs a category_id")
        v, _, category, brand = self._new_vector(title, description, category_id, brand_id)
        ix = self.index
        total, parts = related_scores(
            ix, self.weights, self.vectors @ v, brand=brand, category=category
        )
        if same_category is not None and category is not None:
            total += np.take(_category_filter(ix.under([category]), same_category), ix.leaf)
        results.leave_out(total, None, self._blocked(()))
        top = results.top_k(total, k)
        return results.build(self, top, total[top], parts(top), "related", title, None)

    def search(
        self,
        query: str,
        user: UserRef | None = None,
        k: int = 10,
        *,
        category: str | None = None,
        brand: str | None = None,
        exclude: Iterable[str] = (),
    ) -> list[Recommendation]:
        """Products for a text query, ranked by BM25, text vectors, the categories and brands
        the query names and, with a user, the personalised score (:mod:`kg.query.search`).

        Args:
            query: the query text (at most 512 characters, with a letter or digit).
            user: a user id, a list of product ids oldest first (a new user), or ``None``.
            k: most results, ``1 <= k <= n_products``.
            category: keep only products under this category id (any level).
            brand: keep only products of this brand id.
            exclude: product ids to leave out.

        Raises:
            ValueError: an empty or too long query, or ``k`` out of range.
        """
        return self.product_search.search(
            query, user, k, category=category, brand=brand, exclude=exclude
        )

    @cached_property
    def product_search(self) -> ProductSearch:
        """The search index (:class:`~kg.query.search.ProductSearch`), built on first use."""
        return ProductSearch(self)

    def new_product_vector(
        self,
        title: str,
        description: str | None = None,
        *,
        category_id: str | None = None,
        brand_id: str | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A new product's unit vector ``(d,)`` in the fused space and how it was made
        (see :mod:`kg.query.cold_start`)."""
        v, info, _, _ = self._new_vector(title, description, category_id, brand_id)
        return v, info

    # ------------------------------------------------------------------ helpers
    def _new_vector(
        self, title: str, description: str | None, category_id: str | None, brand_id: str | None
    ) -> tuple[np.ndarray, dict[str, Any], int | None, int | None]:
        category = None if category_id is None else self._category(category_id)
        brand = None if brand_id is None else self._brand(brand_id)
        v, info = self.new_products.vector(title, description, category, brand, self.weights)
        return v, info, category, brand

    def _rank_user(
        self,
        history: np.ndarray,
        user_id: str | None,
        k: int,
        allowed: np.ndarray | None,
        blocked: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The ``k`` best products by the personalised score: ``(indices, scores, terms)``.

        Exact search prunes (:mod:`kg.query.pruning`); with
        :class:`~kg.query.candidates.ApproximateSearch` only candidates are scored (those of
        :meth:`_user_candidates`), the probe doubling while fewer than ``k`` may be ranked."""
        user_index = self._model_users.get(user_id) if user_id is not None else None
        clusters = self.user_clusters
        if clusters is not None and self.approximate is not None and self.weights.model > 0:
            scorer = self.scorer
            terms = weighted_history_terms(self.index, history, self.weights)
            query = scorer.inner_product_query(history, user_index)
            votes = scorer.votes(history) if scorer.weights.beta > 0.0 else None
            n_probe = self.approximate.n_probe_user
            while True:
                products, z = self._user_candidates(
                    history, user_index, query, n_probe, votes, allowed
                )
                total, parts = user_scores(
                    self.index, self.weights, to_ratio(z), history,
                    allowed=allowed, products=products, terms=terms,
                )  # fmt: skip
                results.leave_out(total, products, blocked)
                local = results.top_k(total, k)
                if local.size >= k or n_probe >= clusters.n_lists:
                    return products[local], total[local], parts(local)
                n_probe *= 2
        m = relative_scores(self.scorer, history, user_index)
        products, total, parts = user_totals(
            self.index, self.weights, m, history, k, allowed=allowed, blocked=blocked
        )
        local = results.top_k(total, k)
        top = local if products is None else products[local]
        return top, total[local], parts(local)

    def _user_candidates(
        self,
        history: np.ndarray,
        user_index: int | None,
        query: np.ndarray,
        n_probe: int,
        votes: tuple[np.ndarray, np.ndarray] | None,
        allowed: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(products ascending, their log scores z)`` of approximate personalised search:
        the members of the ``n_probe`` clusters that score best against the user's ``query``
        (scored by the contiguous scan of their rows, plus the votes), the
        :data:`VOTE_CANDIDATES` products with the most co-occurrence ``votes`` of the latest
        items (of those in ``allowed`` categories) and the products added after the index was
        built (both scored by gathering their rows)."""
        clusters, ix, scorer = self.user_clusters, self.index, self.scorer
        assert clusters is not None
        probed = clusters.probe(query, n_probe)
        members, z = clusters.scan(probed, query)
        order = np.argsort(members)
        members, z = members[order], z[order]
        stale = scorer.popularity_changed[members]  # their rows in the index are stale
        if stale.any():
            none = (np.zeros(0, np.int64), np.zeros(0))  # the votes are added below
            z[stale] = scorer.log_scores_at(history, members[stale], user_index, votes=none)
        extras = []
        if votes is not None and votes[0].size:
            scorer.add_votes(z, members, votes)
            voted, values = votes
            if allowed is not None:
                keep = allowed[np.take(ix.leaf, voted)]
                voted, values = voted[keep], values[keep]
            if voted.size > VOTE_CANDIDATES:
                top = np.argpartition(values, voted.size - VOTE_CANDIDATES)[-VOTE_CANDIDATES:]
                voted = np.sort(voted[top])
            extras.append(voted)
        indexed = clusters.assign.size
        if ix.n_products > indexed:  # added live
            extras.append(np.arange(indexed, ix.n_products))
        if not extras:
            return members, z
        extra = clusters.outside(probed, np.concatenate(extras))
        z_extra = scorer.log_scores_at(history, extra, user_index, votes=votes)
        products = np.concatenate([members, extra])
        order = np.argsort(products)
        return products[order], np.concatenate([z, z_extra])[order]

    def _personal(
        self, history: np.ndarray, user_id: str | None, products: np.ndarray
    ) -> np.ndarray:
        """``(n,)`` float32: the personalised score ``s(u, j)`` that :meth:`recommend` ranks
        by (:mod:`kg.query.scoring`), of ``products`` only; the user term of :meth:`search`."""
        user_index = self._model_users.get(user_id) if user_id is not None else None
        m = relative_scores(self.scorer, history, user_index).at(products)
        total, _ = user_scores(self.index, self.weights, m, history, products=products)
        return total

    def _rank_related(
        self, i: int, k: int, same_category: bool | None, blocked: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The ``k`` best products by the related score to product ``i``: ``(indices, scores,
        terms)``.

        Exact search scores every product. With
        :class:`~kg.query.candidates.ApproximateSearch` it scores the members of the clusters
        probed and :meth:`_related_candidates`; when fewer than ``k`` of them may be ranked (a
        category filter, exclusions), the probe doubles until ``k`` are found or every
        cluster is probed."""
        ix, clusters, v = self.index, self.product_clusters, self.vectors[i]
        mask = None
        if same_category is not None:
            same = np.zeros(ix.n_categories + 1, bool)
            same[ix.leaf[i]] = ix.leaf[i] < ix.n_categories
            mask = _category_filter(same, same_category)
        extra = None if clusters is None else self._related_candidates(i)
        n_probe = 0 if self.approximate is None else self.approximate.n_probe
        while True:
            products = None
            if clusters is None:
                cos = self.vectors @ v
            else:
                probed = clusters.probe(v, n_probe)
                products, cos = clusters.search(v, probed, extra, vectors=self.vectors)
            total, parts = self._related_total(i, cos, products)
            results.leave_out(total, products, blocked)
            if mask is not None:
                total += np.take(mask, ix.leaf if products is None else ix.leaf[products])
            local = results.top_k(total, k)
            if clusters is None or local.size >= k or n_probe >= clusters.n_lists:
                break
            n_probe *= 2
        top = local if products is None else products[local]
        return top, total[local], parts(local)

    def _related_candidates(self, i: int) -> np.ndarray:
        """Products the related graph terms favour most, which join the probed clusters'
        members in approximate search: product ``i``'s co-occurrence neighbours, the products
        of its leaf category, and of its brand when it has at most :data:`BRAND_CANDIDATES`,
        and the products added after the index was built (a product can appear twice)."""
        ix = self.index
        groups = [self.cooc.row(i)[0]]
        leaf, brand = int(ix.leaf[i]), int(ix.brand[i])
        if leaf < ix.n_categories:
            groups.append(ix.products_of_leaf(leaf))
        if brand < ix.n_brands and ix.products_of_brand(brand).size <= BRAND_CANDIDATES:
            groups.append(ix.products_of_brand(brand))
        clusters = self.product_clusters
        if clusters is not None and ix.n_products > clusters.assign.size:  # added live
            groups.append(np.arange(clusters.assign.size, ix.n_products))
        return np.concatenate(groups)

    def _related_total(
        self, i: int, cos: np.ndarray, products: np.ndarray | None = None
    ) -> tuple[np.ndarray, Parts]:
        """Related scores to product ``i`` of every product (or of ``products``, ascending);
        ``i`` itself scores ``-inf``."""
        ix = self.index
        total, parts = related_scores(
            ix,
            self.weights,
            cos,
            brand=int(ix.brand[i]),
            category=int(ix.leaf[i]),
            co=self.cooc.row(i),
            products=products,
        )
        results.leave_out(total, products, np.array([i]))
        return total, parts

    def _search(self, history: np.ndarray, user: str | None) -> PathSearch:
        """Path search from the latest ``explain_history`` items of ``history`` (oldest first)."""
        sources = history[::-1][: self.explain_history]
        return PathSearch(self.index, self.cooc, self.weights, sources, user=user)

    def _paths(
        self, history: np.ndarray, top: np.ndarray, user: str | None
    ) -> list[GraphPath | None]:
        return self._search(history, user).best_paths(top)


def _category_filter(inside: np.ndarray, wanted: bool) -> np.ndarray:
    """``(C + 1,)`` float32 to add to scores by category: 0 where ``inside == wanted``,
    ``-inf`` elsewhere (gather it with ``index.leaf``)."""
    return np.where(inside == wanted, 0.0, -np.inf).astype(np.float32)
