"""Content scorers: cosine similarity between a candidate and the user's last few items.

With the BERT text vectors this is the text-only recency scorer of DESIGN.md; with the KG
embeddings it is the KGE-only scorer. A user's score of item ``b`` is

    sum_k recency_decay ** k * cos(v[h_k], v[b])  +  popularity_weight * pop(b) / max(pop)

over the last ``n_recent`` items ``h_0`` (latest), ``h_1``... of the known history. Items
without a vector (zero rows) score by popularity only. Nothing is trained; ``n_recent`` and
``recency_decay`` can be chosen on the validation split with :meth:`ContentRecency.tune`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gnn.splits import EvalOn, Split

__all__ = ["ContentRecency"]


class ContentRecency:
    """Recency-weighted cosine similarity to the user's last items.

    Args:
        vectors: ``(n_items, d)`` item vectors in the split's item order (rows need not be
            normalised).
        name: label for reports (``"text"``, ``"kge"``).
        n_recent: last history items that vote, >= 1.
        recency_decay: weight factor per step back, in (0, 1].
        popularity_weight: weight of the popularity padding, >= 0.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        *,
        name: str = "content",
        n_recent: int = 3,
        recency_decay: float = 0.5,
        popularity_weight: float = 1e-3,
    ) -> None:
        if n_recent < 1 or not 0 < recency_decay <= 1 or popularity_weight < 0:
            raise ValueError("ContentRecency: need n_recent >= 1, 0 < recency_decay <= 1")
        v = torch.as_tensor(np.asarray(vectors, np.float32))
        self.vectors = torch.nn.functional.normalize(v, dim=1)
        self.name = name
        self.n_recent = n_recent
        self.recency_decay = recency_decay
        self.popularity_weight = popularity_weight
        self.popularity: torch.Tensor | None = None

    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> ContentRecency:
        """Record item popularity (nothing else is fitted; ``seed`` is unused)."""
        if self.vectors.shape[0] != split.n_items:
            raise ValueError(
                f"ContentRecency: {self.vectors.shape[0]} vectors for {split.n_items} items"
            )
        pop = torch.as_tensor(split.item_popularity(), dtype=torch.float32)
        self.popularity = pop / pop.max().clamp(min=1.0)
        return self

    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> torch.Tensor:
        """``(len(user_indices), n_items)`` scores from ``split.history(on)``."""
        if self.popularity is None:
            raise RuntimeError("ContentRecency.score before fit")
        history = split.history(on)
        weights = torch.zeros(len(user_indices), self.vectors.shape[0])
        for row, u in enumerate(user_indices):
            recent = torch.as_tensor(history[u][::-1][: self.n_recent].copy())
            decay = self.recency_decay ** torch.arange(recent.numel(), dtype=torch.float32)
            weights[row].index_add_(0, recent, decay)
        profile = weights @ self.vectors  # (B, d)
        return profile @ self.vectors.T + self.popularity_weight * self.popularity

    def tune(
        self,
        split: Split,
        *,
        n_recent: Sequence[int] = (1, 2, 3, 5),
        recency_decay: Sequence[float] = (0.3, 0.5, 0.8),
    ) -> dict[str, Any]:
        """Pick ``n_recent`` and ``recency_decay`` by validation NDCG@10 (test never seen).

        Returns:
            the chosen values and the validation NDCG@10 of each pair tried.
        """
        from gnn.evaluate import evaluate

        self.fit(split)
        tried = []
        for n in n_recent:
            for d in recency_decay:
                self.n_recent, self.recency_decay = n, d
                ndcg = evaluate(self, split, on="valid", ks=(10,), show_progress=False)
                tried.append((n, d, ndcg["ndcg@10"]))
        best = max(tried, key=lambda t: t[2])
        self.n_recent, self.recency_decay = best[0], best[1]
        return {"n_recent": best[0], "recency_decay": best[1], "tried": tried}
