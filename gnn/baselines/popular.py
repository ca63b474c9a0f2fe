"""Non-personalised reference scorers: item popularity and uniform random scores."""

from __future__ import annotations

import numpy as np
import torch

from gnn.splits import EvalOn, Split

__all__ = ["MostPopular", "RandomScorer"]


class MostPopular:
    """Every user gets the items ranked by their number of train users.

    Popularity is counted on the train interactions only, also when evaluating on test.
    """

    def __init__(self) -> None:
        self.popularity: np.ndarray | None = None

    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> MostPopular:
        """Count train users per item (``seed`` and ``show_progress`` are unused)."""
        self.popularity = split.item_popularity()
        return self

    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> torch.Tensor:
        """The popularity row for every user: ``(len(user_indices), n_items)`` float32."""
        if self.popularity is None:
            raise RuntimeError("MostPopular.score before fit")
        row = torch.as_tensor(self.popularity, dtype=torch.float32)
        return row.expand(len(user_indices), row.numel())


class RandomScorer:
    """Uniform random scores: the floor every model must clear.

    A user's scores depend only on the seed and the user index, not on the batch.
    """

    def __init__(self) -> None:
        self.seed = 0

    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> RandomScorer:
        """Remember ``seed``; nothing is learned."""
        self.seed = seed
        return self

    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> np.ndarray:
        """``(len(user_indices), n_items)`` float32 uniform scores in [0, 1)."""
        out = np.empty((len(user_indices), split.n_items), np.float32)
        for row, u in enumerate(user_indices):
            out[row] = np.random.default_rng([self.seed, int(u)]).random(split.n_items, np.float32)
        return out
