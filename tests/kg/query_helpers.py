"""A small fusion model on the synthetic ``tiny`` shop for the query-layer tests.

:func:`tiny_run` trains it once per test session: the run, the tables, a tiny random BERT and
the text cache live in the session's base temporary folder, and later modules reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.sources.synthetic import SyntheticConfig, generate_shop
from ingest.tables import GraphTables
from tests.gnn.tiny_bert import tiny_bert

#: Fast settings: a few epochs of a 32-dim model with text features, and a co-occurrence blend.
FAST = {
    "dim": 32,
    "max_epochs": 6,
    "eval_every": 2,
    "patience": 3,
    "batch_size": 256,
    "blend_grid": (0.0, 0.5),
    "device": "cpu",
}


@dataclass(frozen=True)
class TinyRun:
    """Folders of the trained run."""

    run: Path
    tables: Path
    bert: Path
    text_cache: Path


def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """Train (first call of the session) or reuse the tiny fusion run."""
    base = tmp_path_factory.getbasetemp() / "kg-query-tiny"
    out = TinyRun(base / "run", base / "tables", base / "bert" / "model", base / "text-cache")
    if (base / "done").exists():
        return out
    import torch

    from gnn.features import text_features
    from gnn.fusion import FusionRecommender
    from gnn.splits import leave_one_out

    base.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        shop = generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)
        split = leave_one_out(shop)
        tiny_bert(base / "bert")
        text, info = text_features(
            shop, split.item_ids, out.text_cache, model_path=out.bert, show_progress=False
        )
        model = FusionRecommender(
            shop, text=text, feature_info={"text": info}, use_kge=False, **FAST
        )
        model.fit(split, seed=0, show_progress=False)
        model.save(out.run)
        shop.save(out.tables)
    finally:
        torch.set_num_threads(threads)
    (base / "done").touch()
    return out


def load_tables(run: TinyRun) -> GraphTables:
    """The tables of the run."""
    return GraphTables.load(run.tables)
