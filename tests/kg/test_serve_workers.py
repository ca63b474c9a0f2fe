"""``kgrec serve --workers 2``: a real server in a subprocess, pre-forked workers, clean stop."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kg.neo4j.server import free_port
from kg.query import Recommender
from tests.kg.query_helpers import TinyRun


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _post(port: int, path: str, body: dict[str, object]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc").exists(), reason="POSIX only")
@pytest.mark.parametrize("lazy", [False, True], ids=["text-encoder-preloaded", "lazy"])
def test_two_workers_answer_and_stop_cleanly(run: TinyRun, rec: Recommender, lazy: bool) -> None:
    port = free_port()
    threads = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_") and k not in threads}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kg.cli", "serve", "--model", str(run.run), "--tables",
         str(run.tables), "--port", str(port), "--workers", "2", "--log-level", "warning",
         *(["--lazy-text-encoder"] if lazy else [])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:  # wait for the condition "both workers forked and /health answers"
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not come up"
            try:
                if len(_children(proc.pid)) == 2 and _get(port, "/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        workers = _children(proc.pid)
        # each worker limits its BLAS threads to its share of the cores (numpy's default
        # would be one per core in every worker); /health answers from either worker
        cores = len(os.sched_getaffinity(0))
        for _ in range(6):
            assert json.loads(_get(port, "/health")[1])["blas_threads"] == max(1, cores // 2)
        expected = [r.product_id for r in rec.related("p3", k=5)]
        for _ in range(20):
            status, body = _get(port, "/products/p3/related?k=5")
            assert status == 200
            assert [r["product_id"] for r in json.loads(body)["items"]] == expected
        assert _get(port, "/products/nope/related")[0] == 404
        # a new product (the text encoder: loaded before the fork, or by each worker)
        expected = [r.product_id for r in rec.related_to_new_product("steel bolt", k=4)]
        for _ in range(4):
            status, body = _post(port, "/products/related", {"title": "steel bolt", "k": 4})
            assert status == 200, body
            assert [r["product_id"] for r in json.loads(body)["items"]] == expected
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
