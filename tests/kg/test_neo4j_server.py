"""The local Neo4j launcher: lifecycle, auth, Cypher features kgrec relies on. Real server only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kg.neo4j.driver import open_driver
from kg.neo4j.server import LocalNeo4j, Neo4jServerError, free_port
from kg.neo4j.settings import Neo4jSettings, settings_from_env

pytestmark = pytest.mark.neo4j


def test_wrong_password_is_rejected(neo4j_server: Neo4jSettings) -> None:
    import neo4j.exceptions

    assert neo4j_server.user == "neo4j" and neo4j_server.password
    bad = Neo4jSettings(uri=neo4j_server.uri, user="neo4j", password="not-the-password")
    with pytest.raises(neo4j.exceptions.AuthError):
        open_driver(bad)
    nobody = Neo4jSettings(uri=neo4j_server.uri, user=None)
    with pytest.raises(neo4j.exceptions.AuthError):
        open_driver(nobody)


def test_runs_community_5_26(neo4j_db) -> None:
    records, _, _ = neo4j_db.execute_query(
        "CALL dbms.components() YIELD name, versions, edition RETURN versions[0] AS v, edition"
    )
    assert records[0]["edition"] == "community"
    assert records[0]["v"].startswith("5.26.")


def test_write_and_read_back(neo4j_db) -> None:
    rows = [{"id": f"p{i}", "title": f"Product {i}", "price": i * 1.5} for i in range(250)]
    neo4j_db.execute_query("UNWIND $rows AS row CREATE (p:Product) SET p = row", rows=rows)
    records, _, _ = neo4j_db.execute_query(
        "MATCH (p:Product) RETURN p.id AS id, p.title AS title, p.price AS price ORDER BY p.price"
    )
    assert [dict(r) for r in records] == rows


def test_uniqueness_constraint(neo4j_db) -> None:
    import neo4j.exceptions

    neo4j_db.execute_query(
        "CREATE CONSTRAINT product_id IF NOT EXISTS FOR (p:Product) REQUIRE p.id IS UNIQUE"
    )
    records, _, _ = neo4j_db.execute_query(
        "SHOW CONSTRAINTS YIELD name, type, labelsOrTypes, properties "
        "WHERE name = $name RETURN type, labelsOrTypes, properties",
        name="product_id",
    )
    assert [dict(r) for r in records] == [
        {"type": "UNIQUENESS", "labelsOrTypes": ["Product"], "properties": ["id"]}
    ]
    neo4j_db.execute_query("CREATE (:Product {id: $id})", id="p1")
    with pytest.raises(neo4j.exceptions.ConstraintError):
        neo4j_db.execute_query("CREATE (:Product {id: $id})", id="p1")
    records, _, _ = neo4j_db.execute_query("MATCH (p:Product) RETURN count(p) AS n")
    assert records[0]["n"] == 1


def test_vector_index_query(neo4j_db) -> None:
    neo4j_db.execute_query(
        "CREATE VECTOR INDEX product_vec IF NOT EXISTS FOR (p:Product) ON p.vec "
        "OPTIONS {indexConfig: {`vector.dimensions`: 3, `vector.similarity_function`: 'cosine'}}"
    )
    neo4j_db.execute_query("CALL db.awaitIndexes(120)")
    rows = [
        {"id": "x", "vec": [1.0, 0.0, 0.0]},
        {"id": "x2", "vec": [0.9, 0.1, 0.0]},
        {"id": "y", "vec": [0.0, 1.0, 0.0]},
        {"id": "z", "vec": [0.0, 0.0, 1.0]},
    ]
    neo4j_db.execute_query(
        "UNWIND $rows AS row CREATE (p:Product {id: row.id}) "
        "WITH p, row CALL db.create.setNodeVectorProperty(p, 'vec', row.vec)",
        rows=rows,
    )
    records, _, _ = neo4j_db.execute_query(
        "CALL db.index.vector.queryNodes('product_vec', 2, $q) YIELD node, score "
        "RETURN node.id AS id, score",
        q=[1.0, 0.05, 0.0],
    )
    assert [r["id"] for r in records] == ["x", "x2"]
    assert records[0]["score"] > records[1]["score"]


def test_lifecycle_start_errors_and_stop(tmp_path: Path, neo4j_server: Neo4jSettings) -> None:
    home = tmp_path / "own"
    port = free_port()
    server = LocalNeo4j(home, port=port, auth=True)
    info = server.start(timeout=300)
    try:
        assert server.status() == info
        assert (server.password_file.stat().st_mode & 0o777) == 0o600
        with open_driver(server.settings(info)) as driver:
            records, _, _ = driver.execute_query("RETURN 1 AS one")
            assert records[0]["one"] == 1
        # A second start on a running home: one clear error, nothing else started.
        with pytest.raises(Neo4jServerError, match="already running on home"):
            LocalNeo4j(home, port=free_port()).start()
        # A port already taken by another server.
        taken = int(neo4j_server.uri.rsplit(":", 1)[1])
        with pytest.raises(Neo4jServerError, match=f"port {taken} .* already in use"):
            LocalNeo4j(tmp_path / "other", port=taken).start()
    finally:
        assert server.stop() is True
    assert server.status() is None
    assert not server.state_file.exists()
    with pytest.raises(OSError):
        os.kill(info.pid, 0)
    assert server.stop() is False
    # Stopped means restartable on the same port at once (TIME_WAIT must not block it).
    again = server.start(timeout=300)
    assert again.port == port and again.pid != info.pid
    assert server.stop() is True


def test_cli_reports_missing_java(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "KGREC_HOME": str(tmp_path / "home")}
    env.pop("NEO4J_URI", None)
    proc = subprocess.run(
        [sys.executable, "-m", "kg.cli", "neo4j", "start", "--port", str(free_port())],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "kgrec: error: 'java' was not found on PATH: install a Java 17+ runtime "
        "(Debian: apt-get install openjdk-17-jdk-headless)"
    ]


def test_external_server_settings_win() -> None:
    env = {"NEO4J_URI": "bolt://db.example:7687", "NEO4J_USERNAME": "ana", "NEO4J_PASSWORD": "pw"}
    settings = settings_from_env(env)
    assert settings is not None and settings.external
    assert (settings.uri, settings.auth) == ("bolt://db.example:7687", ("ana", "pw"))
    assert settings_from_env({}) is None


def test_a_password_starting_with_a_dash_is_set(tmp_path: Path) -> None:
    """``secrets.token_urlsafe`` starts a password with '-' once in 64; the initial-password
    command took it for an unknown option and the launcher exited (a CI run hit it)."""
    server = LocalNeo4j(tmp_path / "dash", port=free_port(), password="-dash-first", heap="512m")
    info = server.start(timeout=300)
    try:
        with open_driver(server.settings(info)) as driver:
            records, _, _ = driver.execute_query("RETURN 1 AS one")
            assert records[0]["one"] == 1
    finally:
        assert server.stop() is True
