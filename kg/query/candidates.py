"""Approximate candidate search for related products: an inverted file over product vectors.

An exact ``related`` query scores all products; at 100k products that scan is most of its
time. With :class:`ApproximateSearch` the :class:`~kg.query.Recommender` scores only
candidates:

* the products of the ``n_probe`` clusters (of ``n_lists``, k-means) whose centroids score
  best against the query product's fused vector;
* plus the products the sparse and graph terms favour most: the query product's co-occurrence
  neighbours and the products of its leaf category and brand (a brand only up to
  :data:`~kg.query.recommender.BRAND_CANDIDATES` products).

Each candidate gets its exact score (:mod:`kg.query.scoring`). Products outside the
candidates are not ranked, so results can differ from the exact ones;
``bench/bench_query.py`` measures how often (recall of the exact top 10). When a filter
leaves fewer than ``k`` candidates the probe doubles until ``k`` are found. With
``n_probe = n_lists`` every product is a candidate and the ranking is the exact one.

Personalised queries (``recommend``, ``cross_category``) use a second inverted file, over
the rows of :meth:`gnn.scoring.FusionScorer.inner_product_rows`: the model's log score of a
product is the inner product of its row with the user's query vector, up to the sparse
co-occurrence votes. Their candidates are the members of the ``n_probe_user`` clusters whose
centroids score best against the user's query vector, plus the products with the most
co-occurrence votes of the user's latest items (up to
:data:`~kg.query.recommender.VOTE_CANDIDATES`), and the products added live after the index
was built. The members are scored by a contiguous scan of their rows (plus the votes; products
whose popularity live events changed since the index was built are scored anew), the others by gathering their rows; with the graph terms added,
each candidate has its model score up to float rounding; the model's score is
divided by the best candidate's (the exact ranking divides by the best product's, which is
among the candidates unless the probe missed it). A model with the ``linear`` blend (a log of
a sum, no inner product) is ranked exactly, as are catalogues up to
:data:`~kg.query.pruning.PRUNE_ABOVE` products (the exact pruned ranking is as fast there).
``bench/bench_scale.py`` measures the recall of the exact top 10 at a million products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from gnn.scoring import concat_ranges

__all__ = ["ApproximateSearch", "ClusterIndex"]


@dataclass(frozen=True)
class ApproximateSearch:
    """Settings of the approximate candidate search.

    Attributes:
        n_lists: clusters; ``None``: ``round(sqrt(P))`` (at least 1). Clusters the k-means
            leaves without members (identical vectors) are dropped.
        n_probe: clusters probed per ``related`` query.
        n_probe_user: clusters probed per personalised query (its clusters are of the rows of
            :meth:`~gnn.scoring.FusionScorer.inner_product_rows`).
        iterations: k-means iterations.
        train_size: products the k-means is fitted on (a seeded sample; all when fewer);
            every product is then assigned to its nearest centroid.
        seed: seed of the k-means sample and initial centroids.
    """

    n_lists: int | None = None
    n_probe: int = 8
    n_probe_user: int = 2
    iterations: int = 20
    train_size: int = 50_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_lists is not None and self.n_lists < 1:
            raise ValueError("ApproximateSearch: n_lists must be >= 1")
        if min(self.n_probe, self.n_probe_user, self.iterations, self.train_size) < 1:
            raise ValueError(
                "ApproximateSearch: n_probe, n_probe_user, iterations, train_size must be >= 1"
            )

    def lists_for(self, n_products: int) -> int:
        """The number of clusters for ``n_products`` products."""
        n = self.n_lists if self.n_lists is not None else round(math.sqrt(n_products))
        return max(1, min(n, n_products))


class ClusterIndex:
    """Products grouped by k-means cluster of their vectors, for probing by inner product.

    Args:
        vectors: ``(P, d)`` float32 product vectors (row ``j`` is product ``j``).
        settings: cluster count, k-means iterations, sample and seed.

    Attributes:
        centroids: ``(L, d)`` float32.
        order: ``(P,)`` product indices grouped by cluster (ascending within each).
        starts: ``(L + 1,)`` cluster ``c`` is ``order[starts[c]:starts[c + 1]]``.
        assign: ``(P,)`` each product's cluster.
        vectors: the product vectors, by product.
        grouped: ``vectors[order]``, so a cluster's vectors are one contiguous slice.
    """

    def __init__(self, vectors: np.ndarray, settings: ApproximateSearch) -> None:
        x = np.ascontiguousarray(vectors, np.float32)
        n_lists = settings.lists_for(x.shape[0])
        rng = np.random.default_rng(settings.seed)
        sample = x
        if x.shape[0] > settings.train_size:
            sample = x[np.sort(rng.choice(x.shape[0], settings.train_size, replace=False))]
        n_lists = min(n_lists, sample.shape[0])
        centroids = sample[rng.choice(sample.shape[0], n_lists, replace=False)].copy()
        rows, sample64 = np.arange(sample.shape[0]), sample.astype(np.float64)
        for _ in range(settings.iterations):
            near = _nearest(sample, centroids)
            counts = np.bincount(near, minlength=n_lists)
            # Cluster sums as a sparse one-hot product: 30x faster than np.add.at.
            onehot = sp.csr_matrix((np.ones(rows.size), (near, rows)), shape=(n_lists, rows.size))
            sums = np.asarray(onehot @ sample64)
            filled = counts > 0  # an empty cluster keeps its centroid
            centroids[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        assign = _nearest(x, centroids)
        used, assign = np.unique(assign, return_inverse=True)  # no cluster without members
        self.centroids = centroids[used]
        self.assign = assign.reshape(-1)
        n_lists = used.size
        self.order = np.argsort(self.assign, kind="stable")
        self.starts = np.searchsorted(self.assign[self.order], np.arange(n_lists + 1))
        self.sizes = np.diff(self.starts)
        self.vectors = x
        self.grouped = np.ascontiguousarray(x[self.order])

    @property
    def n_lists(self) -> int:
        """Number of clusters."""
        return int(self.centroids.shape[0])

    def probe(self, query: np.ndarray, n_probe: int) -> np.ndarray:
        """The ``n_probe`` clusters whose centroids have the largest inner product with
        ``query``, ascending (all of them when ``n_probe >= n_lists``)."""
        if n_probe >= self.n_lists:
            return np.arange(self.n_lists)
        score = self.centroids @ query
        return np.sort(np.argpartition(-score, n_probe - 1)[:n_probe])

    def outside(self, clusters: np.ndarray, products: np.ndarray) -> np.ndarray:
        """``products`` (any, repeats allowed) that are not members of ``clusters``, ascending
        and distinct; products added after the index was built are never members."""
        if not products.size:
            return np.zeros(0, np.int64)
        n = self.assign.size
        inside = np.zeros(self.n_lists + 1, bool)  # + 1: products added later
        inside[clusters] = True
        cluster = np.full(products.size, self.n_lists)
        known = products < n
        cluster[known] = self.assign[products[known]]
        mark = np.zeros(max(n, int(products.max()) + 1), bool)
        mark[products[~inside[cluster]]] = True
        return np.flatnonzero(mark)

    def scan(
        self, clusters: np.ndarray, query: np.ndarray, cols: slice = slice(None)
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(products, their vectors · query)`` over the members of ``clusters``, cluster by
        cluster; ``cols`` restricts the product to some vector dimensions (``query`` is
        then as long as that slice)."""
        lo, hi = self.starts[clusters], self.starts[clusters + 1]
        rows, _ = concat_ranges(lo, hi)
        q = np.asarray(query, np.float32)
        blocks = [
            self.grouped[a:b, cols] @ q for a, b in zip(lo.tolist(), hi.tolist(), strict=True)
        ]
        scores = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        return self.order[rows], scores

    def search(
        self,
        query: np.ndarray,
        clusters: np.ndarray,
        extra: np.ndarray | None = None,
        cols: slice = slice(None),
        vectors: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(products ascending, their vectors · query)``: the members of ``clusters`` and
        the ``extra`` products (any, repeats allowed; also products added after the index was
        built, scored from ``vectors``: every product's, default the indexed ones). ``cols`` as
        in :meth:`scan`."""
        products, scores = self.scan(clusters, query, cols)
        if extra is not None and extra.size:
            extra = self.outside(clusters, extra)  # ascending, distinct: a cache-friendly gather
            source = self.vectors if vectors is None else vectors
            products = np.concatenate([products, extra])
            scores = np.concatenate([scores, source[extra, cols] @ np.asarray(query)])
        order = np.argsort(products, kind="stable")
        return products[order], scores[order]


def _nearest(x: np.ndarray, centroids: np.ndarray, block: int = 16_384) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) of each row of ``x``."""
    c2 = (centroids.astype(np.float64) ** 2).sum(1).astype(np.float32)
    out = np.empty(x.shape[0], np.int64)
    for lo in range(0, x.shape[0], block):
        d = c2[None, :] - 2.0 * (x[lo : lo + block] @ centroids.T)
        out[lo : lo + block] = d.argmin(1)
    return out
