"""``kgrec embed`` resumes a checkpoint only when it was made from the same triples with the same
settings; otherwise one line names the two ways out (issue 19, item 1)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from ingest.sources.synthetic import SyntheticConfig, generate_shop
from ingest.tables import GraphTables
from kg.embeddings import pipeline
from kg.embeddings.pipeline import embed_graph
from kg.embeddings.train import CheckpointMismatchError, EmbedConfig
from tests.kg.cli_helpers import kgrec

CONFIG = EmbedConfig(model="transe", dim=8, epochs=4, batch_size=256, eval_every=2, patience=0)


def _embed(tables: Path, out: Path, *extra: str):
    return kgrec(
        "embed", "--tables", str(tables), "--out", str(out), "--model", "transe", "--dim", "8",
        "--epochs", "4", "--batch-size", "256", "--eval-every", "2", "--patience", "0",
        "--no-write-back", "--no-progress", *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def shop() -> GraphTables:
    return generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)


def _with(tables: GraphTables, **changed: pa.Table) -> GraphTables:
    """``tables`` with some tables replaced."""
    return GraphTables(**{**{n: tables.table(n) for n in tables.counts()}, **changed})


def _rebranded(tables: GraphTables) -> GraphTables:
    """The same entities, with every product moved to the next brand."""
    brands = tables.brands.column("id").to_pylist()
    moved = [
        brands[(brands.index(b) + 1) % len(brands)] for b in tables.made_by["brand_id"].to_pylist()
    ]
    return _with(tables, made_by=tables.made_by.set_column(1, "brand_id", pa.array(moved)))


def test_other_data_is_refused_in_one_line_and_restart_trains_anew(shop, tmp_path: Path) -> None:
    first, second = tmp_path / "t1", tmp_path / "t2"
    shop.save(first)
    _rebranded(shop).save(second)
    out = tmp_path / "kge"
    done = _embed(first, out)
    assert done.returncode == 0, done.stderr
    assert "resuming" not in done.stdout
    again = _embed(first, out)  # the same run: resumes its finished checkpoint, trains nothing
    assert again.returncode == 0, again.stderr
    assert "resuming from epoch 4" in again.stdout
    stale = _embed(second, out)
    assert stale.returncode == 1
    lines = stale.stderr.strip().splitlines()
    assert len(lines) == 1, stale.stderr
    assert "training triples differ" in lines[0]
    assert "fresh --out" in lines[0] and "--restart" in lines[0]
    config = (out / "config.json").read_text()
    assert GraphTables.load(second).fingerprint() not in config  # nothing was stamped
    fresh = _embed(second, out, "--restart")
    assert fresh.returncode == 0, fresh.stderr
    assert "resuming" not in fresh.stdout
    assert GraphTables.load(second).fingerprint() in (out / "config.json").read_text()


def test_more_entities_or_other_settings_are_one_line_errors(shop, tmp_path: Path) -> None:
    first, grown = tmp_path / "t1", tmp_path / "t2"
    shop.save(first)
    extra = pa.table({"id": ["new-brand"], "name": ["New brand"]}, schema=shop.brands.schema)
    brand_ids = shop.made_by["brand_id"].to_pylist()
    bigger = _with(
        shop,
        brands=pa.concat_tables([shop.brands, extra]),
        made_by=shop.made_by.set_column(1, "brand_id", pa.array(["new-brand", *brand_ids[1:]])),
    )
    bigger.save(grown)
    out = tmp_path / "kge"
    assert _embed(first, out).returncode == 0
    stale = _embed(grown, out)
    assert stale.returncode == 1
    assert len(stale.stderr.strip().splitlines()) == 1, stale.stderr
    assert "size mismatch" not in stale.stderr and "training triples differ" in stale.stderr
    other = _embed(first, out, "--lr", "0.5")
    assert other.returncode == 1
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and "lr 0.01 then, 0.5 now" in lines[0], other.stderr


def test_an_interrupted_run_says_where_it_resumes(
    shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "kge"
    real = pipeline.train_kge
    with monkeypatch.context() as m:  # an interruption after two epochs
        m.setattr(pipeline, "train_kge", lambda *a, **kw: real(*a, **kw, stop_after_epochs=2))
        embed_graph(shop, CONFIG, out, show_progress=False)
    seen: list[int] = []
    emb = embed_graph(shop, CONFIG, out, on_resume=seen.append, show_progress=False)
    assert seen == [2]
    assert emb.config["training"]["epochs_trained"] == 4
    with pytest.raises(CheckpointMismatchError):
        embed_graph(_rebranded(shop), CONFIG, out, show_progress=False)
