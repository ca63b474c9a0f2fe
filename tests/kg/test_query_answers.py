"""Precomputed answers (``kgrec precompute``, :mod:`kg.query.answers`) and how ``kgrec serve``
sends them: the same bytes as the live answers, refused when stale."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gnn.fusion_io import FusionArrays
from ingest.tables import GraphTables
from kg.query import Recommender, ScoreWeights
from kg.query.answers import (
    ANSWERS_FILE,
    JSON_ENCODER,
    AnswerStore,
    StaleAnswersError,
    answers_key,
    precompute_answers,
)
from kg.serve import create_app
from tests.kg.query_helpers import TinyRun

K = 10


@pytest.fixture(scope="module")
def run_copy(run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run (the session's run must stay without a store)."""
    folder = tmp_path_factory.mktemp("answers") / "run"
    shutil.copytree(run.run, folder)
    return folder


@pytest.fixture(scope="module")
def store(rec: Recommender, run_copy: Path) -> Iterator[AnswerStore]:
    """Answers with ``k = K``, computed by two forked workers."""
    manifest = precompute_answers(rec, run_copy, k=K, workers=2, show_progress=False)
    assert manifest["reused"] is False
    opened = AnswerStore.open(run_copy, rec)
    assert opened is not None
    yield opened
    opened.close()


def _live(rec: Recommender, op: str, query: str, k: int) -> bytes:
    records = getattr(rec, op)(query, k)
    return ",".join(JSON_ENCODER.encode(r.to_dict()) for r in records).encode("utf-8")


def test_stored_answers_are_the_live_ones(rec: Recommender, store: AnswerStore) -> None:
    ix = rec.index
    assert store.k == K and store.level == ix.branching_level
    assert store.manifest["counts"] == {
        "related": ix.n_products, "recommend": len(ix.user_ids),
        "cross_category": len(ix.user_ids),
    }  # fmt: skip
    compared = 0
    for op, ids in (
        ("related", ix.product_ids),
        ("recommend", ix.user_ids),
        ("cross_category", ix.user_ids),
    ):
        for query in ids:
            for k in (1, 2, K):
                assert store.items(op, query, k) == _live(rec, op, query, k), (op, query, k)
                compared += 1
            assert store.items(op, query, K + 1) is None  # beyond the stored k: live
    assert compared == 3 * (ix.n_products + 2 * len(ix.user_ids))


@pytest.fixture(scope="module")
def clients(rec: Recommender, store: AnswerStore) -> Iterator[tuple[TestClient, TestClient]]:
    with TestClient(create_app(rec)) as live, TestClient(create_app(rec, store)) as stored:
        yield live, stored


@pytest.mark.parametrize(
    "path",
    [
        "/products/p3/related-products",
        "/products/p3/related-products?k=2",
        "/products/p3/related-products?k=20",  # above the stored k: live
        "/products/p3/related-products?same_category=true",
        "/products/p3/related-products?exclude=p4",
        "/products/p3/related-products?paths=true",
        "/users/u1/recommendations",
        "/users/u1/recommendations?k=1",
        "/users/u1/recommendations?exclude_seen=false",
        "/users/u1/recommendations?paths=true",
        "/users/u7/cross-category-recommendations?k=3",
        "/users/u7/cross-category-recommendations?level=1",
        "/users/u7/cross-category-recommendations?level=2",
        "/products/nope/related-products",
        "/users/nope/recommendations",
        "/users/nope/cross-category-recommendations",
        "/users/u1/recommendations?k=0",
    ],
)
def test_served_answers_equal_live_ones(clients: tuple[TestClient, TestClient], path: str) -> None:
    live, stored = clients
    a, b = live.get(path), stored.get(path)
    assert (b.status_code, b.headers["content-type"]) == (a.status_code, a.headers["content-type"])
    assert b.content == a.content


