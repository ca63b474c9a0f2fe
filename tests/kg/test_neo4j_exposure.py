"""What the local Neo4j exposes to other local users and to the network (issue 19, items 7-9).

One fresh home, started once: its files are the owner's alone (an older home's 0644 files too),
the built-in ``neo4j/neo4j`` login never works, not even in the first moments Bolt is up, and
anonymous usage reporting is off.
"""

from __future__ import annotations

import os
import secrets
import stat
import threading
import time
from pathlib import Path

import pytest

from kg.neo4j.driver import open_driver
from kg.neo4j.server import LocalNeo4j, free_port
from kg.neo4j.settings import Neo4jSettings

pytestmark = pytest.mark.neo4j


def _first_login_attempt(uri: str, done: threading.Event, seen: list[str]) -> None:
    """Try ``neo4j/neo4j`` until Bolt answers at all, and record how that first answer went
    (one attempt: more wrong passwords would trip Neo4j's login rate limit)."""
    import neo4j.exceptions

    while not done.is_set():
        try:
            with open_driver(Neo4jSettings(uri=uri, user="neo4j", password="neo4j")):
                seen.append("default login accepted")
            return
        except neo4j.exceptions.AuthError:
            seen.append("refused")
            return
        except Exception:  # not listening yet
            time.sleep(0.01)  # poll interval while the server starts


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory):
    """A server started on a new home that already holds a world-readable file, as a home made
    by an older kgrec does, plus what a default-login probe saw during its start."""
    home = tmp_path_factory.mktemp("exposure") / "home"
    (home / "logs").mkdir(parents=True)
    home.chmod(0o755)
    old = home / "logs" / "old.log"
    old.write_text("from an older kgrec\n")
    old.chmod(0o644)
    server = LocalNeo4j(home, port=free_port(), password=secrets.token_urlsafe(16))
    seen: list[str] = []
    done = threading.Event()
    probe = threading.Thread(target=_first_login_attempt, args=(server.settings().uri, done, seen))
    probe.start()
    try:
        info = server.start(timeout=300)
        probe.join(timeout=60)
        yield server, info, seen
    finally:
        done.set()
        server.stop()


def test_the_default_login_never_works(fresh) -> None:
    _, _, seen = fresh
    assert seen == ["refused"]


def test_every_file_of_the_home_is_the_owners_alone(fresh) -> None:
    server, _, _ = fresh
    assert stat.S_IMODE(server.home.stat().st_mode) == 0o700
    shared = []
    for root, dirs, files in os.walk(server.home):
        for name in dirs + files:
            mode = os.lstat(Path(root) / name).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                shared.append(f"{Path(root) / name} {oct(stat.S_IMODE(mode))}")
    assert not shared, shared[:10]
    names = {p.name for p in server.home.rglob("*")}
    assert {"server.json", "launcher.log", "debug.log", "old.log", "auth.ini"} <= names


def test_usage_reporting_is_off(fresh) -> None:
    server, info, _ = fresh
    with open_driver(server.settings(info)) as driver:
        records, _, _ = driver.execute_query(
            "SHOW SETTINGS YIELD name, value WHERE name = 'dbms.usage_report.enabled' RETURN value"
        )
    assert [r["value"] for r in records] == ["false"]
    debug = (server.home / "logs" / "debug.log").read_text(errors="replace")
    assert "Anonymous Usage Data is being sent" not in debug
