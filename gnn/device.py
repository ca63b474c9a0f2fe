"""Entry-point helpers: pick a torch device and seed every random generator.

Library code takes a ``device`` string and a ``seed`` argument; these helpers turn them into a
:class:`torch.device` and seeded generators, as PyTorch Geometric does at its entry points.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["device", "seed_everything"]


def device(name: str = "auto") -> torch.device:
    """The torch device called ``name``.

    Args:
        name: ``"auto"`` (CUDA when available, else Apple MPS, else CPU), or any name
            :class:`torch.device` accepts (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Returns:
        The device.

    Raises:
        ValueError: ``name`` is not a device torch knows, or names CUDA on a machine without it.
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device {name!r} is not a torch device: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and CUDA).

    Args:
        seed: any non-negative integer.
    """
    import torch

    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
