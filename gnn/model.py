"""The fusion GNN: product inputs [text ⊕ KGE ⊕ id], heterogeneous message passing, and a
recency-aware user side.

* **Product inputs**: ``Linear([text ⊕ KGE]) + id embedding`` (each part optional). Categories,
  brands, KG entities and users start from learned embeddings.
* **Propagation**: ``num_layers`` rounds of ``HeteroConv`` with one ``SAGEConv`` per edge type
  (mean aggregation, sum over edge types), a residual connection and layer norm; the
  interaction edges (user <-> product), transitions (product -> product) and KG relations all
  carry messages.
* **User side**: ``u = Σ_k softmax(a)_k · W p(h_k)  (+ the user node's output)`` over the last
  ``history_len`` items ``h_0`` (latest), ``h_1``... of the user's history, with learned
  position weights ``a``: what a user bought last counts most, and a user unseen in training
  (a list of product ids) gets a vector without retraining.
* **Score**: ``s(u, i) = u · p(i) + b_i``.

Shapes: ``P = n_products``, ``d = config.dim``; :meth:`FusionGNN.forward` returns the output
vectors of every node type, ``{"product": (P, d), "user": (n_users, d), ...}``.

The user side and the score are computed here for training (they need gradients); a trained
model scores through :mod:`gnn.scoring` (numpy), which computes the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["FusionConfig", "FusionGNN"]


@dataclass(frozen=True)
class FusionConfig:
    """Architecture and training hyper-parameters of the fusion model.

    Attributes:
        dim: hidden and output size.
        num_layers: message-passing rounds (0 = no propagation).
        dropout: dropout on node states during training.
        use_text: feed the text vectors to the product input.
        use_kge: feed the KG-embedding vectors to the product input.
        use_id: learn a free embedding per product (added to the projected features).
        use_kg_edges: propagate over catalogue / KG relations (category, brand, triples).
        use_interaction_edges: propagate over user <-> product train interactions.
        use_transition_edges: propagate over product -> product train transitions.
        user_node: add the user node's propagated vector to the history vector.
        history_len: last history items the user vector pools over.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: training examples per step.
        max_epochs: most epochs.
        patience: validations without improvement before stopping.
        eval_every: epochs between validations.
        valid_users: validate on a fixed random sample of this many users (``None``: all).
        blend_grid: weights of the co-occurrence term tried on validation (0 = model alone).
        similarity_grid: weights of each content-similarity term (text, KGE; see
            :mod:`gnn.similarity`) tried on validation; ``(0.0,)`` turns the terms off.
        similarity_dim: PCA size of the vectors the similarity terms compare.
        similarity_recent: latest history items the similarity terms read.
        similarity_decay: weight factor per step back in those items, in (0, 1].
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
    """

    dim: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    use_text: bool = True
    use_kge: bool = True
    use_id: bool = True
    use_kg_edges: bool = True
    use_interaction_edges: bool = True
    use_transition_edges: bool = True
    user_node: bool = False
    history_len: int = 10
    lr: float = 5e-3
    weight_decay: float = 0.0
    batch_size: int = 2048
    max_epochs: int = 20
    patience: int = 3
    eval_every: int = 2
    valid_users: int | None = None
    blend_grid: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    device: str = "auto"
    similarity_grid: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0)
    similarity_dim: int = 64
    similarity_recent: int = 3
    similarity_decay: float = 0.5

    def __post_init__(self) -> None:
        positive = ("dim", "history_len", "batch_size", "max_epochs", "patience", "eval_every",
                    "similarity_dim", "similarity_recent")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"FusionConfig: {name} must be >= 1")
        if self.num_layers < 0 or not 0 <= self.dropout < 1 or self.lr <= 0:
            raise ValueError("FusionConfig: need num_layers >= 0, 0 <= dropout < 1, lr > 0")
        if not (self.use_text or self.use_kge or self.use_id):
            raise ValueError("FusionConfig: products need at least one of text, kge, id")
        if not self.blend_grid or any(not 0 <= b <= 1 for b in self.blend_grid):
            raise ValueError("FusionConfig: blend_grid needs values in [0, 1]")
        object.__setattr__(self, "blend_grid", tuple(float(b) for b in self.blend_grid))
        if not self.similarity_grid or any(t < 0 for t in self.similarity_grid):
            raise ValueError("FusionConfig: similarity_grid needs values >= 0")
        if not 0 < self.similarity_decay <= 1:
            raise ValueError("FusionConfig: similarity_decay must be in (0, 1]")
        grid = tuple(float(t) for t in self.similarity_grid)
        object.__setattr__(self, "similarity_grid", grid)


class FusionGNN(nn.Module):
    """The network of the fusion model (see the module docstring).

    Args:
        config: the architecture.
        num_nodes: ``{node_type: count}`` of the graph.
        edge_types: ``(src, rel, dst)`` edge types messages flow over (already filtered by the
            config's edge switches).
        feature_dim: width of the product feature matrix (text and/or KGE), 0 for none.
    """

    def __init__(
        self,
        config: FusionConfig,
        num_nodes: dict[str, int],
        edge_types: list[tuple[str, str, str]],
        feature_dim: int,
    ) -> None:
        from torch_geometric.nn import HeteroConv, SAGEConv  # a slow import: only when needed

        super().__init__()
        d = config.dim
        self.config = config
        self.num_nodes = dict(num_nodes)
        self.edge_types = [tuple(et) for et in edge_types]
        self.feature_dim = feature_dim
        self.feature_proj = nn.Linear(feature_dim, d) if feature_dim else None
        self.product_id = nn.Embedding(num_nodes["product"], d) if config.use_id else None
        others = [nt for nt in sorted(num_nodes) if nt != "product"]
        self.node_emb = nn.ModuleDict({nt: nn.Embedding(num_nodes[nt], d) for nt in others})
        for emb in self.node_emb.values():
            nn.init.normal_(emb.weight, std=0.1)
        if self.product_id is not None:
            nn.init.normal_(self.product_id.weight, std=0.1)
        self.convs = nn.ModuleList(
            HeteroConv({et: SAGEConv((d, d), d) for et in self.edge_types}, aggr="sum")
            for _ in range(config.num_layers)
        )
        types = sorted(num_nodes)
        self.norms = nn.ModuleList(
            nn.ModuleDict({nt: nn.LayerNorm(d) for nt in types}) for _ in self.convs
        )
        self.history_proj = nn.Linear(d, d)
        self.position_logits = nn.Parameter(torch.zeros(config.history_len))
        self.item_bias = nn.Parameter(torch.zeros(num_nodes["product"]))
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, features: torch.Tensor | None, edge_index: dict[Any, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Output vectors of every node type.

        Args:
            features: ``(P, feature_dim)`` product features, or ``None`` when feature_dim is 0.
            edge_index: ``{(src, rel, dst): (2, E) long}`` for the model's edge types.

        Returns:
            ``{node_type: (n, d)}``.
        """
        x = {nt: emb.weight for nt, emb in self.node_emb.items()}
        product = torch.zeros(
            self.num_nodes["product"], self.config.dim, device=self.item_bias.device
        )
        if self.feature_proj is not None and features is not None:
            product = product + self.feature_proj(features)
        if self.product_id is not None:
            product = product + self.product_id.weight
        x["product"] = product
        for conv, norms in zip(self.convs, self.norms, strict=True):
            out = conv({k: self.dropout(v) for k, v in x.items()}, edge_index)
            x = {nt: norms[nt](x[nt] + torch.relu(out[nt])) if nt in out else x[nt] for nt in x}
        return x

    def user_vectors(
        self,
        product: torch.Tensor,
        history: torch.Tensor,
        user_nodes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """User vectors from their recent items.

        Args:
            product: ``(P, d)`` product outputs of :meth:`forward`.
            history: ``(B, history_len)`` long, the last items latest first, ``-1`` padding.
            user_nodes: ``(B, d)`` user node outputs to add, or ``None``.

        Returns:
            ``(B, d)``.
        """
        mask = history >= 0
        items = product[history.clamp(min=0)]  # (B, L, d)
        logits = self.position_logits[: history.shape[1]].expand_as(history)
        weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1)
        weights = torch.nan_to_num(weights, nan=0.0)  # users with no history
        pooled = self.history_proj((weights.unsqueeze(-1) * items).sum(1))
        return pooled if user_nodes is None else pooled + user_nodes

    def scores(self, users: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
        """``(B, P)`` scores ``users @ product.T + bias``."""
        return users @ product.T + self.item_bias
