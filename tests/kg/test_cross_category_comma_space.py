"""Cross-category recommendations on a catalogue whose category paths are joined with ", " and
whose names contain ", ": never a product from the user's own branch of the true tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from gnn.fusion import FusionRecommender
from gnn.splits import leave_one_out
from ingest.sources.amazon import read_amazon
from ingest.tables import GraphTables
from kg.query import Recommender
from tests.ingest.comma_space_sample import write_comma_space_sample
from tests.kg.query_helpers import FAST


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    folder = tmp_path_factory.mktemp("comma-space")
    return folder, write_comma_space_sample(folder)


@pytest.fixture(scope="module")
def model(sample: tuple[Path, dict[str, list[str]]]) -> FusionRecommender:
    """A small fusion model (no text or KGE features) on the sample as read."""
    tables = read_amazon(sample[0], show_progress=False)
    fusion = FusionRecommender(tables, use_text=False, use_kge=False, **FAST)
    return fusion.fit(leave_one_out(tables), seed=0, show_progress=False)


def _violations(rec: Recommender, tables: GraphTables, truth: dict[str, list[str]]) -> int:
    """Results whose true level-L category is on the line of one the user bought in: the same
    category, an ancestor or a descendant (compared as true name paths cut at level L)."""
    histories: dict[str, list[str]] = {}
    for r in tables.interactions.to_pylist():
        histories.setdefault(r["user_id"], []).append(r["product_id"])
    found = bad = 0
    for level in (1, 2, 3):
        for user, history in histories.items():
            mine = {tuple(truth[p][:level]) for p in history}
            for result in rec.cross_category(user, k=10, level=level):
                found += 1
                theirs = tuple(truth[result.product_id][:level])
                on_line = any(theirs[: len(m)] == m or m[: len(theirs)] == theirs for m in mine)
                bad += on_line
    assert found > 1000  # not vacuous: most users get results at every level
    return bad


def test_cross_category_stays_out_of_the_users_branches(
    sample: tuple[Path, dict[str, list[str]]], model: FusionRecommender
) -> None:
    folder, truth = sample
    tables = read_amazon(folder, show_progress=False)
    assert tables.meta["category_separator"] == ", "
    rec = Recommender(model, tables)
    assert rec.index.branching_level == 1
    assert _violations(rec, tables, truth) == 0


def test_flat_categories_would_break_it(
    sample: tuple[Path, dict[str, list[str]]], model: FusionRecommender
) -> None:
    """The check above can fail: read as one flat category per string (the old split), the
    same model recommends from the users' own departments."""
    folder, truth = sample
    flat = read_amazon(folder, category_separator=",", show_progress=False)
    rec = Recommender(model, flat)
    histories: dict[str, list[str]] = {}
    for r in flat.interactions.to_pylist():
        histories.setdefault(r["user_id"], []).append(r["product_id"])
    same_department = sum(
        truth[res.product_id][0] in {truth[p][0] for p in history}
        for user, history in histories.items()
        for res in rec.cross_category(user, k=10, level=1)
    )
    assert same_department > 0