def test_health_says_what_is_precomputed(clients: tuple[TestClient, TestClient]) -> None:
    live, stored = clients
    assert live.get("/health").json()["precomputed"] is None
    assert stored.get("/health").json()["precomputed"] == K


def test_default_requests_come_from_the_store(
    rec: Recommender,
    store: AnswerStore,
    clients: tuple[TestClient, TestClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The store's reads are replaced by a marker: default requests answer it (nothing is
    # computed live), the others never read the store.
    reads: list[tuple[str, str, int]] = []

    def marker(op: str, query: str, k: int) -> bytes:
        reads.append((op, query, k))
        return b'"stored"'

    monkeypatch.setattr(store, "items", marker)
    _, client = clients
    p, u = rec.index.product_ids[4], rec.index.user_ids[2]
    for path in (
        f"/products/{p}/related-products?k=3",
        f"/users/{u}/recommendations",
        f"/users/{u}/cross-category-recommendations?level={rec.index.branching_level}",
    ):
        assert client.get(path).json()["items"] == ["stored"]
    assert reads == [("related", p, 3), ("recommend", u, 10), ("cross_category", u, 10)]
    for path in (
        f"/products/{p}/related-products?paths=true",
        f"/products/{p}/related-products?same_category=false",
        f"/users/{u}/recommendations?categories={rec.index.category_ids[0]}",
        f"/users/{u}/recommendations?exclude_seen=false",
    ):
        assert client.get(path).json()["items"] != ["stored"]
    assert len(reads) == 3


def test_precompute_is_idempotent(rec: Recommender, run_copy: Path, store: AnswerStore) -> None:
    before = (run_copy / ANSWERS_FILE).stat().st_mtime_ns
    again = precompute_answers(rec, run_copy, k=K - 2, workers=1, show_progress=False)
    assert again["reused"] is True and again["k"] == K
    assert (run_copy / ANSWERS_FILE).stat().st_mtime_ns == before
    leftovers = [p.name for p in run_copy.iterdir() if p.name.startswith(f".{ANSWERS_FILE}")]
    assert leftovers == []


def test_stale_store_is_refused(rec: Recommender, run_copy: Path, store: AnswerStore) -> None:
    other_weights = Recommender(rec.model, rec.tables, weights=ScoreWeights(brand=0.3))
    with pytest.raises(StaleAnswersError, match="another model, graph"):
        AnswerStore.open(run_copy, other_weights)
    # the key follows the model's arrays and the graph, not only their files
    bias = rec.model.item_bias.copy()
    bias[0] += 1e-3
    other_model = dataclasses.replace(rec.model, item_bias=bias)
    assert answers_key(Recommender(other_model, rec.tables)) != answers_key(rec)
    fewer = rec.tables.table("interactions").slice(1)
    other_graph = GraphTables(
        **{n: rec.tables.table(n) for n in _TABLES if n != "interactions"},
        interactions=fewer,
        meta=dict(rec.tables.meta),
    )
    assert answers_key(Recommender(rec.model, other_graph)) != answers_key(rec)
    assert answers_key(Recommender.load(run_copy, rec.tables)) == answers_key(rec)
    assert isinstance(rec.model, FusionArrays)


_TABLES = (
    "users", "products", "interactions", "in_category", "made_by", "triples", "categories",
    "brands", "entities", "subcategory_of",
)  # fmt: skip


def test_precompute_refuses_bad_settings(rec: Recommender, run_copy: Path) -> None:
    with pytest.raises(ValueError, match="k must be between"):
        precompute_answers(rec, run_copy, k=0, show_progress=False)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        precompute_answers(rec, run_copy, k=2, workers=0, show_progress=False)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from kg.cli import main

    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_cli_precompute_and_serve(
    run: TinyRun,
    rec: Recommender,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import kg.serve_run
    from kg.cli import main

    folder = tmp_path / "run"
    shutil.copytree(run.run, folder)
    files = ["--model", str(folder), "--tables", str(run.tables)]
    out = _cli(capsys, "precompute", *files, "-k", "3", "--workers", "1", "--no-progress")
    n, users = rec.index.n_products, len(rec.index.user_ids)
    assert f"precomputed {n + 2 * users:,} answers (related of {n:,} products" in out
    assert "k up to 3) in " in out and str(folder / ANSWERS_FILE) in out
    out = _cli(capsys, "precompute", *files, "-k", "3", "--no-progress")
    assert "is up to date (k up to 3" in out and "--force recomputes it" in out

    served: dict[str, Any] = {}
    monkeypatch.setattr(kg.serve_run, "run_server", lambda app, config: served.update(app=app))
    serve = ["serve", *files, "--lazy-text-encoder"]
    assert "precomputed answers: k up to 3, default parameters" in _cli(capsys, *serve)
    with TestClient(served["app"]) as client:
        assert client.get("/health").json()["precomputed"] == 3
    assert "precomputed answers: none" in _cli(capsys, *serve, "--no-precomputed")

    # a store made for something else: serve stops with one line naming both ways out
    with sqlite3.connect(folder / ANSWERS_FILE) as db:
        (value,) = db.execute("SELECT value FROM meta WHERE key = 'manifest'").fetchone()
        manifest = {**json.loads(value), "key": "0" * 64}
        db.execute("UPDATE meta SET value = ? WHERE key = 'manifest'", (json.dumps(manifest),))
    db.close()
    with pytest.raises(SystemExit) as info:
        main(serve)
    message = str(info.value.code)
    assert message.startswith("kgrec: error: ") and "\n" not in message
    assert "precomputed for another model" in message
    assert "kgrec precompute" in message and "--no-precomputed" in message
    assert "precomputed answers: none" in _cli(capsys, *serve, "--no-precomputed")


def test_invalidated_answers_are_computed_live(
    rec: Recommender, run: TinyRun, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    shutil.copytree(run.run, folder)
    precompute_answers(rec, folder, k=3, workers=1, show_progress=False)
    store = AnswerStore.open(folder, rec)
    assert store is not None
    product, user = rec.index.product_ids[5], rec.index.user_ids[3]
    other = rec.index.user_ids[4]
    # The stored answers are replaced by a marker row (what a stale answer would be): the
    # server sends the marker until the answer is invalidated, then computes it live.
    with sqlite3.connect(folder / ANSWERS_FILE) as db:
        marker = zlib.compress(b'"stored"')
        ends = np.full(3, len(b'"stored"'), "<u4").tobytes()
        db.execute("UPDATE answers SET items = ?, ends = ?", (marker, ends))
    db.close()
    paths = {
        "related": f"/products/{product}/related-products?k=2",
        "recommend": f"/users/{user}/recommendations?k=2",
        "cross_category": f"/users/{user}/cross-category-recommendations?k=2",
    }
    live = {
        "related": [r.to_dict() for r in rec.related(product, 2)],
        "recommend": [r.to_dict() for r in rec.recommend(user, 2)],
        "cross_category": [r.to_dict() for r in rec.cross_category(user, 2)],
    }
    with TestClient(create_app(rec, store)) as client:
        for path in paths.values():
            assert client.get(path).json()["items"] == ["stored"]
        # another handle (another process's, e.g. the live-update writer) invalidates
        writer = AnswerStore.open(folder, rec)
        assert writer is not None
        assert writer.invalidate_products([product]) == 1
        assert writer.invalidate_users([user]) == 2
        assert writer.invalidate_users([user]) == 0  # already gone
        for op, path in paths.items():
            assert client.get(path).json()["items"] == live[op], op
        assert store.items("related", product, 2) is None
        untouched = f"/users/{other}/recommendations?k=2"
        assert client.get(untouched).json()["items"] == ["stored"]
        with pytest.raises(ValueError, match="op must be one of"):
            writer.invalidate("explain", [user])
    store.close()
