"""Content-similarity terms added to the fusion model's final score.

The fusion model's log-score of product ``j`` for a user whose latest items are ``h_0``
(latest), ``h_1``, ... is

    z(u, j) = log mix(u, j) + Σ_f τ_f · Σ_{k < n_recent} γ^k · cos(c_f(h_k), c_f(j))

where ``mix`` is the GNN / co-occurrence blend (:mod:`gnn.fusion`), ``f`` runs over the
product features the model was given (``text``: the BERT vectors, ``kge``: the KG embeddings)
and ``c_f`` is feature ``f`` reduced to ``dim`` dimensions by PCA (centred, then scaled to unit
length; a product without the feature has ``c_f = 0``). The weights ``τ_f`` are chosen on the
validation split with the blend (:mod:`gnn.fusion_blend`); ``τ_f = 0`` drops a term.

The GNN consumes the same features, but as one input among many it does not keep the plain
"looks like what you just bought" signal these terms carry; on Amazon Industrial & Scientific
they raise validation NDCG@10 of the blend by about 7% (BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SimilarityTerms", "reduce_features"]


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


class SimilarityTerms:
    """The reduced feature vectors and the recency weights of the similarity terms.

    Args:
        vectors: ``{name: (n_items, dim)}`` reduced unit vectors (:func:`reduce_features`).
        n_recent: latest history items that vote (>= 1).
        decay: ``γ``, the weight factor per step back (in (0, 1]).
    """

    def __init__(self, vectors: dict[str, torch.Tensor], *, n_recent: int, decay: float) -> None:
        if n_recent < 1 or not 0 < decay <= 1:
            raise ValueError("SimilarityTerms: need n_recent >= 1 and 0 < decay <= 1")
        self.vectors = dict(vectors)
        self.n_recent = n_recent
        self.decay = decay

    @property
    def names(self) -> list[str]:
        return sorted(self.vectors)

    def profile(self, name: str, history: torch.Tensor) -> torch.Tensor:
        """``(B, dim)``: ``Σ_k γ^k c(h_k)`` of histories ``(B, L)`` (latest first, -1 padded)."""
        v = self.vectors[name]
        recent = history[:, : self.n_recent]
        w = self.decay ** torch.arange(recent.shape[1], device=v.device, dtype=v.dtype)
        w = w * (recent >= 0)
        return torch.einsum("bk,bkd->bd", w, v[recent.clamp(min=0)])

    def term(self, name: str, history: torch.Tensor) -> torch.Tensor:
        """``(B, n_items)``: ``Σ_k γ^k cos(c(h_k), c(j))`` for every product ``j``."""
        return self.profile(name, history) @ self.vectors[name].T

    def scores(self, history: torch.Tensor, weights: dict[str, float]) -> torch.Tensor | None:
        """``Σ_f τ_f · term_f`` over the terms with a non-zero weight (``None`` when none)."""
        total = None
        for name in self.names:
            tau = weights.get(name, 0.0)
            if tau:
                part = tau * self.term(name, history)
                total = part if total is None else total + part
        return total
