"""Graph-aware scores of the query layer.

Notation: ``v̂_i`` is product ``i``'s fused vector (the fusion GNN's output,
``FusionRecommender.product_vectors``, L2-normalised); ``C`` is the model's item-item
co-occurrence matrix (counted on the training sequences, rows normalised); ``leaf(i)`` and
``brand(i)`` are a product's leaf category and brand; ``depth(c)`` is a category's depth
(root = 1) and ``shared(a, b)`` the depth of the lowest common ancestor of categories ``a`` and
``b`` (0 when they have none). A product listed in several categories counts in its deepest.

Graph terms, each in ``[0, 1]``:

* category-tree proximity ``cat(a, b) = shared(a, b) / max(depth(a), depth(b))``: 1 for the
  same leaf, 2/3 for sibling leaves at depth 3, 1/3 for leaves of the same department, 0 for
  other departments or a product without a category;
* co-interaction ``co(i, j) = C[i, j] / max_j' C[i, j']`` (0 when ``i`` co-occurs with nothing);
* same brand ``[brand(i) = brand(j)]`` (0 when either has no brand).

**Related products** of ``i`` (:meth:`~kg.query.Recommender.related`)::

    s(i, j) = w_vector · cos(v̂_i, v̂_j) + w_co · co(i, j)
            + w_brand · [brand(i) = brand(j)] + w_category · cat(leaf(i), leaf(j))

**Personalised** (:meth:`~kg.query.Recommender.recommend`). ``h_0`` (latest), ``h_1``, ... are
the user's last ``n_recent`` items, with recency weights ``r_k = γ^k / Σ_k' γ^k'``::

    m(u, j)  = p(u, j) / max_j' p(u, j')     p = the fusion model's final distribution
                                              (gnn.scoring: GNN softmax blended with
                                              co-occurrence, plus the text / KGE similarity
                                              terms)
    ba(u, j) = Σ_k r_k · [brand(h_k) = brand(j)]      brand affinity
    cp(u, j) = Σ_k r_k · cat(leaf(h_k), leaf(j))      category proximity to recent items
    s(u, j)  = w_model · m(u, j) + w_brand · ba(u, j) + w_category · cp(u, j)

With ``w_brand = w_category = 0`` the ranking is the trained model's own.

**Cross-category** (:meth:`~kg.query.Recommender.cross_category`): the personalised score over
the products whose category at tree level ``level`` is not the level-``level`` category of any
item in the user's whole history (products without a category that deep are left out).

**Paths** (:meth:`~kg.query.Recommender.explain`, and the ``path`` of cross-category results).
A path from the ``k``-th most recent history item ``h`` to ``j`` weighs ``γ^k · t``, where ``t``
is the related-score term the path stands for:

* ``(h)-[:CO_INTERACTED]->(j)``: ``t = w_co · co(h, j)``;
* ``(h)-[:CO_INTERACTED]->(x)-[:CO_INTERACTED]->(j)``: ``t = w_co · co(h, x) · co(x, j)``
  (searched from the 10 latest items, ``x`` among the 32 strongest neighbours of ``h``);
* ``(h)-[:MADE_BY]->(b)<-[:MADE_BY]-(j)``: ``t = w_brand``;
* ``(h)-[:IN_CATEGORY]->(leaf)-[:SUBCATEGORY_OF]->...(ancestor)...<-[:IN_CATEGORY]-(j)`` up to
  the lowest common ancestor, at most 4 relationships from ``h`` (so same or sibling leaves):
  ``t = w_category · cat``.

Paths start at the user's 50 latest items (``k`` counts from the latest), with a leading
``(User u)-[:INTERACTED]->`` for a known user; :meth:`~kg.query.Recommender.explain` returns the best path of
each kind first, then the next best of any kind, ordered by weight.

**New product** (:meth:`~kg.query.Recommender.related_to_new_product`; no retraining). ``t`` is
the text vector of the new product, written and encoded like every product's text feature
(``gnn.text``); ``N`` its ``cold_neighbours`` nearest products by text cosine, weighted
``a_j ∝ max(cos(t, t_j), 0)``::

    v = normalise(α_text · unit(Σ_{j∈N} a_j v̂_j) + α_category · unit(mean of v̂ under the
                  category) + α_brand · unit(mean of v̂ of the brand's products))

(parts that do not exist drop out), then ranked with the related formula with ``co = 0`` and the
given brand and category (any level).

Defaults (:class:`ScoreWeights`, set by hand, not fitted): ``w_vector = 1``, ``w_co = 0.5``,
``w_brand = 0.1``, ``w_category = 0.2``, ``w_model = 1``, ``n_recent = 5``, ``γ = 0.8``;
``α_text, α_category, α_brand = 0.5, 0.3, 0.2`` with 10 text neighbours.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kg.query.index import GraphIndex

__all__ = [
    "Parts",
    "ScoreWeights",
    "category_proximity",
    "history_terms",
    "recency_weights",
    "related_scores",
    "user_scores",
    "weighted_history_terms",
]

#: Given result indices ``(k,)``, the weighted score terms of those products by name.
Parts = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class ScoreWeights:
    """Weights of the score terms (see the module docstring).

    Attributes:
        vector: ``w_vector``, cosine of fused vectors (related).
        co_interaction: ``w_co``, rescaled co-occurrence (related, paths).
        brand: ``w_brand``, same brand (related) and brand affinity (recommend).
        category: ``w_category``, category-tree proximity (related and recommend).
        model: ``w_model``, the fusion model's rescaled score (recommend).
        n_recent: history items the recommend graph terms look at.
        recency_decay: ``γ``, weight factor per step back in the history.
        cold_text: ``α_text`` of a new product's vector.
        cold_category: ``α_category`` of a new product's vector.
        cold_brand: ``α_brand`` of a new product's vector.
        cold_neighbours: nearest products by text a new product's vector is built from.
    """

    vector: float = 1.0
    co_interaction: float = 0.5
    brand: float = 0.1
    category: float = 0.2
    model: float = 1.0
    n_recent: int = 5
    recency_decay: float = 0.8
    cold_text: float = 0.5
    cold_category: float = 0.3
    cold_brand: float = 0.2
    cold_neighbours: int = 10

    def __post_init__(self) -> None:
        for name in ("vector", "co_interaction", "brand", "category", "model"):
            if getattr(self, name) < 0:
                raise ValueError(f"ScoreWeights: {name} must be >= 0")
        for name in ("cold_text", "cold_category", "cold_brand"):
            if getattr(self, name) < 0:
                raise ValueError(f"ScoreWeights: {name} must be >= 0")
        if self.cold_text + self.cold_category + self.cold_brand <= 0:
            raise ValueError("ScoreWeights: one of cold_text/category/brand must be > 0")
        if self.n_recent < 1 or self.cold_neighbours < 1:
            raise ValueError("ScoreWeights: n_recent and cold_neighbours must be >= 1")
        if not 0 < self.recency_decay <= 1:
            raise ValueError("ScoreWeights: recency_decay must be in (0, 1]")


def category_proximity(index: GraphIndex, category: int | np.ndarray) -> np.ndarray:
    """``cat(category, ·)`` for every category, ``(C + 1,)`` float32 (sentinel last, 0); for
    an array of categories, one such row each, ``(len(category), C + 1)``.

    Args:
        index: the graph index.
        category: a category index (any level), or ``C`` for "no category" (all zeros); or an
            array of them.
    """
    cats = np.atleast_1d(np.asarray(category, np.int64))
    ref = index.cat_path[cats]  # (L, D)
    ref = np.where(ref >= 0, ref, -2)  # no ancestor that deep: matches nothing (paths pad -1)
    shared = np.zeros((cats.size, index.cat_path.shape[0]), np.float32)
    for d, level in enumerate(index.cat_levels):  # one pass per depth: 2.4x faster than 3-D
        shared += level[None, :] == ref[:, d, None]
    denom = np.maximum(index.cat_depth[None, :], index.cat_depth[cats][:, None])
    out = np.divide(shared, denom, out=np.zeros(shared.shape, np.float32), where=denom > 0)
    return out[0] if np.ndim(category) == 0 else out


def recency_weights(n: int, decay: float) -> np.ndarray:
    """``(n,)`` float64 ``γ^k / Σ γ^k`` for ``k = 0`` (latest) ... ``n - 1``."""
    w = decay ** np.arange(n, dtype=np.float64)
    return w / w.sum() if n else w


def history_terms(
    index: GraphIndex, recent: np.ndarray, weights: ScoreWeights
) -> tuple[np.ndarray, np.ndarray]:
    """Brand affinity ``(B + 1,)`` and category proximity ``(C + 1,)`` of a recent history.

    Args:
        index: the graph index.
        recent: product indices, latest first (at most ``weights.n_recent`` are used).
        weights: gives ``n_recent`` and ``recency_decay``.

    Returns:
        ``(ba, cp)``: ``ba[b] = Σ_k r_k [brand(h_k) = b]``, ``cp[c] = Σ_k r_k cat(leaf(h_k), c)``;
        both 0 at their sentinel entry. Gather with ``ba[index.brand]``, ``cp[index.leaf]``.
    """
    recent = np.asarray(recent, np.int64)[: weights.n_recent]
    r = recency_weights(recent.size, weights.recency_decay)
    ba = np.bincount(index.brand[recent], weights=r, minlength=index.n_brands + 1)
    ba[index.n_brands] = 0.0
    mass_of: dict[int, float] = {}  # a handful of items: a dict is faster than np.unique
    for c, weight in zip(index.leaf[recent].tolist(), r.tolist(), strict=True):
        mass_of[c] = mass_of.get(c, 0.0) + weight
    leaves = np.array(sorted(mass_of), np.int64)
    mass = np.array([mass_of[c] for c in leaves.tolist()], np.float64)
    real = leaves < index.n_categories  # the "no category" sentinel adds nothing
    cp = mass[real] @ _proximity_rows(index, leaves[real]).astype(np.float64)
    return ba.astype(np.float32), cp.astype(np.float32)


def weighted_history_terms(
    index: GraphIndex, history: np.ndarray, weights: ScoreWeights
) -> tuple[np.ndarray, np.ndarray]:
    """``(w_brand · ba, w_category · cp)`` float32 of a history (oldest first): the graph terms
    of the personalised score by brand and by category (:func:`history_terms`)."""
    ba, cp = history_terms(index, history[::-1], weights)
    ba *= np.float32(weights.brand)
    cp *= np.float32(weights.category)
    return ba, cp


#: Up to this many categories (sentinel included) :func:`history_terms` keeps the whole
#: ``cat(·, ·)`` matrix per index (float32: 16 MiB at 2,048) instead of computing its rows.
_CACHED_CATEGORIES = 2048
_PROXIMITY: weakref.WeakKeyDictionary[GraphIndex, np.ndarray] = weakref.WeakKeyDictionary()


def _proximity_rows(index: GraphIndex, categories: np.ndarray) -> np.ndarray:
    """``category_proximity(index, categories)``, from a per-index cache of every row when the
    tree is small enough (about 20x faster for a handful of rows)."""
    if index.n_categories + 1 > _CACHED_CATEGORIES:
        return category_proximity(index, categories)
    full = _PROXIMITY.get(index)
    if full is None:  # two threads may both compute it: the same matrix either way
        full = category_proximity(index, np.arange(index.n_categories + 1))
        _PROXIMITY[index] = full
    return full[categories]


def _sparse_at(idx: np.ndarray, val: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Values of the sparse vector ``(idx ascending, val)`` at positions ``at`` (0 elsewhere)."""
    if idx.size == 0:
        return np.zeros(at.size, np.float32)
    pos = np.minimum(np.searchsorted(idx, at), idx.size - 1)
    return np.where(idx[pos] == at, val[pos], 0.0).astype(np.float32)


