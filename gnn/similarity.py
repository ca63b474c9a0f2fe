"""The vectors of the content-similarity terms of the fusion model's final score.

The fusion model's log-score of product ``j`` for a user whose latest items are ``h_0``
(latest), ``h_1``, ... adds (:mod:`gnn.scoring`)

    Σ_f τ_f · Σ_{k < n_recent} γ^k · cos(c_f(h_k), c_f(j))

where ``f`` runs over the product features the model was given (``text``: the BERT vectors,
``kge``: the KG embeddings) and ``c_f`` is feature ``f`` reduced to ``dim`` dimensions by PCA
(centred, then scaled to unit length; a product without the feature has ``c_f = 0``):
:func:`reduce_features`. The weights ``τ_f`` are chosen on the validation split with the
blend (:mod:`gnn.fusion_blend`); ``τ_f = 0`` drops a term.

The GNN consumes the same features, but as one input among many it does not keep the plain
"looks like what you just bought" signal these terms carry; on Amazon Industrial & Scientific
they raise validation NDCG@10 of the blend by about 7% (BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np

__all__ = ["reduce_features"]


def reduce_features(x: np.ndarray, dim: int) -> np.ndarray:
    """``(n, min(dim, d))`` float32 unit rows: ``x``'s rows scaled to unit length, centred, then
    projected on their ``dim`` leading principal axes and scaled to unit length again. All-zero
    rows (products without the feature) stay zero. Deterministic (an SVD)."""
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    present = norms[:, 0] > 0
    out = np.zeros((x.shape[0], min(dim, x.shape[1])), np.float32)
    if present.sum() < 2:
        return out
    unit = x[present] / norms[present]
    centred = unit - unit.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    y = centred @ vt[: out.shape[1]].T
    y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    out[present] = y
    return out
