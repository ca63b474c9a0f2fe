"""Item-to-item co-occurrence from the user's last few items: the counting baseline.

On chronological shop data what a user bought last says a lot (see DESIGN.md, "Baselines a
shipped model must beat"). Counted on the train sequences only:

* a pair ``(a, b)`` with ``b`` exactly ``d`` positions after ``a`` in a user's sequence
  (``1 <= d <= window``) adds ``distance_decay ** (d - 1)`` to ``F[a, b]``; ``d = 1`` pairs are
  the transitions, longer ones the short-window co-purchases;
* the item-to-item score is ``C = F + backward_weight * F.T`` without its diagonal, each row
  divided by ``(row sum) ** normalize`` (1 = conditional distribution, 0 = raw counts);
* a user's score of item ``b`` is ``sum_k recency_decay ** k * C[h_k, b]`` over the last
  ``n_recent`` items ``h_0`` (latest), ``h_1``, ... of their known history, plus
  ``popularity_weight * pop(b) / max(pop)`` to pad and order the items no pair reaches.

The defaults are the values :func:`tune` chose on the validation split of Amazon 2018
Industrial & Scientific (leave-one-out); call :func:`tune` for other data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from gnn.splits import EvalOn, Split

__all__ = ["DEFAULT_GRID", "CooccurrenceConfig", "ItemCooccurrence", "tune"]


@dataclass(frozen=True)
class CooccurrenceConfig:
    """Hyper-parameters of :class:`ItemCooccurrence` (see the module doc for the formula).

    Attributes:
        window: largest position distance of a counted pair, >= 1.
        distance_decay: weight factor per extra position of distance, in (0, 1].
        backward_weight: weight of ``b``-before-``a`` pairs when scoring ``a -> b``, >= 0.
        n_recent: last history items that vote, >= 1.
        recency_decay: weight factor per step back in the history, in (0, 1].
        normalize: exponent of the row-sum normalisation, >= 0.
        popularity_weight: weight of the popularity padding, >= 0.
    """

    window: int = 8
    distance_decay: float = 0.8
    backward_weight: float = 0.25
    n_recent: int = 5
    recency_decay: float = 0.8
    normalize: float = 0.25
    popularity_weight: float = 1e-6

    def __post_init__(self) -> None:
        checks = [
            (self.window >= 1, "window must be >= 1"),
            (0 < self.distance_decay <= 1, "distance_decay must be in (0, 1]"),
            (self.backward_weight >= 0, "backward_weight must be >= 0"),
            (self.n_recent >= 1, "n_recent must be >= 1"),
            (0 < self.recency_decay <= 1, "recency_decay must be in (0, 1]"),
            (self.normalize >= 0, "normalize must be >= 0"),
            (self.popularity_weight >= 0, "popularity_weight must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"CooccurrenceConfig: {message}")


#: Values :func:`tune` tries per hyper-parameter (one at a time, see there).
DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "window": (1, 2, 3, 5, 8),
    "distance_decay": (0.3, 0.5, 0.8, 1.0),
    "backward_weight": (0.0, 0.25, 0.5, 1.0),
    "n_recent": (1, 2, 3, 5, 10),
    "recency_decay": (0.3, 0.5, 0.8, 1.0),
    "normalize": (0.0, 0.25, 0.5, 0.75, 1.0),
    "popularity_weight": (1e-6, 1e-3, 1e-2),
}


class ItemCooccurrence:
    """Scores items by their co-occurrence with the user's most recent items.

    Args:
        config: hyper-parameters; keyword arguments override its fields.
    """

    def __init__(self, config: CooccurrenceConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or CooccurrenceConfig(), **overrides)
        self.item_item: sp.csr_matrix | None = None
        self.popularity: np.ndarray | None = None

    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> ItemCooccurrence:
        """Count pairs on ``split.train_sequences`` (deterministic: ``seed`` is unused)."""
        cfg = self.config
        n = split.n_items
        sizes = np.fromiter((s.size for s in split.train_sequences), np.int64)
        items = np.concatenate([*split.train_sequences, np.zeros(0, np.int64)]).astype(np.int64)
        owner = np.repeat(np.arange(sizes.size), sizes)
        forward = sp.csr_matrix((n, n), dtype=np.float64)
        for d in range(1, cfg.window + 1):
            same = owner[:-d] == owner[d:]
            a, b = items[:-d][same], items[d:][same]
            w = np.full(a.size, cfg.distance_decay ** (d - 1))
            forward = forward + sp.csr_matrix((w, (a, b)), shape=(n, n))
        both = (forward + cfg.backward_weight * forward.T).tolil()
        both.setdiag(0.0)
        c = both.tocsr()
        c.eliminate_zeros()
        row_sum = np.asarray(c.sum(axis=1)).ravel()
        scale = np.zeros(n)
        scale[row_sum > 0] = row_sum[row_sum > 0] ** -cfg.normalize
        self.item_item = sp.diags(scale) @ c
        pop = split.item_popularity()
        self.popularity = pop / pop.max() if pop.max() > 0 else pop
        return self

    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> np.ndarray:
        """``(len(user_indices), n_items)`` float64 scores from ``split.history(on)``."""
        history = split.history(on)
        return self.score_histories([history[u] for u in user_indices])

    def score_histories(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(len(histories), n_items)`` float64 scores of users given by their item histories
        (item indices, oldest first)."""
        if self.item_item is None or self.popularity is None:
            raise RuntimeError("ItemCooccurrence.score before fit")
        cfg = self.config
        recent = [np.asarray(h, np.int64)[::-1][: cfg.n_recent] for h in histories]
        sizes = np.fromiter((r.size for r in recent), np.int64, len(recent))
        cols = np.concatenate([*recent, np.zeros(0, np.int64)]).astype(np.int64)
        rows = np.repeat(np.arange(len(recent)), sizes)
        steps_back = np.arange(cols.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        weights = cfg.recency_decay**steps_back
        n_items = self.item_item.shape[0]
        votes = sp.csr_matrix((weights, (rows, cols)), shape=(len(recent), n_items))
        scores = (votes @ self.item_item).toarray()
        scores += cfg.popularity_weight * self.popularity[None, :]
        return scores


def tune(
    split: Split,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    start: CooccurrenceConfig | None = None,
    metric: str = "ndcg@10",
    rounds: int = 2,
    show_progress: bool = True,
) -> tuple[CooccurrenceConfig, list[dict[str, Any]]]:
    """Choose hyper-parameters on the **validation** targets by coordinate search.

    Starting from ``start``, each round tries every value of each hyper-parameter in turn
    (the others fixed at the best so far) and keeps the best; the search stops after
    ``rounds`` rounds or a round without improvement. Test targets are never looked at.

    Args:
        split: a split with validation targets.
        grid: ``{field: values}``; default :data:`DEFAULT_GRID`.
        start: first configuration; default :class:`CooccurrenceConfig()`.
        metric: the validation metric to maximise.
        rounds: most rounds.
        show_progress: show a tqdm bar.

    Returns:
        ``(best config, trials)`` where each trial is ``{**config fields, metric: value}``.
    """
    from gnn.evaluate import evaluate

    if split.eval_users("valid").size == 0:
        raise ValueError("tune needs a split with validation targets")
    grid = dict(grid or DEFAULT_GRID)
    best = start or CooccurrenceConfig()
    seen: dict[CooccurrenceConfig, float] = {}
    trials: list[dict[str, Any]] = []

    def value(cfg: CooccurrenceConfig) -> float:
        if cfg not in seen:
            model = ItemCooccurrence(cfg).fit(split)
            seen[cfg] = evaluate(model, split, on="valid", ks=(10, 20), show_progress=False)[metric]
            trials.append({**asdict(cfg), metric: seen[cfg]})
        return seen[cfg]

    candidates = [(name, v) for name, values in grid.items() for v in values]
    bar = tqdm(total=rounds * len(candidates), desc="tune co-occurrence", disable=not show_progress)
    best_value = value(best)
    for _ in range(rounds):
        improved = False
        for name, v in candidates:
            cfg = replace(best, **{name: v})
            if value(cfg) > best_value:
                best, best_value, improved = cfg, value(cfg), True
            bar.update()
        if not improved:
            break
    bar.close()
    return best, trials