def related_scores(
    index: GraphIndex,
    weights: ScoreWeights,
    cos: np.ndarray,
    *,
    brand: int | None,
    category: int | None,
    co: tuple[np.ndarray, np.ndarray] | None = None,
    products: np.ndarray | None = None,
) -> tuple[np.ndarray, Parts]:
    """The related score ``s(i, ·)`` of every product (module docstring).

    Args:
        index: the graph index.
        weights: the weights.
        cos: ``(P,)`` float32 cosine of every product's fused vector with the query's (or
            ``(n,)``, of ``products``).
        brand: the query's brand index, or ``None``.
        category: the query's category index (any level), or ``None``.
        co: ``(products ascending, co(i, ·))`` of the query's co-occurrence row, or ``None``
            (with ``products``, each of its products must be among them).
        products: score only these product indices, ascending (``None``: all).

    Returns:
        ``(total, parts)``: ``total`` float32 over all products (or ``products``);
        ``parts(top)`` gives each term at positions ``top`` of ``total``.
    """
    w = weights
    total = cos * np.float32(w.vector)
    if co is not None:
        at = co[0] if products is None else np.searchsorted(products, co[0])
        total[at] += np.float32(w.co_interaction) * co[1]
    if brand is not None and brand < index.n_brands:
        if products is None:
            total[index.products_of_brand(brand)] += np.float32(w.brand)
        else:
            total += np.float32(w.brand) * (np.take(index.brand, products) == brand)
    cat = index.n_categories if category is None else category
    prox = (w.category * category_proximity(index, cat)).astype(np.float32)
    # np.take: about twice as fast as prox[index.leaf]
    total += np.take(prox, index.leaf if products is None else np.take(index.leaf, products))

    def parts(top: np.ndarray) -> dict[str, np.ndarray]:
        j = top if products is None else products[top]
        out = {"vector": w.vector * cos[top]}
        if co is not None:
            out["co_interaction"] = w.co_interaction * _sparse_at(co[0], co[1], j)
        same = (index.brand[j] == brand) & (brand is not None and brand < index.n_brands)
        out["brand"] = w.brand * same.astype(np.float32)
        out["category"] = prox[index.leaf[j]]
        return out

    return total, parts


