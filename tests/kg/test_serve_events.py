"""``POST /events`` and the event feed of a served recommender, against the real Neo4j
(issue 21)."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.events import EventLog
from ingest.neo4j_writer import write_graph
from ingest.tables import GraphTables
from kg.query import Recommender
from kg.query.answers import AnswerStore, precompute_answers
from kg.query.feed import EventFeed
from kg.serve import create_app
from kg.serve_events import EventsConfig, event_token
from tests.kg.query_helpers import TinyRun, tiny_run

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def run_copy(run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run with precomputed answers (k 10)."""
    folder = tmp_path_factory.mktemp("events") / "run"
    shutil.copytree(run.run, folder)
    rec = Recommender.load(folder, run.tables, text_model=run.bert, text_cache=run.text_cache)
    precompute_answers(rec, folder, k=10, workers=1, show_progress=False)
    return folder


@pytest.fixture
def served(
    run: TinyRun, run_copy: Path, neo4j_db: Any, neo4j_server: Any, tmp_path: Path
) -> Iterator[tuple[TestClient, Recommender, EventLog, str, Path]]:
    """A fresh Neo4j holding the tiny shop, and an app with events on, its store a fresh copy."""
    write_graph(neo4j_db, GraphTables.load(run.tables), show_progress=False)
    folder = tmp_path / "run"
    shutil.copytree(run_copy, folder)
    rec = Recommender.load(folder, run.tables, text_model=run.bert, text_cache=run.text_cache)
    store = AnswerStore.open(folder, rec)
    assert store is not None
    token_path = tmp_path / "secret" / "events-token"
    token = event_token(token_path)
    feed = EventFeed(rec, neo4j_server, store)
    config = EventsConfig(events=True, events_token_file=str(token_path), events_poll=0.02)
    with TestClient(create_app(rec, store, events=(feed, token, config))) as client:
        yield client, rec, EventLog(neo4j_db), token, token_path
    store.close()


def _view(i: int, user: str, product: str) -> dict[str, Any]:
    return {"type": "interaction", "event_id": f"http-{i}", "user_id": user,
            "product_id": product, "kind": "view", "ts": 1_733_500_000 + i}  # fmt: skip


def test_the_token_is_made_once_and_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "home" / "events-token"
    token = event_token(path)
    assert len(token) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert event_token(path) == token


