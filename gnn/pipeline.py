"""One call from canonical tables to a trained, evaluated and saved fusion model.

    from gnn.pipeline import train_fusion
    from gnn.model import FusionConfig

    kge = KGEmbeddings.load("runs/kge")             # kg.embeddings.artifact (kgrec embed)
    result = train_fusion(tables, "runs/fusion", FusionConfig(), kge=kge)
    result.metrics["test"]["ndcg@10"]

The run folder gets the model (``config.json``, ``model.safetensors``, ``id_maps.json``),
``metrics.json`` (validation and test metrics, split statistics, data fingerprint, versions)
and ``training_curve.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnn.distributed import Ranks
from gnn.features import EntityVectors
from gnn.fusion import FusionRecommender
from gnn.model import FusionConfig
from gnn.splits import Split, given_split, leave_one_out
from ingest.tables import GraphTables

__all__ = ["TrainResult", "default_text_cache", "make_split", "train_fusion"]


@dataclass
class TrainResult:
    """What :func:`train_fusion` produced."""

    model: FusionRecommender
    split: Split
    metrics: dict[str, Any]
    folder: Path


def default_text_cache() -> Path:
    """``~/.kgrec/cache/text``: where text vectors are cached unless told otherwise."""
    return Path.home() / ".kgrec" / "cache" / "text"


def make_split(
    tables: GraphTables, protocol: str = "auto", *, valid_fraction: float = 0.1
) -> Split:
    """The evaluation split of ``tables``.

    Args:
        tables: the graph.
        protocol: ``"leave_one_out"``, ``"given"`` (the interactions' ``split`` column, with
            ``valid_fraction`` of each user's train rows held out for early stopping), or
            ``"auto"``: given when the ``split`` column is filled, else leave-one-out.
        valid_fraction: see ``"given"``.
    """
    if protocol == "auto":
        column = tables.interactions.column("split")
        protocol = "given" if column.null_count < len(column) else "leave_one_out"
    if protocol == "leave_one_out":
        return leave_one_out(tables)
    if protocol == "given":
        return given_split(tables, valid_fraction=valid_fraction, seed=0)
    raise ValueError(f"protocol must be auto, leave_one_out or given, not {protocol!r}")


def train_fusion(
    tables: GraphTables,
    out: str | Path,
    config: FusionConfig | None = None,
    *,
    split: Split | None = None,
    kge: EntityVectors | None = None,
    text_cache: str | Path | None = None,
    text_model: str | Path | None = None,
    seed: int = 0,
    examples_per_user: int | None = None,
    warm_start: str | Path | None = None,
    ks: tuple[int, ...] = (10, 20),
    show_progress: bool = True,
    ranks: Ranks | None = None,
) -> TrainResult:
    """Build features, train, evaluate on validation and test, save the run.

    Args:
        tables: the graph (exported from Neo4j or read from files).
        out: the run folder (created; existing model files are replaced).
        config: the model; ``use_kge`` needs ``kge``.
        split: the split; default :func:`make_split` (``"auto"``).
        kge: KG embeddings whose product vectors feed the model (``kgrec embed``'s artifact:
            ``kg.embeddings.artifact.KGEmbeddings.load(folder)``).
        text_cache: text vector cache root; default :func:`default_text_cache`.
        text_model: a local BERT folder; default the bundled all-MiniLM-L6-v2.
        seed: training seed.
        examples_per_user: cap on training examples per user and epoch.
        warm_start: a run folder to start from (its weights; new products and nodes get
            fresh rows: :mod:`gnn.warm_start`); ``None`` fits from random weights.
        ks: metric cutoffs.
        show_progress: progress bars.
        ranks: train data parallel over these processes (:mod:`gnn.distributed`; every rank
            calls this with the same arguments). Rank 0 encodes the text first (the others
            then read its cache), validates, evaluates and writes the run folder; the others
            return when it is written, with empty metrics.

    Returns:
        the model, split, metrics and folder.
    """
    from gnn.evaluate import evaluate
    from gnn.features import kge_features, text_features
    from gnn.plot import plot_training_curve
    from ingest.versions import library_versions

    config = config or FusionConfig()
    if config.use_kge and kge is None:
        raise ValueError("use_kge is on but no KG embeddings were given (kgrec embed --out ...)")
    split = split or make_split(tables)
    text = kge_vectors = None
    info: dict[str, Any] = {}
    if config.use_text:
        if ranks is not None and not ranks.main:
            ranks.barrier()  # rank 0 fills the text cache first
        text, info["text"] = text_features(
            tables,
            split.item_ids,
            text_cache or default_text_cache(),
            model_path=text_model,
            show_progress=show_progress,
        )
        if ranks is not None and ranks.main:
            ranks.barrier()
    if config.use_kge:
        assert kge is not None
        kge_vectors, info["kge"] = kge_features(kge, split.item_ids)
    model = FusionRecommender(
        tables,
        config,
        text=text,
        kge=kge_vectors,
        feature_info=info,
        examples_per_user=examples_per_user,
        warm_start=warm_start,
    )
    model.fit(split, seed=seed, show_progress=show_progress, ranks=ranks)
    folder = Path(out)
    if ranks is not None and not ranks.main:
        ranks.barrier()  # until rank 0 has written the run folder
        return TrainResult(model=model, split=split, metrics={}, folder=folder)
    model.save(folder)
    results = {
        on: evaluate(model, split, on=on, ks=ks, show_progress=show_progress)
        for on in ("valid", "test")
        if split.eval_users(on).size
    }
    metrics = {
        **{on: r.metrics for on, r in results.items()},
        "n_users": {on: r.n_users for on, r in results.items()},
        "split": {**split.meta, **split.stats()},
        "data_fingerprint": tables.fingerprint(),
        "seed": seed,
        "fit": {k: v for k, v in model.fit_info.items() if k != "curve"},
        "versions": library_versions(),
    }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    plot_training_curve(
        model.fit_info["curve"], folder / "training_curve.png", title=f"fusion, seed {seed}"
    )
    if ranks is not None:
        ranks.barrier()
    return TrainResult(model=model, split=split, metrics=metrics, folder=folder)