def user_scores(
    index: GraphIndex,
    weights: ScoreWeights,
    m: np.ndarray,
    history: np.ndarray,
    *,
    allowed: np.ndarray | None = None,
    products: np.ndarray | None = None,
    terms: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, Parts]:
    """The personalised score ``s(u, ·)`` of every product (module docstring).

    Args:
        index: the graph index.
        weights: the weights.
        m: ``(P,)`` float32 ``m(u, ·)``: the model's blended distribution divided by its
            maximum (:meth:`gnn.scoring.FusionScorer.relative`); or ``(n,)``, of
            ``products``.
        history: the user's product indices, oldest first.
        allowed: ``(C + 1,)`` bool, the categories whose products may be ranked (sentinel
            last: products without a category); the others score ``-inf``. ``None``: all.
        products: score only these product indices (``None``: all).
        terms: :func:`weighted_history_terms` of ``history``, when already computed.

    Returns:
        ``(total, parts)``: ``total`` float32 over all products (or ``products``);
        ``parts(top)`` gives each term at positions ``top`` of ``total``.
    """
    w = weights
    scale = np.float32(w.model)
    ba, cp = weighted_history_terms(index, history, w) if terms is None else terms
    leaf = index.leaf if products is None else np.take(index.leaf, products)
    if allowed is None:
        total = np.take(cp, leaf)  # np.take: about twice as fast as cp[index.leaf]
    else:  # the category filter rides on the same per-product gather
        total = np.take(np.where(allowed, cp, np.float32(-np.inf)).astype(np.float32), leaf)
    total += m if scale == 1 else scale * m  # no temporary array for the default weight
    if products is None:
        for b in np.flatnonzero(ba[: index.n_brands]):
            total[index.products_of_brand(int(b))] += ba[b]
    else:
        total += np.take(ba, np.take(index.brand, products))  # ba is 0 at the sentinel

    def parts(top: np.ndarray) -> dict[str, np.ndarray]:
        j = top if products is None else products[top]
        return {
            "model": scale * m[top],
            "brand": ba[index.brand[j]],
            "category": cp[index.leaf[j]],
        }

    return total, parts
