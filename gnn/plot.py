"""Training-curve plot of a fitted model (PNG through matplotlib's Agg canvas, no pyplot)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_training_curve"]


def plot_training_curve(curve: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Plot train loss and validation NDCG@10 per epoch to ``path``.

    Args:
        curve: ``[{"epoch": int, "loss": float, "valid_ndcg@10"?: float}, ...]``.
        path: the PNG to write.
        title: figure title.

    Returns:
        ``path``.
    """
    # A Figure with its own Agg canvas: no pyplot, so the caller's backend is left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    epochs = [c["epoch"] for c in curve]
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(epochs, [c["loss"] for c in curve], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss (cross-entropy)", color="tab:blue")
    valid = [(c["epoch"], c["valid_ndcg@10"]) for c in curve if "valid_ndcg@10" in c]
    if valid:
        ax2 = ax.twinx()
        ax2.plot(*zip(*valid, strict=True), "o-", color="tab:orange", label="valid NDCG@10")
        ax2.set_ylabel("validation NDCG@10", color="tab:orange")
        best = max(valid, key=lambda v: v[1])
        ax2.axvline(best[0], color="grey", linestyle=":", linewidth=1)
    ax.set_title(title or "training curve")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
