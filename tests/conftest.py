"""Shared fixtures: one real Neo4j per test session, started by kgrec's own launcher.

The server runs in a temporary home on a free port with authentication on. Tests marked
``neo4j`` get a driver and an emptied database. In CI (``CI=true``) a server that cannot start
fails the run with the reason; elsewhere those tests are skipped with it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from kg.neo4j.settings import Neo4jSettings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jSettings]:
    """Settings of the session's Neo4j (started here, stopped at the end)."""
    from kg.neo4j.server import LocalNeo4j, Neo4jServerError, free_port

    home = tmp_path_factory.mktemp("neo4j-home")
    server = LocalNeo4j(home, port=free_port(), password=secrets.token_urlsafe(16), heap="1g")
    try:
        info = server.start(timeout=300)
    except Neo4jServerError as exc:
        if IN_CI:
            pytest.fail(f"Neo4j could not start in CI: {exc}", pytrace=False)
        pytest.skip(f"Neo4j could not start: {exc}")
    try:
        yield server.settings(info)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def neo4j_driver(neo4j_server: Neo4jSettings) -> Iterator[object]:
    """A driver to the session's Neo4j."""
    from kg.neo4j.driver import open_driver

    with open_driver(neo4j_server) as driver:
        yield driver


def clear_database(driver: object, database: str = "neo4j") -> None:
    """Delete every node, constraint and (non-lookup) index."""
    with driver.session(database=database) as session:  # type: ignore[attr-defined]
        # CALL ... IN TRANSACTIONS needs an implicit (auto-commit) transaction: session.run.
        session.run(
            "MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
        ).consume()
    records, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD name", database_=database)  # type: ignore[attr-defined]
    for r in records:
        driver.execute_query("DROP CONSTRAINT $name", name=r["name"], database_=database)  # type: ignore[attr-defined]
    records, _, _ = driver.execute_query(  # type: ignore[attr-defined]
        "SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name", database_=database
    )
    for r in records:
        driver.execute_query("DROP INDEX $name", name=r["name"], database_=database)  # type: ignore[attr-defined]


@pytest.fixture
def neo4j_db(neo4j_driver: object) -> object:
    """The session's driver, with the database emptied before the test."""
    clear_database(neo4j_driver)
    return neo4j_driver


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread for the whole suite: the tensors are tiny, and the session's Neo4j and
    the suite share two cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
