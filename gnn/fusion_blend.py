"""The choice of the final score's weights on the validation split.

The final score (:mod:`gnn.scoring`) has a blend mode and weight ``β`` and a weight ``τ_f`` per
similarity term (:class:`~gnn.scoring.FinalWeights`). :func:`choose_weights` computes the
validation users' weight-free parts once (:meth:`~gnn.scoring.FusionScorer.parts`; on large
catalogues, again for each candidate, so memory stays bounded), recombines them under each
candidate (:meth:`~gnn.scoring.FusionScorer.log_scores`) and searches by
coordinate ascent:

1. the mode and ``β`` over ``blend_grid``, every ``τ = 0`` (the blend alone);
2. each ``τ_f`` over ``similarity_grid``, one term at a time, the others fixed;
3. ``β`` again over ``blend_grid``, with the chosen ``τ``.

Ties go to the smaller weight. Only validation targets are read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from gnn.scoring import FinalWeights, FusionScorer, ScoreParts, Votes
from gnn.splits import EvalOn, Split

__all__ = ["choose_weights"]


#: Most dense scores (users x products) the search keeps between trials (1 GiB of float32);
#: above it each trial computes its batches' parts again (a million products: 268 users).
KEEP_CELLS = 2**28


class _Parts:
    """The validation users' score parts as a scorer of any weights: computed once and kept,
    or, where they would pass :data:`KEEP_CELLS`, computed again for each batch scored."""

    name = "fusion-final"

    def __init__(self, scorer: FusionScorer, split: Split, users: np.ndarray) -> None:
        self.scorer = scorer
        self.users = np.asarray(users, np.int64)
        self.history = split.history("valid")
        self.names = sorted(scorer.arrays.similarity)
        self.parts: ScoreParts | None = None
        if self.users.size * split.n_items <= KEEP_CELLS:
            batches = [self._compute(self.users[lo : lo + 1024])
                       for lo in range(0, self.users.size, 1024)]  # fmt: skip
            self.parts = _concat(batches, self.names)
        self.weights = FinalWeights()

    def _compute(self, users: np.ndarray) -> ScoreParts:
        return self.scorer.parts(
            [self.history[u] for u in users], user_indices=users, similarity=self.names
        )

    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> _Parts:
        return self

    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> np.ndarray:
        if on != "valid":
            raise ValueError("the weight search reads validation targets only")
        if self.parts is None:
            return self.scorer.log_scores(self._compute(user_indices), self.weights)
        rows = np.searchsorted(self.users, user_indices)
        return self.scorer.log_scores(self.parts.rows(rows), self.weights)


def _concat(batches: list[ScoreParts], names: list[str]) -> ScoreParts:
    """One :class:`~gnn.scoring.ScoreParts` of consecutive batches."""
    starts = np.cumsum([0] + [b.dense.shape[0] for b in batches])
    votes = Votes(
        np.concatenate([b.votes.rows + s for b, s in zip(batches, starts, strict=False)]),
        np.concatenate([b.votes.products for b in batches]),
        np.concatenate([b.votes.values for b in batches]),
        np.concatenate([b.votes.totals for b in batches]),
    )
    dense = np.concatenate([b.dense for b in batches])
    sims = {name: np.concatenate([b.similarity[name] for b in batches]) for name in names}
    return ScoreParts(dense, votes, sims)


def choose_weights(
    scorer: FusionScorer,
    split: Split,
    users: np.ndarray,
    *,
    blend_grid: tuple[float, ...],
    similarity_grid: tuple[float, ...],
) -> tuple[FinalWeights, list[dict[str, Any]]]:
    """Search the final-score weights on the validation NDCG@10 of ``users`` (module doc).

    Args:
        scorer: the model's scorer (its own weights are not read).
        split: the split the model was fitted on.
        users: validation users (with targets).
        blend_grid: the values of ``β`` tried.
        similarity_grid: the values of each ``τ_f`` tried.

    Returns:
        ``(best weights, trials)``; each trial is ``{"mode", "beta", "similarity",
        "ndcg@10"}``.
    """
    from gnn.evaluate import evaluate

    parts = _Parts(scorer, split, users)
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

    names = parts.names
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
