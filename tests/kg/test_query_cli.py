"""``kgrec related | recommend | cross-category | search | explain | serve | write-back``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from ingest.neo4j_writer import write_graph
from kg.neo4j.settings import Neo4jSettings
from kg.query import Recommender
from kg.serve_run import THREAD_VARIABLES, ServeConfig, blas_threads_per_worker
from tests.kg.cli_helpers import kgrec
from tests.kg.query_helpers import TinyRun, load_tables


@pytest.fixture(scope="module")
def rec(run: TinyRun) -> Recommender:
    return Recommender.load(run.run, run.tables)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``kgrec ARGS`` in this process (no new interpreter to import torch); its stdout."""
    from kg.cli import main

    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


def _files(run: TinyRun) -> list[str]:
    return ["--model", str(run.run), "--tables", str(run.tables)]


def test_help_lists_the_query_commands() -> None:
    out = kgrec("--help").stdout
    for command in (
        "related",
        "recommend",
        "cross-category",
        "search",
        "explain",
        "serve",
        "precompute",
        "write-back",
    ):
        assert command in out


def test_json_output_is_the_python_api(
    run: TinyRun, rec: Recommender, capsys: pytest.CaptureFixture[str]
) -> None:
    out = cli(capsys, "related", "p0", "-k", "4", "--json", "--same-category", *_files(run))
    expected = [r.to_dict() for r in rec.related("p0", k=4, same_category=True)]
    got = json.loads(out)
    assert [r["product_id"] for r in got] == [r["product_id"] for r in expected]
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected])
    assert [{k: v for k, v in r.items() if k not in ("score", "terms")} for r in got] == [
        {k: v for k, v in r.items() if k not in ("score", "terms")} for r in expected
    ]
    out = cli(capsys, "recommend", "--products", "p1,p2", "-k", "3", "--json", *_files(run))
    assert [r["product_id"] for r in json.loads(out)] == [
        r.product_id for r in rec.recommend(["p1", "p2"], k=3)
    ]


def test_search(run: TinyRun, rec: Recommender, capsys: pytest.CaptureFixture[str]) -> None:
    out = cli(capsys, "search", "machine screws", "--user", "u2", "-k", "4", "--json", *_files(run))
    expected = rec.search("machine screws", user="u2", k=4)
    got = json.loads(out)
    assert [r["product_id"] for r in got] == [r.product_id for r in expected]
    assert [r["reason"] for r in got] == [r.reason for r in expected]
    out = cli(capsys, "search", "steel", "--products", "p1,p2", "--exclude", "p3", *_files(run))
    expected = rec.search("steel", user=["p1", "p2"], k=10, exclude=["p3"])
    rows = out.splitlines()
    assert rows[0].split()[:3] == ["rank", "product", "score"]
    assert [r.split()[1] for r in rows[1:]] == [r.product_id for r in expected]


def test_table_output(run: TinyRun, rec: Recommender, capsys: pytest.CaptureFixture[str]) -> None:
    lines = cli(
        capsys, "cross-category", "u1", "--level", "2", "-k", "3", *_files(run)
    ).splitlines()
    assert lines[0].split()[:3] == ["rank", "product", "score"]
    expected = rec.cross_category("u1", k=3, level=2)
    rows = [line.split() for line in lines[1:] if not line.strip().startswith("path:")]
    assert [r[1] for r in rows] == [r.product_id for r in expected]
    assert sum(line.strip().startswith("path: (User u1)") for line in lines) == sum(
        r.path is not None for r in expected
    )
    out = cli(capsys, "explain", "u1", expected[0].product_id, "--max-paths", "2", *_files(run))
    paths = rec.explain("u1", expected[0].product_id, max_paths=2)
    assert [line.split(maxsplit=2)[2] for line in out.splitlines()] == [str(p) for p in paths]


def test_error_is_one_line(run: TinyRun) -> None:
    proc = kgrec("related", "nope", *_files(run))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "kgrec: error: unknown product id 'nope'"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("recommend", "ghost"), "unknown user id 'ghost'"),
        (("recommend", "u0", "--category", "No > Such"), "unknown category id 'No > Such'"),
        (("related", "p0", "-k", "0"), "k must be between 1 and 300, got 0"),
        (("cross-category", "u0", "--level", "7"), "level must be between 1 and 3, got 7"),
        (("recommend",), "give either a USER_ID or --products a,b,c (a new user)"),
        (("explain", "u0", "p1", "--max-paths", "0"), "max_paths must be >= 1, got 0"),
        (("search", " - "), "the query has no word to search for (a letter or a digit)"),
        (("search", "bolts", "--user", "ghost"), "unknown user id 'ghost'"),
        (("search", "bolts", "--brand", "Nope"), "unknown brand id 'Nope'"),
    ],
)
def test_bad_input_exits_with_one_line(run: TinyRun, args: tuple[str, ...], message: str) -> None:
    from kg.cli import main

    with pytest.raises(SystemExit) as info:
        main([*args, *_files(run)])
    assert info.value.code == f"kgrec: error: {message}"  # printed as one line, exit status 1


