"""Uniform neighbour sampling for mini-batch training of the fusion GNN on graphs whose
full-graph propagation does not fit (the ``xl`` shop: a million products and ten million
interactions), as PyG's ``NeighborLoader`` samples them.

PyG's samplers need its compiled companions ``pyg-lib`` or ``torch-sparse`` (``'NeighborSampler'
requires either 'pyg-lib' or 'torch-sparse'``), and neither has a wheel for this project's torch
on PyPI (``pip download pyg-lib``: "No matching distribution found"), so the sampling is done
here, in numpy, the same way:

* hop by hop, from the seed nodes: for every edge type that ends at a node type of the
  frontier, each frontier node draws ``fanout[hop]`` of its in-neighbours uniformly with
  replacement, or takes all of them when it has no more than that;
* nodes reached for the first time form the next frontier;
* the subgraph holds every sampled edge, in local ids, nodes and edges in the order of the hop
  that reached them (the seeds first, in the order given), so that each layer can compute
  only what the next one reads (:meth:`gnn.model.FusionGNN.forward`, as PyG's
  ``trim_to_layer``).

Drawing with replacement keeps the mean aggregation of ``SAGEConv`` an unbiased estimate of
the full mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["NeighbourSampler", "Subgraph"]

EdgeType = tuple[str, str, str]


@dataclass(frozen=True)
class Subgraph:
    """A sampled subgraph.

    Attributes:
        nodes: ``{node_type: (n,) long}`` the global ids of its nodes; local id ``i`` is
            ``nodes[t][i]``: the seeds of each type first, in the order given, then the nodes
            first reached at hop 1, at hop 2...
        edge_index: ``{edge_type: (2, E) long}`` sampled edges in local ids, those sampled at
            hop 0 (into the seeds) first, then hop 1...
        node_hops: ``{node_type: [seeds, first reached at hop 1, ...]}`` counts (hops + 1).
        edge_hops: ``{edge_type: [sampled at hop 0, at hop 1, ...]}`` counts (hops).
    """

    nodes: dict[str, torch.Tensor]
    edge_index: dict[EdgeType, torch.Tensor]
    node_hops: dict[str, list[int]]
    edge_hops: dict[EdgeType, list[int]]

    @property
    def num_edges(self) -> int:
        return sum(int(e.shape[1]) for e in self.edge_index.values())


class NeighbourSampler:
    """Samples the neighbourhoods of seed nodes (module docstring).

    Args:
        edge_index: ``{(src, rel, dst): (2, E) long}`` the graph (global ids).
        num_nodes: ``{node_type: count}``.
        fanout: in-neighbours drawn per node and edge type at each hop (one hop per layer).
    """

    def __init__(
        self,
        edge_index: dict[EdgeType, torch.Tensor],
        num_nodes: dict[str, int],
        fanout: tuple[int, ...],
    ) -> None:
        if not fanout or any(f < 1 for f in fanout):
            raise ValueError(f"fanout needs one positive count per hop, got {fanout}")
        self.fanout = tuple(fanout)
        self.num_nodes = dict(num_nodes)
        #: per edge type: (indptr over dst, src ids sorted by dst)
        self.csc: dict[EdgeType, tuple[np.ndarray, np.ndarray]] = {}
        for et, ei in edge_index.items():
            src, dst = (ei[0].cpu().numpy(), ei[1].cpu().numpy())
            order = np.argsort(dst, kind="stable")
            counts = np.bincount(dst, minlength=num_nodes[et[2]])
            indptr = np.zeros(counts.size + 1, np.int64)
            np.cumsum(counts, out=indptr[1:])
            self.csc[et] = (indptr, src[order].astype(np.int64))
        # global -> local id of each type, -1 when not in the current subgraph
        self._local = {nt: np.full(n, -1, np.int64) for nt, n in num_nodes.items()}

    def sample(
        self, seeds: dict[str, np.ndarray], rng: np.random.Generator, device: torch.device
    ) -> Subgraph:
        """The subgraph of ``seeds`` (``{node_type: distinct global ids}``)."""
        nodes: dict[str, list[np.ndarray]] = {nt: [] for nt in self.num_nodes}
        size = dict.fromkeys(self.num_nodes, 0)
        frontier: dict[str, np.ndarray] = {}

        def add(nt: str, ids: np.ndarray) -> np.ndarray:
            """Give the ids new to the subgraph local ids; return those new ones."""
            local = self._local[nt]
            fresh = np.unique(ids)
            fresh = fresh[local[fresh] < 0]
            local[fresh] = np.arange(size[nt], size[nt] + fresh.size)
            size[nt] += fresh.size
            nodes[nt].append(fresh)
            return fresh

        node_hops = {nt: [0] * (len(self.fanout) + 1) for nt in self.num_nodes}
        edge_hops = {et: [0] * len(self.fanout) for et in self.csc}
        for nt, ids in seeds.items():
            ids = np.asarray(ids, np.int64)
            local = self._local[nt]
            local[ids] = np.arange(ids.size)
            size[nt] = node_hops[nt][0] = ids.size
            nodes[nt].append(ids)
            frontier[nt] = ids
        edges: dict[EdgeType, list[tuple[np.ndarray, np.ndarray]]] = {et: [] for et in self.csc}
        try:
            for hop, fan in enumerate(self.fanout):
                reached: dict[str, list[np.ndarray]] = {nt: [] for nt in self.num_nodes}
                for et, (indptr, src_sorted) in self.csc.items():
                    dst = frontier.get(et[2])
                    if dst is None or dst.size == 0:
                        continue
                    src, dst_rep = _draw(indptr, src_sorted, dst, fan, rng)
                    if src.size:
                        edges[et].append((src, dst_rep))
                        edge_hops[et][hop] = src.size
                        reached[et[0]].append(src)
                frontier = {
                    nt: add(nt, np.concatenate(parts)) for nt, parts in reached.items() if parts
                }
                for nt, fresh in frontier.items():
                    node_hops[nt][hop + 1] = fresh.size
            out_nodes = {
                nt: torch.as_tensor(np.concatenate(parts) if parts else np.zeros(0, np.int64),
                                    device=device)
                for nt, parts in nodes.items()
            }  # fmt: skip
            out_edges = {}
            for et, parts in edges.items():
                if not parts:
                    out_edges[et] = torch.zeros((2, 0), dtype=torch.long, device=device)
                    continue
                src = self._local[et[0]][np.concatenate([p[0] for p in parts])]
                dst = self._local[et[2]][np.concatenate([p[1] for p in parts])]
                out_edges[et] = torch.as_tensor(np.stack([src, dst]), device=device)
        finally:
            for nt, parts in nodes.items():
                for ids in parts:
                    self._local[nt][ids] = -1
        return Subgraph(out_nodes, out_edges, node_hops, edge_hops)


def _draw(
    indptr: np.ndarray, src_sorted: np.ndarray, dst: np.ndarray, fan: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(src, dst)`` sampled edges into ``dst``: all in-edges of a node with at most ``fan``,
    else ``fan`` drawn uniformly with replacement."""
    start, deg = indptr[dst], indptr[dst + 1] - indptr[dst]
    small = deg <= fan
    # every in-edge of the small ones
    s_start, s_deg = start[small], deg[small]
    total = int(s_deg.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(s_deg) - s_deg, s_deg)
    all_pos = np.repeat(s_start, s_deg) + offsets
    all_dst = np.repeat(dst[small], s_deg)
    # fan draws for the others
    big = ~small
    b_start, b_deg = start[big], deg[big]
    draws = (rng.random((b_start.size, fan)) * b_deg[:, None]).astype(np.int64)
    drawn_pos = (b_start[:, None] + draws).ravel()
    drawn_dst = np.repeat(dst[big], fan)
    pos = np.concatenate([all_pos, drawn_pos])
    return src_sorted[pos], np.concatenate([all_dst, drawn_dst])
