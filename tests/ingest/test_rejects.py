"""The skip-and-report collector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.errors import SourceError
from ingest.rejects import Rejects


def test_raise_mode_raises_the_reported_error() -> None:
    error = SourceError("a.csv", "unknown product", line=3, value="p9")
    with pytest.raises(SourceError) as caught:
        Rejects("raise").report(error)
    assert caught.value is error


def test_skip_mode_records_and_counts_per_reason() -> None:
    rejects = Rejects("skip")
    rejects.report(SourceError("a.csv", "unknown product", line=3, value="p9"), "unknown product")
    rejects.report(SourceError("a.csv", "unknown product", line=5, value="p7"), "unknown product")
    rejects.report(SourceError("b.json", "item record is not an object", record="4", value=[1]))
    assert rejects.count == 3
    assert len(rejects) == 3
    # Without an explicit reason the error's own message (no location, no value) is used.
    assert rejects.summary() == {"unknown product": 2, "item record is not an object": 1}
    first = rejects.items[0]
    assert (first.path, first.line, first.record, first.value) == ("a.csv", 3, None, "p9")
    assert first.message == "a.csv:3: unknown product: 'p9'"


def test_write_produces_one_json_object_per_reject(tmp_path: Path) -> None:
    rejects = Rejects("skip")
    rejects.report(SourceError("a.csv", "bad weight", line=2, value="x"), "bad weight")
    rejects.report(SourceError("b.json", "odd value", record="k", value={1, 2}), "odd value")
    out = rejects.write(tmp_path / "sub" / "rejects.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0] == {
        "path": "a.csv",
        "line": 2,
        "record": None,
        "reason": "bad weight",
        "message": "a.csv:2: bad weight: 'x'",
        "value": "x",
    }
    assert rows[1]["record"] == "k"
    assert rows[1]["value"] == "{1, 2}"  # not JSON: written as its repr


def test_empty_collector_writes_an_empty_file(tmp_path: Path) -> None:
    rejects = Rejects()
    assert rejects.on_error == "skip"
    assert rejects.count == 0 and rejects.summary() == {}
    assert rejects.write(tmp_path / "r.jsonl").read_text() == ""


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="on_error"):
        Rejects("ignore")  # type: ignore[arg-type]
