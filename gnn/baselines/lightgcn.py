"""LightGCN (He et al., SIGIR 2020) with PyTorch Geometric's model, trained with BPR.

The user-item train graph is propagated through ``num_layers`` :class:`~torch_geometric.nn.
conv.LGConv` layers with the symmetric normalisation ``1 / sqrt(deg(u) deg(i))`` (computed once,
passed as a sparse adjacency); the final vectors are the mean of all layers. Training, early
stopping and save/load are those of :class:`~gnn.baselines.bpr_mf.EmbeddingScorer`; the saved
file holds the propagated vectors, so a loaded model scores without the graph.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gnn.baselines.bpr_mf import BPRConfig, EmbeddingScorer
from gnn.splits import Split

__all__ = ["LightGCN", "LightGCNConfig", "normalized_adjacency"]


@dataclass(frozen=True)
class LightGCNConfig(BPRConfig):
    """:class:`~gnn.baselines.bpr_mf.BPRConfig` plus the number of propagation layers."""

    num_layers: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_layers < 0:
            raise ValueError("LightGCNConfig: num_layers must be >= 0")


def normalized_adjacency(split: Split, dev: torch.device) -> torch.Tensor:
    """Symmetric normalised adjacency of the bipartite train graph, sparse CSR.

    Nodes are users ``0 .. n_users-1`` then items ``n_users ..``; the value of edge (u, i) is
    ``1 / sqrt(deg(u) deg(i))``.

    Returns:
        ``(n_users + n_items, n_users + n_items)`` float32 sparse CSR tensor on ``dev``.
    """
    users, items = split.train_pairs()
    n = split.n_users + split.n_items
    src = np.concatenate([users, items + split.n_users])
    dst = np.concatenate([items + split.n_users, users])
    deg = np.bincount(src, minlength=n).astype(np.float64)
    inv_sqrt = np.zeros(n)
    inv_sqrt[deg > 0] = deg[deg > 0] ** -0.5
    values = (inv_sqrt[src] * inv_sqrt[dst]).astype(np.float32)
    adj = torch.sparse_coo_tensor(
        torch.as_tensor(np.stack([src, dst])),
        torch.as_tensor(values),
        (n, n),
        check_invariants=True,
    ).coalesce()
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return adj.to_sparse_csr().to(dev)


class LightGCN(EmbeddingScorer):
    """LightGCN: ``score(u, i) = <e_u, e_i>`` with ``e`` the mean over propagation layers.

    Args:
        config: hyper-parameters (:class:`LightGCNConfig`); keyword arguments override fields.
    """

    name: ClassVar[str] = "lightgcn"
    config_class: ClassVar[type[BPRConfig]] = LightGCNConfig

    def __init__(self, config: BPRConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self._adj: torch.Tensor | None = None

    def _build(self, split: Split, dev: torch.device) -> torch.nn.Module:
        self._adj = normalized_adjacency(split, dev)
        return self._build_empty(dev)

    def _build_empty(self, dev: torch.device) -> torch.nn.Module:
        from torch_geometric.nn.models import LightGCN as PygLightGCN

        cfg = self.config
        assert isinstance(cfg, LightGCNConfig)
        module = PygLightGCN(sum(self.shape), cfg.dim, cfg.num_layers, normalize=False)
        torch.nn.init.normal_(module.embedding.weight, std=cfg.init_std)
        return module.to(dev)

    def _vectors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self._adj is None or self.module is None:
            raise RuntimeError("LightGCN: the train graph is only available while fitting")
        out = self.module.get_embedding(self._adj)  # type: ignore[operator]
        return out[: self.shape[0]], out[self.shape[0] :]

    def _layer0(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        assert self.module is not None
        weight = self.module.embedding.weight  # type: ignore[union-attr]
        return [weight[users], weight[items + self.shape[0]]]

    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> LightGCN:
        """See :meth:`EmbeddingScorer.fit`; the graph is dropped afterwards."""
        try:
            super().fit(split, seed=seed, show_progress=show_progress)
        finally:
            self._adj = None
        return self