def test_serve_builds_the_app(
    run: TinyRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastapi.testclient import TestClient

    import kg.serve_run
    from kg.cli import main

    # The real server is started in tests/kg/test_serve_workers.py; here only what the command
    # hands to it is checked, so nothing listens and nothing blocks.
    served: dict[str, Any] = {}

    def fake_run_server(app: Any, config: Any) -> int:
        served.update(app=app, config=config, blas=blas_threads_per_worker(config))
        return 0

    monkeypatch.setattr(kg.serve_run, "run_server", fake_run_server)
    for variable in THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    cores = len(os.sched_getaffinity(0))
    args = ["serve", *_files(run), "--host", "127.0.0.1", "--port", "8123"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert (
        f"with 1 worker(s), BLAS threads per worker: {cores}; search: exact; precomputed answers: none (docs"
        in out
    )
    assert served["config"] == ServeConfig(host="127.0.0.1", port=8123)
    assert served["blas"] == cores  # one worker: every core
    with TestClient(served["app"]) as client:
        health = client.get("/health").json()
        assert health["products"] == 300 and health["search"] == "exact"
        assert isinstance(health["blas_threads"], int) and health["blas_threads"] >= 1
        exact = client.get("/users/u1/recommendations", params={"k": 5}).json()["items"]
    # --approximate with every cluster probed ranks as the exact search does.
    approximate = ["--approximate", "--n-lists", "4", "--n-probe", "4"]
    assert main([*args, *approximate]) == 0
    assert "search: approximate: 4 of 4 clusters; precomputed" in capsys.readouterr().out
    with TestClient(served["app"]) as client:
        assert client.get("/health").json()["search"] == "approximate: 4 of 4 clusters"
        items = client.get("/users/u1/recommendations", params={"k": 5}).json()["items"]
        assert [r["product_id"] for r in items] == [r["product_id"] for r in exact]
    # BLAS threads: cores / workers (at least 1), the option, or left to OMP_NUM_THREADS
    assert main([*args, "--workers", str(2 * cores)]) == 0
    assert served["blas"] == 1 and served["config"].workers == 2 * cores
    assert main([*args, "--blas-threads", "3"]) == 0
    assert served["blas"] == 3
    # the limits reach the app
    assert main([*args, "--max-body-bytes", "10"]) == 0
    with TestClient(served["app"]) as client:
        assert client.post("/recommendations", json=["p1", "p2"]).status_code == 413
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(args) == 0
    assert served["blas"] is None
    assert "BLAS threads per worker: as OMP_NUM_THREADS etc. say" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="blas_threads must be >= 1"):
        main([*args, "--blas-threads", "0"])
    with pytest.raises(SystemExit, match="n_probe"):
        main(["serve", *_files(run), "--approximate", "--n-probe", "0"])


@pytest.mark.neo4j
def test_write_back_and_queries_from_neo4j(
    neo4j_db: Any,
    neo4j_server: Neo4jSettings,
    run: TinyRun,
    rec: Recommender,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_graph(neo4j_db, load_tables(run), show_progress=False)
    monkeypatch.setenv("NEO4J_URI", neo4j_server.uri)
    monkeypatch.setenv("NEO4J_USERNAME", "neo4j")
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server.password or "")
    out = cli(capsys, "write-back", "--model", str(run.run), "-k", "3", "--no-progress")
    assert "wrote 900 RELATED edges" in out and "product_fused" in out
    records, _, _ = neo4j_db.execute_query("MATCH ()-[r:RELATED]->() RETURN count(r) AS n")
    assert records[0]["n"] == 900
    # Without --tables the graph is exported from Neo4j.
    out = cli(capsys, "related", "p5", "--model", str(run.run), "--json", "--no-progress")
    assert [r["product_id"] for r in json.loads(out)] == [
        r.product_id for r in rec.related("p5", k=10)
    ]


def test_serve_without_its_text_encoder_exits_with_one_line(
    run: TinyRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kg.serve_run
    from kg.cli import main

    # a run whose text encoder folder is gone: serve says so at start-up, not on the first
    # new product, and names the option that starts without it
    moved = tmp_path / "run"
    shutil.copytree(run.run, moved)
    config = json.loads((moved / "config.json").read_text())
    config["features"]["text"]["encoder"]["model_path"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(kg.serve_run, "run_server", lambda app, config: 0)
    args = ["serve", "--model", str(moved), "--tables", str(run.tables)]
    with pytest.raises(SystemExit) as info:
        main(args)
    message = str(info.value.code)
    assert message.startswith("kgrec: error: ") and "gone" in message
    assert message.endswith("(--lazy-text-encoder starts without it)")
    assert "\n" not in message
    assert main([*args, "--lazy-text-encoder"]) == 0
