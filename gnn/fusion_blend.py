"""The fusion model's final score and the choice of its weights on the validation split.

With ``p`` the GNN's distribution (softmax of its scores), ``q`` the co-occurrence distribution
and ``S_f`` the similarity terms of :mod:`gnn.similarity`, the final log-score is

    z = log p                                 β = 0 (the GNN alone)
    z = log((1 - β) · p + β · q)              mode "linear"
    z = (1 - β) · log p + β · log q           mode "log" (a product of experts)

plus ``Σ_f τ_f · S_f``; the model returns ``softmax(z)``. :func:`choose_weights` scores the
validation users' parts once and searches by coordinate ascent:

1. the mode and ``β`` over ``blend_grid``, every ``τ = 0`` (the blend alone);
2. each ``τ_f`` over ``similarity_grid``, one term at a time, the others fixed;
3. ``β`` again over ``blend_grid``, with the chosen ``τ``.

Ties go to the smaller weight. Only validation targets are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gnn.splits import EvalOn, Split

if TYPE_CHECKING:
    from gnn.fusion import FusionRecommender

__all__ = ["FinalWeights", "choose_weights", "final_log_scores"]

_EPS = 1e-12


@dataclass(frozen=True)
class FinalWeights:
    """The weights of the final score (module docstring)."""

    mode: str = "linear"
    beta: float = 0.0
    similarity: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("linear", "log"):
            raise ValueError(f"FinalWeights: unknown blend mode {self.mode!r}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"FinalWeights: beta must be in [0, 1], got {self.beta}")


def final_log_scores(
    p: torch.Tensor,
    q: torch.Tensor | None,
    similarity: dict[str, torch.Tensor],
    weights: FinalWeights,
) -> torch.Tensor:
    """``z`` of the module docstring, ``(B, n_items)``.

    Args:
        p: the GNN's distribution.
        q: the co-occurrence distribution (needed when ``weights.beta > 0``).
        similarity: ``{name: S_f}`` (needed for every non-zero ``τ_f``).
        weights: mode, ``β`` and ``τ``.
    """
    beta = weights.beta
    if beta == 0.0:
        z = torch.log(p + _EPS)
    else:
        if q is None:
            raise ValueError("final_log_scores: beta > 0 needs the co-occurrence distribution")
        if weights.mode == "linear":
            z = torch.log((1 - beta) * p + beta * q + _EPS)
        else:
            z = (1 - beta) * torch.log(p + _EPS) + beta * torch.log(q)
    for name, tau in sorted(weights.similarity.items()):
        if tau:
            z = z + tau * similarity[name]
    return z


class _Parts:
    """The validation users' ``p``, ``q`` and ``S_f``, scored once, as a scorer of any weights."""

    name = "fusion-final"

    def __init__(self, model: FusionRecommender, split: Split, users: np.ndarray) -> None:

        self.users = np.asarray(users, np.int64)
        history = split.history("valid")
        ps, qs, sims = [], [], {}
        for lo in range(0, self.users.size, 1024):
            batch = self.users[lo : lo + 1024]
            histories = [history[u] for u in batch]
            p, q, s = model.score_parts(histories, user_indices=batch)
            ps.append(p.cpu())
            qs.append(q.cpu())
            for name, term in s.items():
                sims.setdefault(name, []).append(term.cpu())
            del histories
        self.p = torch.cat(ps)
        self.q = torch.cat(qs)
        self.sims = {name: torch.cat(v) for name, v in sims.items()}
        self.weights = FinalWeights()

    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> _Parts:
        return self

    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> torch.Tensor:
        if on != "valid":
            raise ValueError("the weight search reads validation targets only")
        rows = torch.as_tensor(np.searchsorted(self.users, user_indices))
        sims = {name: s[rows] for name, s in self.sims.items()}
        return final_log_scores(self.p[rows], self.q[rows], sims, self.weights)


def choose_weights(
    model: FusionRecommender,
    split: Split,
    users: np.ndarray,
    *,
    blend_grid: tuple[float, ...],
    similarity_grid: tuple[float, ...],
) -> tuple[FinalWeights, list[dict[str, Any]]]:
    """Search the final-score weights on the validation NDCG@10 of ``users`` (module doc).

    Returns:
        ``(best weights, trials)``; each trial is ``{"mode", "beta", "similarity",
        "ndcg@10"}``.
    """
    from gnn.evaluate import evaluate

    parts = _Parts(model, split, users)
    seen: dict[tuple[Any, ...], float] = {}
    trials: list[dict[str, Any]] = []

    def value(w: FinalWeights) -> float:
        key = (w.mode, w.beta, tuple(sorted(w.similarity.items())))
        if key not in seen:
            parts.weights = w
            ndcg = evaluate(parts, split, on="valid", ks=(10,), users=users, show_progress=False)
            seen[key] = ndcg["ndcg@10"]
            trials.append({"mode": w.mode, "beta": w.beta, "similarity": dict(w.similarity),
                           "ndcg@10": seen[key]})  # fmt: skip
        return seen[key]

    def best_of(candidates: list[FinalWeights], current: FinalWeights) -> FinalWeights:
        best = current
        for w in candidates:
            if value(w) > value(best):
                best = w
        return best

    names = sorted(parts.sims)
    best = FinalWeights(similarity=dict.fromkeys(names, 0.0))
    blends = [(m, b) for m in ("linear", "log") for b in blend_grid if b > 0.0]
    best = best_of([replace(best, mode=m, beta=b) for m, b in blends], best)
    for name in names:
        best = best_of(
            [replace(best, similarity={**best.similarity, name: t}) for t in similarity_grid],
            best,
        )
    if any(best.similarity.values()):
        best = best_of(
            [replace(best, beta=b) for b in blend_grid if b != best.beta]
            + [replace(best, beta=0.0)],
            best,
        )
    return best, trials
