"""Warm start: a saved fusion model's weights copied into a new one built on a grown graph.

``kgrec train --warm-start RUN`` continues the model of ``RUN`` on today's graph instead of
fitting from random weights. The network's shared weights (feature projection, message
passing, norms, history projection, position logits) are copied as they are. Weights with a row
per node (the product id embeddings and item biases, the embeddings of categories, brands and
other nodes) are copied row by row for the nodes both graphs have, matched by id; a node the
saved model lacks (a new product) keeps its fresh initialisation, and one it had that is gone is
dropped. Training then goes on from there as a fit does (early stopping and the final-score
weights chosen on validation again).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gnn.fusion_io import read_fusion

__all__ = ["WarmStartError", "warm_start"]


class WarmStartError(ValueError):
    """The saved model cannot seed this one (another architecture); the message says why."""


def warm_start(
    module: torch.nn.Module, node_ids: dict[str, list[str]], folder: str | Path
) -> dict[str, int]:
    """Copy the weights of the model saved in ``folder`` into ``module`` (module docstring).

    Args:
        module: the new network (:class:`gnn.model.FusionGNN`), already built for the new graph.
        node_ids: the new graph's node ids per node type (row order of the per-node weights).
        folder: a run folder of ``kgrec train``.

    Returns:
        ``{"tensors": copied whole, "rows": per-node rows copied, "new_rows": rows left as
        initialised}``.

    Raises:
        WarmStartError: a weight of the saved model is missing here or has another shape
            (other ``dim``, layers, features...).
    """
    saved = read_fusion(folder)
    old_ids = saved.arrays.node_ids
    state = module.state_dict()
    counts = {"tensors": 0, "rows": 0, "new_rows": 0}
    for name, value in saved.network.items():
        if name not in state:
            raise WarmStartError(
                f"{folder}: weight {name!r} is not in this model (other settings?)"
            )
        target = state[name]
        source = torch.as_tensor(value, dtype=target.dtype)
        node_type = _node_type(name)
        if node_type is None:
            if tuple(source.shape) != tuple(target.shape):
                raise WarmStartError(
                    f"{folder}: weight {name!r} has shape {tuple(source.shape)}, this model "
                    f"{tuple(target.shape)} (other dim, layers or features)"
                )
            target.copy_(source)
            counts["tensors"] += 1
            continue
        if tuple(source.shape[1:]) != tuple(target.shape[1:]):
            raise WarmStartError(f"{folder}: weight {name!r} has another width")
        old = {node: i for i, node in enumerate(old_ids.get(node_type, []))}
        pairs = [(i, old[node]) for i, node in enumerate(node_ids[node_type]) if node in old]
        if pairs:
            new_rows, old_rows = (torch.tensor(x) for x in zip(*pairs, strict=True))
            target[new_rows] = source[old_rows]
        counts["rows"] += len(pairs)
        counts["new_rows"] += target.shape[0] - len(pairs)
    module.load_state_dict(state)
    return counts


def _node_type(name: str) -> str | None:
    """The node type whose rows weight ``name`` has, or ``None`` for a shared weight."""
    if name in ("product_id.weight", "item_bias"):
        return "product"
    if name.startswith("node_emb."):
        return name.split(".")[1]
    return None
