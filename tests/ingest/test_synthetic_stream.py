"""The streamed synthetic shop (``xl``): valid tables, the planted catalogue and histories of the
in-memory generator, every product covered, and the same bytes for the same seed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

from ingest.sources import synthetic_stream, synthetic_users
from ingest.sources.synthetic import PRESETS, SyntheticConfig, generate_shop
from ingest.sources.synthetic_stream import write_shop
from ingest.tables import GraphTables

#: Small chunks, so that the tiny shop spans several of each.
CONFIG = SyntheticConfig.preset("tiny", n_interactions=2_500)


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synthetic_stream, "_CHUNK_USERS", 48)
    monkeypatch.setattr(synthetic_users, "_CHUNK_USERS", 48)  # the in-memory generator's too
    monkeypatch.setattr(synthetic_stream, "_CHUNK_PRODUCTS", 70)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _leaf_sequence(tables: GraphTables) -> list[tuple[str, int, str]]:
    """(user, order, leaf category) of every interaction, sorted."""
    leaf = dict(
        zip(
            tables.in_category.column("product_id").to_pylist(),
            tables.in_category.column("category_id").to_pylist(),
            strict=True,
        )
    )
    rows = tables.interactions.select(["user_id", "order", "product_id"]).to_pylist()
    return sorted((r["user_id"], r["order"], leaf[r["product_id"]]) for r in rows)


def test_streamed_shop_is_valid_and_keeps_the_planted_plan(tmp_path: Path) -> None:
    shop = write_shop(CONFIG, tmp_path / "shop", show_progress=False)
    tables = GraphTables.load(shop.folder).validate()
    assert shop.counts == tables.counts()
    assert shop.counts["products"] == CONFIG.n_products
    assert shop.counts["users"] == CONFIG.n_users
    assert shop.counts["interactions"] == CONFIG.n_interactions
    assert tables.meta["streamed"] is True

    # every product is interacted with; no history repeats a product; orders are 0..n-1
    inter = tables.interactions
    assert pc.count_distinct(inter.column("product_id")).as_py() == CONFIG.n_products
    pairs = inter.group_by(["user_id", "product_id"]).aggregate([([], "count_all")])
    assert pc.max(pairs.column("count_all")).as_py() == 1
    per_user = inter.group_by("user_id").aggregate([("order", "max"), ([], "count_all")])
    assert per_user.column("order_max").to_pylist() == [
        n - 1 for n in per_user.column("count_all").to_pylist()
    ]

    # the catalogue, the users and the leaf of every history position are the in-memory
    # generator's: only the text and which repeats moved to unseen products differ
    memory = generate_shop(CONFIG, show_progress=False)
    for name in ("users", "categories", "brands", "in_category", "subcategory_of", "made_by"):
        assert tables.sorted().table(name).equals(memory.sorted().table(name)), name
    assert tables.products.column("price").equals(memory.products.column("price"))
    assert _leaf_sequence(tables) == _leaf_sequence(memory)
    cols = ["user_id", "order", "ts", "kind", "weight"]
    assert (
        tables.sorted().interactions.select(cols).equals(memory.sorted().interactions.select(cols))
    )
    titles = tables.products.column("title")
    assert pc.all(pc.greater(pc.utf8_length(titles), 10)).as_py()


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = write_shop(CONFIG, tmp_path / "a", show_progress=False).folder
    b = write_shop(CONFIG, tmp_path / "b", show_progress=False).folder
    c = write_shop(SyntheticConfig.preset("tiny", seed=1), tmp_path / "c", show_progress=False)
    assert _digests(a) == _digests(b)
    assert _digests(a)["interactions.parquet"] != _digests(c.folder)["interactions.parquet"]
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["fingerprint"] is None and manifest["counts"]["interactions"] == 2_500


def test_xl_is_the_large_shop() -> None:
    assert PRESETS["xl"] == PRESETS["large"]
    assert (PRESETS["xl"].n_products, PRESETS["xl"].n_interactions) == (10**6, 10**7)


def test_cli_streams_xl_into_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--preset xl`` takes the streamed path (checked here on a tiny stand-in: the preset's
    size never runs in the test suite)."""
    monkeypatch.setitem(PRESETS, "xl", CONFIG)
    from kg import cli

    assert cli.main(["ingest", "synthetic", "--preset", "xl", "--out", str(tmp_path / "t"),
                     "--no-progress"]) == 0  # fmt: skip
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert manifest["meta"]["streamed"] is True and manifest["counts"]["users"] == 200
    # a subprocess sees the real preset: its help names xl as streamed
    proc = subprocess.run(
        [sys.executable, "-m", "kg", "ingest", "synthetic", "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "xl is generated streamed" in " ".join(proc.stdout.split())