def test_no_token_or_a_wrong_one_is_401_and_nothing_is_applied(served) -> None:
    client, _rec, log, token, _ = served
    before = log.last_seq()
    batch = [_view(1, "u0", "p1")]
    assert client.post("/events", json=batch).status_code == 401
    wrong = client.post("/events", json=batch, headers={"Authorization": f"Bearer {token}x"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.post("/events", json=batch, headers={"Authorization": token}).status_code == 401
    assert log.last_seq() == before


def test_a_bad_batch_is_refused_whole_with_one_error_per_bad_event(served) -> None:
    client, _rec, log, token, _ = served
    before = log.last_seq()
    batch = [_view(1, "u0", "p1"), {**_view(2, "u0", "p2"), "kind": "like"},
             {"type": "product", "event_id": "x"}]  # fmt: skip
    got = client.post("/events", json=batch, headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 422
    errors = got.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "kind"), (2, "product_id")]
    assert log.last_seq() == before


def test_an_event_changes_the_answers_at_once_and_stale_stored_ones_are_not_served(
    served,
) -> None:
    client, rec, log, token, _ = served
    auth = {"Authorization": f"Bearer {token}"}
    user = rec.index.user_ids[0]
    before = client.get(f"/users/{user}/recommendations").json()["items"]
    top = before[0]["product_id"]
    related_before = client.get(f"/products/{top}/related-products").json()["items"]
    got = client.post("/events", json=[_view(1, user, top)], headers=auth)
    assert got.status_code == 200, got.text
    assert got.json()["applied"] == 1 and got.json()["seq"] == log.last_seq()
    after = client.get(f"/users/{user}/recommendations").json()["items"]
    assert top not in {r["product_id"] for r in after}  # seen now: the stored answer is gone
    assert after == [r.to_dict() for r in rec.recommend(user, k=10)]
    assert client.get(f"/products/{top}/related-products").json()["items"] == [
        r.to_dict() for r in rec.related(top, k=10)
    ]
    assert related_before is not None
    # a replay changes nothing
    again = client.post("/events", json=[_view(1, user, top)], headers=auth).json()
    assert again["applied"] == 0 and again["duplicates"] == 1


def test_events_from_another_writer_and_direct_writes_are_picked_up(served, neo4j_db) -> None:
    client, rec, log, _token, _ = served
    from ingest.events import parse_events

    user = rec.index.user_ids[1]
    target = client.get(f"/users/{user}/recommendations").json()["items"][0]["product_id"]
    log.write(parse_events([_view(7, user, target)]))  # e.g. kgrec events, or another worker
    _wait(lambda: target not in _ids(client.get(f"/users/{user}/recommendations").json()))
    # an ETL job's edge, written straight into Neo4j
    other = client.get(f"/users/{user}/recommendations").json()["items"][0]["product_id"]
    neo4j_db.execute_query(
        "MATCH (u:User {id: $u}), (p:Product {id: $p}) CREATE (u)-[:INTERACTED {ts: 1}]->(p)",
        u=user,
        p=other,
    )
    _wait(lambda: other not in _ids(client.get(f"/users/{user}/recommendations").json()))
    records, _, _ = neo4j_db.execute_query(
        "MATCH (:User {id: $u})-[r:INTERACTED]->(:Product {id: $p}) RETURN r.seq AS seq",
        u=user,
        p=other,
    )
    assert [r["seq"] for r in records] == [log.last_seq()]  # claimed into the sequence


def test_a_new_product_is_served_and_a_retired_one_leaves(served) -> None:
    client, rec, _log, token, _ = served
    auth = {"Authorization": f"Bearer {token}"}
    source = rec.index.product_ids[0]
    leaf = rec.index.category_ids[int(rec.index.leaf[0])]
    event = {"type": "product", "event_id": "np-1", "product_id": "new-1",
             "title": f"{rec.index.titles[0]} (new edition)", "category": leaf,
             "brand": rec.index.brand_ids[int(rec.index.brand[0])]}  # fmt: skip
    assert client.post("/events", json=[event], headers=auth).status_code == 200
    related = _ids(client.get(f"/products/{source}/related-products?k=30").json())
    assert "new-1" in related
    assert client.get("/products/new-1/related-products?k=3").status_code == 200
    retire = {"type": "retire", "event_id": "np-2", "product_id": "new-1"}
    assert client.post("/events", json=[retire], headers=auth).status_code == 200
    everything = rec.n_products - 1
    assert "new-1" not in _ids(
        client.get(f"/products/{source}/related-products?k={everything}").json()
    )


def _ids(payload: dict[str, Any]) -> list[str]:
    return [r["product_id"] for r in payload["items"]]


def _wait(condition: Any, timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds (the feed polls every 20 ms), failing after
    ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the feed did not apply the event in time")
        time.sleep(0.02)


def test_concurrent_posts_are_committed_and_a_bad_batch_alone_is_refused(served) -> None:
    """POSTs that arrive together are committed together (a group commit); a batch naming an
    unknown product is refused on its own, the others of its group are written."""
    client, _rec, log, token, _ = served
    auth = {"Authorization": f"Bearer {token}"}
    batches = [[_view(100 + 10 * b + i, f"u{b}", "p1") for i in range(3)] for b in range(4)]
    batches[2][1]["product_id"] = "no-such-product"
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda b: client.post("/events", json=b, headers=auth), batches))
    assert [a.status_code for a in answers] == [200, 200, 422, 200]
    assert [e["index"] for e in answers[2].json()["errors"]] == [1]
    assert sum(a.json()["applied"] for a in answers if a.status_code == 200) == 9
    ids = {a.event.event_id for a in log.since(0)}
    assert ids >= {f"http-{100 + 10 * b + i}" for b in (0, 1, 3) for i in range(3)}
    assert not ids & {f"http-{120 + i}" for i in range(3)}
