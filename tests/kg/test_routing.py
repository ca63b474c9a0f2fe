"""Any Neo4j through ``NEO4J_URI``, the ``neo4j://`` routing scheme included: a second local
Neo4j stands for the remote server, and ingest, export and a query command reach it."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.tables import GraphTables
from kg.neo4j.driver import open_driver
from kg.neo4j.server import LocalNeo4j, free_port
from kg.neo4j.settings import Neo4jSettings
from kg.query import Recommender
from tests.kg.cli_helpers import kgrec
from tests.kg.query_helpers import TinyRun, load_tables

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jSettings]:
    """Settings of a second Neo4j, reached through the routing scheme ``neo4j://``."""
    home = tmp_path_factory.mktemp("remote-home")
    port = free_port()
    server = LocalNeo4j(home, port=port, password=secrets.token_urlsafe(16), heap="512m")
    server.start(timeout=300)
    try:
        yield Neo4jSettings(
            uri=f"neo4j://127.0.0.1:{port}", password=server.password(), external=True
        )
    finally:
        server.stop()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from kg.cli import main

    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_routing_table_names_the_real_address(remote: Neo4jSettings) -> None:
    with open_driver(remote) as driver:
        records, _, _ = driver.execute_query(
            "CALL dbms.routing.getRoutingTable({}, 'neo4j') YIELD servers RETURN servers",
            routing_="r",
        )
    address = remote.uri.removeprefix("neo4j://")
    servers = records[0]["servers"]
    assert {s["role"] for s in servers} == {"WRITE", "READ", "ROUTE"}
    assert all(s["addresses"] == [address] for s in servers)


def test_ingest_export_and_query_through_neo4j_scheme(
    remote: Neo4jSettings,
    run: TinyRun,
    rec: Recommender,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("KGREC_HOME", str(tmp_path / "no-local-home"))
    monkeypatch.setenv("NEO4J_URI", remote.uri)
    monkeypatch.setenv("NEO4J_USERNAME", "neo4j")
    monkeypatch.setenv("NEO4J_PASSWORD", remote.password or "")
    monkeypatch.setenv("NEO4J_DATABASE", "neo4j")
    out = cli(capsys, "ingest", "tables", str(run.tables), "--no-progress")
    assert f"loaded into {remote.uri}" in out
    out = cli(capsys, "export", "--out", str(tmp_path / "exported"), "--no-progress")
    exported = GraphTables.load(tmp_path / "exported")
    assert exported.fingerprint() == load_tables(run).fingerprint()
    out = cli(capsys, "related", "p5", "--model", str(run.run), "--json", "--no-progress")
    assert [r["product_id"] for r in json.loads(out)] == [
        r.product_id for r in rec.related("p5", k=10)
    ]
    out = cli(capsys, "neo4j", "status")
    assert f"NEO4J_URI is set: kgrec uses {remote.uri}" in out and "Neo4j Kernel 5.26" in out
    assert not (tmp_path / "no-local-home").exists()  # no local Neo4j was started or made


def test_a_database_the_server_lacks_is_one_line(remote: Neo4jSettings, tmp_path: Path) -> None:
    env: dict[str, Any] = {
        "NEO4J_URI": remote.uri,
        "NEO4J_PASSWORD": remote.password,
        "NEO4J_DATABASE": "nosuchdb",
        "KGREC_HOME": str(tmp_path),
    }
    proc = kgrec("export", "--out", str(tmp_path / "x"), "--no-progress", env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kgrec: error: Neo4j:"), proc.stderr
    assert "nosuchdb" in lines[0]
