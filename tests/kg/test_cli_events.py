"""``kgrec events FILE | -`` against the real Neo4j (issue 21)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.neo4j_writer import graph_counts, write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from tests.kg.cli_helpers import kgrec

pytestmark = pytest.mark.neo4j


def _env(settings) -> dict[str, str]:
    return {
        "NEO4J_URI": settings.uri,
        "NEO4J_USERNAME": "neo4j",
        "NEO4J_PASSWORD": settings.password,
    }


def _event(i: int, **extra) -> dict:
    return {"type": "interaction", "event_id": f"cli-{i}", "user_id": f"u{i % 5}",
            "product_id": f"p{i}", "kind": "view", "ts": 1_733_500_000 + i, **extra}  # fmt: skip


@pytest.fixture
def loaded(neo4j_db, neo4j_server):
    write_graph(neo4j_db, generate_shop(SyntheticConfig.preset("tiny"), show_progress=False),
                show_progress=False)  # fmt: skip
    return neo4j_db, neo4j_server


def test_a_file_is_applied_once_and_a_bad_one_not_at_all(loaded, tmp_path: Path) -> None:
    driver, settings = loaded
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(_event(i)) + "\n" for i in range(7)))
    before = graph_counts(driver)["relationships"]["INTERACTED"]
    done = kgrec("events", str(good), "--batch-size", "3", env=_env(settings))
    assert done.returncode == 0, done.stderr
    assert "events applied: 7, already applied (replays): 0" in done.stdout
    again = kgrec("events", str(good), env=_env(settings))
    assert "events applied: 0, already applied (replays): 7" in again.stdout
    assert graph_counts(driver)["relationships"]["INTERACTED"] == before + 7
    bad = tmp_path / "bad.jsonl"
    lines = [_event(10), _event(11, kind="like"), _event(12), {"type": "product", "event_id": "x"}]
    bad.write_text("".join(json.dumps(e) + "\n" for e in lines))
    refused = kgrec("events", str(bad), "--batch-size", "1", env=_env(settings))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"kgrec: error: {bad}:2: event 1 ('cli-11'), field 'kind': must be one of "
        "['view', 'cart', 'purchase']",
        f"kgrec: error: {bad}:4: event 3 ('x'), field 'product_id': missing",
    ]
    assert graph_counts(driver)["relationships"]["INTERACTED"] == before + 7  # not even line 1


def test_a_stream_on_stdin_is_applied_as_it_comes(loaded) -> None:
    driver, settings = loaded
    before = graph_counts(driver)["relationships"]["INTERACTED"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kg", "events", "-"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}, **_env(settings)},
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(_event(20)) + "\n")
    proc.stdin.flush()
    first = proc.stdout.readline()  # the first event is committed before the stream ends
    assert first.startswith("applied 1 (seq ")
    assert graph_counts(driver)["relationships"]["INTERACTED"] == before + 1
    proc.stdin.write(json.dumps(_event(21)) + "\n" + json.dumps(_event(22)) + "\n")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "events applied: 3," in out
    assert graph_counts(driver)["relationships"]["INTERACTED"] == before + 3
