"""The evaluation harness: any :class:`Scorer` on a :class:`~gnn.splits.Split`, full ranking.

    from gnn.splits import leave_one_out
    from gnn.evaluate import evaluate
    from gnn.baselines import ItemCooccurrence

    split = leave_one_out(tables)
    model = ItemCooccurrence().fit(split, seed=0)
    result = evaluate(model, split, on="test", ks=(10, 20))
    result.metrics  # {"recall@10": ..., "ndcg@10": ..., "hit@10": ..., "mrr": ..., ...}

Which history a scorer may use and which items are excluded is fixed by the split (see
:mod:`gnn.splits`); the metric definitions are in :mod:`gnn.metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from tqdm.auto import tqdm

from gnn.metrics import catalogue_coverage, ranking_metrics
from gnn.splits import EvalOn, Split

__all__ = ["EvalResult", "Scorer", "aggregate", "evaluate"]


@runtime_checkable
class Scorer(Protocol):
    """What the harness evaluates: a model fitted on a split that scores every item."""

    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> Any:
        """Fit on ``split``'s train interactions (valid targets only for early stopping)."""
        ...

    def score(
        self, user_indices: np.ndarray, split: Split, on: EvalOn
    ) -> np.ndarray | torch.Tensor:
        """Scores of all items for the given users, shape ``(len(user_indices), n_items)``.

        ``on`` says which history the scorer may use: ``split.history(on)``. Excluded items
        need no special value; the harness masks them.
        """
        ...


@dataclass
class EvalResult:
    """Metrics of one evaluation run.

    Attributes:
        on: ``"valid"`` or ``"test"``.
        ks: cutoffs.
        users: indices of the evaluated users (those with targets), ascending.
        per_user: ``{metric: (n_users,) float64}``, aligned with ``users``.
        coverage: ``{K: catalogue coverage@K}``.
        seconds: wall time of scoring and ranking.
    """

    on: str
    ks: tuple[int, ...]
    users: np.ndarray
    per_user: dict[str, np.ndarray]
    coverage: dict[int, float]
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        """Number of evaluated users."""
        return int(self.users.size)

    @property
    def metrics(self) -> dict[str, float]:
        """Mean of every per-user metric, plus ``coverage@K``."""
        out = {name: float(v.mean()) if v.size else 0.0 for name, v in self.per_user.items()}
        out.update({f"coverage@{k}": c for k, c in self.coverage.items()})
        return out

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-user arrays)."""
        return {
            "on": self.on,
            "ks": list(self.ks),
            "n_users": self.n_users,
            "metrics": self.metrics,
            "seconds": self.seconds,
            **({"info": self.info} if self.info else {}),
        }


#: Most scores (users x items) one batch of :func:`evaluate` holds at once: 256 MB in float32,
#: of which scoring makes a few copies.
SCORE_CELLS = 2**26


def evaluate(
    scorer: Scorer,
    split: Split,
    *,
    on: EvalOn = "test",
    ks: Sequence[int] = (10, 20),
    batch_size: int | None = None,
    users: np.ndarray | None = None,
    show_progress: bool = True,
) -> EvalResult:
    """Rank all items for every user with targets on ``on`` and compute the metrics.

    Args:
        scorer: a fitted scorer.
        split: the split it was fitted on.
        on: ``"valid"`` or ``"test"`` targets (and the matching history and exclusions).
        ks: cutoffs for recall, NDCG, hit rate and coverage.
        batch_size: users scored at once; ``None``: 1,024, fewer on catalogues where that
            many rows of scores would pass :data:`SCORE_CELLS` (64 at a million products).
        users: evaluate only these user indices (each must have targets); default all.
        show_progress: show a tqdm bar.

    Returns:
        The result; metric means over the evaluated users.

    Raises:
        ValueError: the scorer returns the wrong shape, or a NaN score.
    """
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive cutoffs, got {ks}")
    eligible = split.eval_users(on)
    if users is None:
        users = eligible
    else:
        users = np.unique(np.asarray(users, np.int64))
        missing = np.setdiff1d(users, eligible)
        if missing.size:
            raise ValueError(f"user {missing[0]} has no {on} targets")
    targets = split.targets(on)
    known = split.known(on)
    parts: dict[str, list[np.ndarray]] = {}
    tops: list[np.ndarray] = []
    start = time.perf_counter()
    if batch_size is None:
        batch_size = max(1, min(1024, SCORE_CELLS // max(split.n_items, 1)))
    batches = range(0, users.size, batch_size)
    for lo in tqdm(batches, desc=f"evaluate {on}", unit=" batch", disable=not show_progress):
        batch = users[lo : lo + batch_size]
        with torch.no_grad():
            scores = torch.as_tensor(scorer.score(batch, split, on))
        if tuple(scores.shape) != (batch.size, split.n_items):
            raise ValueError(
                f"{type(scorer).__name__}.score returned shape {tuple(scores.shape)}, "
                f"expected {(batch.size, split.n_items)}"
            )
        metrics, top = ranking_metrics(scores, known[batch], [targets[u] for u in batch], ks)
        for name, values in metrics.items():
            parts.setdefault(name, []).append(values)
        tops.append(top.cpu().numpy())
    per_user = {name: np.concatenate(v) for name, v in parts.items()}
    top_all = np.concatenate(tops) if tops else np.zeros((0, ks[-1]), np.int64)
    coverage = {k: catalogue_coverage(top_all, split.n_items, k) for k in ks}
    return EvalResult(
        on=on,
        ks=ks,
        users=users,
        per_user=per_user,
        coverage=coverage,
        seconds=time.perf_counter() - start,
    )


def aggregate(results: Sequence[EvalResult]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of each metric over runs (e.g. seeds).

    Args:
        results: results of the same evaluation with different seeds.

    Returns:
        ``{metric: (mean, std)}``; std is the sample standard deviation (``ddof=1``), 0 for a
        single run.
    """
    if not results:
        return {}
    names = list(results[0].metrics)
    out = {}
    for name in names:
        values = np.asarray([r.metrics[name] for r in results], np.float64)
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        out[name] = (float(values.mean()), std)
    return out
