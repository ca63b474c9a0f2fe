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
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from gnn.sampling import Subgraph

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
        fanout: mini-batch training with neighbour sampling (:mod:`gnn.sampling`): the
            in-neighbours drawn per node and edge type at each hop, one count per layer; empty
            (the default): every step propagates over the full graph.
        negatives: with ``fanout``, the products drawn uniformly per step as the softmax's
            negatives, beside the batch's targets (the full softmax needs every product's
            vector, so every node of the graph).
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
    fanout: tuple[int, ...] = ()
    negatives: int = 8192

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
        fanout = self.fanout
        if isinstance(fanout, str):  # "10,5", as kgrec train --fanout takes it
            fanout = tuple(f for f in fanout.replace(" ", "").split(",") if f)
        fanout = tuple(int(f) for f in fanout)
        object.__setattr__(self, "fanout", fanout)
        if fanout and (len(fanout) != self.num_layers or min(fanout) < 1):
            raise ValueError(
                f"FusionConfig: fanout needs one positive count per layer ({self.num_layers}), "
                f"got {fanout}"
            )
        if self.negatives < 1:
            raise ValueError("FusionConfig: negatives must be >= 1")


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
        self,
        features: torch.Tensor | None,
        edge_index: dict[Any, torch.Tensor],
        sub: Subgraph | None = None,
    ) -> dict[str, torch.Tensor]:
        """Output vectors of every node type, or of a sampled subgraph's seed nodes.

        Args:
            features: ``(P, feature_dim)`` product features, or ``None`` when feature_dim is 0.
            edge_index: ``{(src, rel, dst): (2, E) long}`` for the model's edge types (global
                ids); ignored with ``sub``.
            sub: a sampled subgraph (:class:`gnn.sampling.Subgraph`, one hop per layer), or
                ``None``: the whole graph. Each layer computes only the nodes the next one
                reads, as PyG's ``trim_to_layer`` does: layer ``l`` of ``L`` the nodes within
                ``L - 1 - l`` hops of the seeds, over the edges sampled into them.

        Returns:
            ``{node_type: (n, d)}``: every node, or with ``sub`` its seeds (the first
            ``sub.node_hops[t][0]`` of ``sub.nodes[t]``), in that order.
        """
        if sub is None:
            x = {nt: emb.weight for nt, emb in self.node_emb.items()}
            pid: torch.Tensor | slice = slice(None)
            n_products = self.num_nodes["product"]
        else:
            x = {nt: emb(sub.nodes[nt]) for nt, emb in self.node_emb.items()}
            pid = sub.nodes["product"]
            n_products = int(pid.shape[0])
        product = torch.zeros(n_products, self.config.dim, device=self.item_bias.device)
        if self.feature_proj is not None and features is not None:
            product = product + self.feature_proj(features[pid])
        if self.product_id is not None:
            product = product + self.product_id.weight[pid]
        x["product"] = product
        if sub is not None:
            return self._forward_sampled(x, sub)
        for conv, norms in zip(self.convs, self.norms, strict=True):
            out = conv({k: self.dropout(v) for k, v in x.items()}, edge_index)
            x = {nt: norms[nt](x[nt] + torch.relu(out[nt])) if nt in out else x[nt] for nt in x}
        return x

    def _forward_sampled(
        self, x: dict[str, torch.Tensor], sub: Subgraph
    ) -> dict[str, torch.Tensor]:
        """The layers over a sampled subgraph, trimmed (see :meth:`forward`). Each edge type's
        ``SAGEConv`` and the sum over edge types are ``HeteroConv``'s, called on bipartite
        ``(sources, kept destinations)`` pairs."""
        layers = len(self.convs)
        if layers == 0:
            return {nt: v[: sub.node_hops[nt][0]] for nt, v in x.items()}
        for layer, (conv, norms) in enumerate(zip(self.convs, self.norms, strict=True)):
            reach = layers - layer  # hop blocks of nodes kept after this layer
            keep = {nt: sum(h[:reach]) for nt, h in sub.node_hops.items()}
            dropped = {k: self.dropout(v) for k, v in x.items()}
            out: dict[str, list[torch.Tensor]] = {}
            for et, edges in sub.edge_index.items():
                src, _, dst = et
                e = edges[:, : sum(sub.edge_hops[et][:reach])]
                y = conv.convs[et]((dropped[src], dropped[dst][: keep[dst]]), e)
                out.setdefault(dst, []).append(y)
            x = {
                nt: norms[nt](v[: keep[nt]] + torch.relu(torch.stack(out[nt]).sum(0)))
                if nt in out else v[: keep[nt]]
                for nt, v in x.items()
            }  # fmt: skip
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
