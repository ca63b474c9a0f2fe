"""Stateless replicas: two ``kgrec serve`` processes on two ports sharing one model folder, one
tables snapshot and the session's real Neo4j (its event log, ``--events``) answer alike, before
and after an event posted to one of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.neo4j_writer import write_graph
from ingest.tables import GraphTables
from kg.neo4j.server import free_port
from kg.neo4j.settings import Neo4jSettings
from kg.query import Recommender
from kg.serve_events import event_token
from tests.kg.query_helpers import TinyRun
from tests.kg.test_serve_workers import THREADS, _get

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


def _wait_healthy(procs: list[subprocess.Popen[str]], ports: list[int]) -> None:
    """Wait for the condition "every replica answers /health"."""
    deadline = time.monotonic() + 300
    waiting = set(ports)
    while waiting:
        for proc in procs:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, f"replicas on {sorted(waiting)} did not come up"
        for port in list(waiting):
            try:
                if _get(port, "/health")[0] == 200:
                    waiting.discard(port)
            except OSError:
                pass
        time.sleep(0.2)


@pytest.fixture
def replicas(
    run: TinyRun, neo4j_db: Any, neo4j_server: Neo4jSettings, tmp_path: Path
) -> Iterator[tuple[list[int], str]]:
    """Two replicas (ports) started side by side, and the bearer token of ``POST /events``."""
    write_graph(neo4j_db, GraphTables.load(run.tables), show_progress=False)
    token_file = tmp_path / "events-token"
    token = event_token(token_file)  # one token for all replicas, made before they start
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_") and k not in THREADS}
    env.update({"NEO4J_URI": neo4j_server.uri, "NEO4J_USERNAME": "neo4j",
                "NEO4J_PASSWORD": neo4j_server.password or ""})  # fmt: skip
    ports = [free_port(), free_port()]
    command = [sys.executable, "-m", "kg", "serve", "--model", str(run.run), "--tables",
               str(run.tables), "--events", "--events-token-file", str(token_file),
               "--lazy-text-encoder"]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for port in ports
    ]
    try:
        _wait_healthy(procs, ports)
        yield ports, token
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _answers(port: int, paths: list[str]) -> list[bytes]:
    out = []
    for path in paths:
        status, body = _get(port, path)
        assert status == 200, (path, body)
        out.append(body)
    return out


def test_two_replicas_give_identical_answers(
    replicas: tuple[list[int], str], rec: Recommender
) -> None:
    (a, b), token = replicas
    users, products = rec.index.user_ids[:8], rec.index.product_ids[:8]
    paths = [
        *(f"/products/{p}/related-products?k=10" for p in products),
        *(f"/users/{u}/recommendations?k=10" for u in users),
        *(f"/users/{u}/cross-category-recommendations?k=5" for u in users),
    ]
    first = _answers(a, paths)
    assert _answers(b, paths) == first
    assert json.loads(first[0])["items"]  # real answers, not empty lists
    bodies = [_post_json(port, "/recommendations?k=10", list(products[:2])) for port in (a, b)]
    assert bodies[0] == bodies[1] and bodies[0][0] == 200
    # an event posted to one replica reaches the other through Neo4j's event log
    user = users[0]
    top = json.loads(first[len(products)])["items"][0]["product_id"]
    view = {"type": "interaction", "event_id": "replica-1", "user_id": user,
            "product_id": top, "kind": "view", "ts": 1_733_500_000}  # fmt: skip
    status, body = _post_json(a, "/events", [view], token)
    assert status == 200, body
    path = f"/users/{user}/recommendations?k=10"
    after = _get(a, path)[1]
    assert top not in {r["product_id"] for r in json.loads(after)["items"]}
    deadline = time.monotonic() + 60
    while _get(b, path)[1] != after:  # wait for the condition "b has read the event"
        assert time.monotonic() < deadline, "replica b never saw the event"
        time.sleep(0.05)
    assert _answers(b, paths) == _answers(a, paths)


def _post_json(port: int, path: str, body: Any, token: str | None = None) -> tuple[int, bytes]:
    import http.client

    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, json.dumps(body), headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
