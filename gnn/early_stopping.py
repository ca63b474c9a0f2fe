"""Early stopping on a validation score, shared by the trained scorers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gnn.splits import Split

__all__ = ["EarlyStopping", "validation_users"]


def validation_users(split: Split, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """Users with validation targets; a fixed random sample of ``limit`` of them when set."""
    users = split.eval_users("valid")
    if limit is not None and users.size > limit:
        users = np.sort(rng.choice(users, limit, replace=False))
    return users


class EarlyStopping:
    """Keeps the state of the best validation score and says when to stop.

    Args:
        patience: validations without improvement before stopping.
        state: returns a copy of the model state to keep (called at start and at each best).
    """

    def __init__(self, patience: int, state: Callable[[], dict[str, Any]]) -> None:
        self.patience = patience
        self._state = state
        self.best = -1.0
        self.best_epoch = 0
        self.stale = 0
        self.best_state = state()

    def update(self, epoch: int, value: float) -> bool:
        """Record the validation ``value`` of ``epoch``; ``True`` when training should stop."""
        if value > self.best:
            self.best, self.best_epoch, self.stale = value, epoch, 0
            self.best_state = self._state()
            return False
        self.stale += 1
        return self.stale >= self.patience
