"""The dense side of product search: cosine of the query's text vector with every product's.

Product text vectors are MiniLM sentence vectors of each product's text (:mod:`gnn.text`,
unit length, 384 dims), the query's is the same model's vector of the query
(:mod:`kg.query.query_vectors`). Up to :data:`EXACT_UP_TO` products :meth:`DenseIndex.scores`
is the exact cosine ``t_q · t_j``. A larger catalogue makes that scan the slowest part of a
search (100k x 384 floats, 154 MB per query), so above it the scan runs in a
:data:`REDUCED_DIMS`-wide principal subspace of the product vectors (axes from a seeded sample
of at most :data:`PCA_SAMPLE` products)::

    t_q · t_j ≈ t_q · μ + (Wᵀ t_q) · (Wᵀ (t_j - μ))       (μ the mean product vector)

which keeps the scale of the exact cosine; the search then recomputes the exact cosine for
the few hundred products it reranks (:meth:`DenseIndex.exact`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["EXACT_UP_TO", "PCA_SAMPLE", "REDUCED_DIMS", "DenseIndex"]

#: Catalogues up to this many products are scanned exactly.
EXACT_UP_TO = 16_384
#: Width of the reduced scan above :data:`EXACT_UP_TO`: 100k x 32 float32 (13 MB) stays in
#: this machine's L3 cache, 64 dims (26 MB) did not and took 1.8 ms a query against 0.4 ms;
#: on Amazon with the reduced scan forced, the full search's NDCG@10 was 0.4147 at 32 dims,
#: 0.4153 at 64, 0.4154 exact (``bench/bench_search.py --part amazon`` has the row).
REDUCED_DIMS = 32
#: Products the principal axes are computed from.
PCA_SAMPLE = 20_000


class DenseIndex:
    """Cosines of a query vector with the products' text vectors (module docstring).

    Args:
        vectors: ``(P, d)`` float32 unit text vectors (a product without text: zeros).
        dims: width of the reduced scan above :data:`EXACT_UP_TO` products.
        exact_up_to: catalogues up to this size are scanned exactly.
        seed: seed of the PCA sample.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        *,
        dims: int = REDUCED_DIMS,
        exact_up_to: int = EXACT_UP_TO,
        seed: int = 0,
    ) -> None:
        self.vectors = np.ascontiguousarray(vectors, np.float32)
        self.reduced: np.ndarray | None = None
        self.mean = np.zeros(self.vectors.shape[1], np.float32)
        self.axes: np.ndarray | None = None
        if self.vectors.shape[0] > exact_up_to:
            rng = np.random.default_rng(seed)
            n = self.vectors.shape[0]
            sample = rng.choice(n, min(PCA_SAMPLE, n), replace=False)
            x = self.vectors[np.sort(sample)].astype(np.float64)
            mean = x.mean(axis=0)
            _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
            self.axes = np.ascontiguousarray(vt[:dims].T, np.float32)  # (d, dims)
            self.mean = mean.astype(np.float32)
            self.reduced = np.ascontiguousarray((self.vectors - self.mean) @ self.axes)

    @property
    def dim(self) -> int:
        """The text vectors' width."""
        return int(self.vectors.shape[1])

    def scores(self, query: np.ndarray) -> np.ndarray:
        """``(P,)`` float32 cosines with ``query`` (``(d,)``, unit): exact, or the reduced
        estimate above :data:`EXACT_UP_TO` products."""
        if self.reduced is None:
            return self.vectors @ query
        assert self.axes is not None
        out = self.reduced @ (query @ self.axes)
        out += np.float32(query @ self.mean)
        return out

    def exact(self, query: np.ndarray, products: np.ndarray) -> np.ndarray:
        """``(n,)`` float32 exact cosines of ``products`` with ``query``."""
        return self.vectors[products] @ query
