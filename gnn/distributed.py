"""Data-parallel training of the fusion GNN over ``torch.distributed`` (gloo on CPU, NCCL on GPU).

``kgrec train --nproc N`` starts N copies of itself through ``torchrun``
(:func:`torchrun_command`); each copy joins the process group (:func:`join`) and trains with
the same seed, so every rank builds the same graph, network and example order. Per epoch,
rank ``r`` takes every N-th example of the shuffled order (:meth:`Ranks.shard`) and steps on
``batch_size`` of its own examples; the gradients are averaged over the ranks before each
optimizer step (:meth:`Ranks.average_gradients`), so the weights stay identical everywhere.
The global batch is therefore ``N * batch_size`` examples and an epoch takes ``1/N`` of the
steps. Rank 0 alone validates, keeps the best weights, chooses the blend weights and writes the
run folder; the others wait on its stop decision (:meth:`Ranks.decide`) and, at the end, at a
barrier. One process (``N = 1``) never touches this module.

Any launcher that sets torchrun's variables works too, e.g. two machines::

    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 1 --rdzv-backend c10d \\
        --rdzv-endpoint host0:29500 -m kg train --tables shop --out run
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["Ranks", "join", "leave", "torchrun_command"]

#: How long a rank waits on the others (rank 0 validates and writes the run alone).
TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group.

    Attributes:
        rank: global rank, 0 .. world - 1.
        world: number of processes.
        device: the device the collectives' tensors live on (CUDA for NCCL).
    """

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (validation, blend selection, output)."""
        return self.rank == 0

    def shard(self, order: np.ndarray) -> np.ndarray:
        """This rank's share of ``order``: every ``world``-th element from ``rank`` on, after
        padding ``order`` by wrap-around to a multiple of ``world`` (as
        ``torch.utils.data.DistributedSampler`` does), so every rank takes as many steps.

        Args:
            order: ``(n,)`` example indices, the same on every rank.

        Returns:
            ``(ceil(n / world),)`` indices.
        """
        pad = -order.size % self.world
        if pad:
            order = np.concatenate([order, np.resize(order, pad)])
        return order[self.rank :: self.world]

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        import torch.distributed as dist

        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Replace every parameter's gradient by its mean over the ranks (a parameter without
        a gradient counts as zero), in one all-reduce."""
        import torch
        import torch.distributed as dist

        params = [p for p in module.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p)
            offset += n

    def mean(self, total: float, count: int) -> float:
        """``sum(total) / sum(count)`` over the ranks (e.g. the epoch's mean loss)."""
        import torch
        import torch.distributed as dist

        both = torch.tensor([total, float(count)], dtype=torch.float64, device=self.device)
        dist.all_reduce(both)
        return float(both[0] / max(float(both[1]), 1.0))

    def decide(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (e.g. its early-stopping decision)."""
        import torch
        import torch.distributed as dist

        value = torch.tensor([int(flag)], dtype=torch.int64, device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        import torch.distributed as dist

        dist.barrier()


def join(env: Mapping[str, str], device: str = "auto") -> Ranks | None:
    """Join the process group torchrun set up for this process.

    Args:
        env: the process environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
            ``MASTER_ADDR``, ``MASTER_PORT`` from torchrun).
        device: the training device (:func:`gnn.device.device`'s names): a CUDA device
            selects NCCL and this rank's local GPU, anything else gloo.

    Returns:
        the ranks, or ``None`` outside torchrun or with one process (the one-process path).
    """
    import torch
    import torch.distributed as dist

    from gnn.device import device as resolve_device

    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(int(env.get("LOCAL_RANK", "0")))
        dev = torch.device("cuda", torch.cuda.current_device())
    dist.init_process_group(
        "nccl" if dev.type == "cuda" else "gloo", init_method="env://", timeout=TIMEOUT
    )
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), device=dev)


def leave() -> None:
    """Leave the process group (no-op when none was joined)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The command that runs ``kgrec`` with ``argv`` in ``nproc`` processes on this machine.

    Args:
        nproc: number of processes (>= 2).
        argv: the ``kgrec`` arguments each process gets, e.g. ``["train", "--out", "run"]``
            (after ``--``, so that torchrun reads none of them as its own).
    """
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", "-m", "kg", "--", *argv,
    ]  # fmt: skip
