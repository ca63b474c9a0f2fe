"""``kgrec serve --workers 2``: a real server (gunicorn, uvicorn workers) in a subprocess: forked
workers, a killed worker replaced, request limits on the wire, clean stop."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kg.neo4j.server import free_port
from kg.query import Recommender
from tests.kg.query_helpers import TinyRun

THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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


def _running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (an exited worker its parent has not reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _post(port: int, path: str, body: dict[str, object]) -> tuple[int, bytes]:
    # the first new product of a --lazy-text-encoder worker imports torch and loads BERT
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _wait_for_workers(proc: subprocess.Popen[str], port: int, n: int, old: set[int]) -> list[int]:
    """Wait for the condition "``n`` workers, none of ``old``, and /health answers"."""
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "server did not come up"
        workers = _children(proc.pid)
        try:
            if len(workers) == n and not old & set(workers) and _get(port, "/health")[0] == 200:
                return workers
        except OSError:
            pass
        time.sleep(0.2)


def _raw(port: int, request: bytes) -> bytes:
    """Send ``request`` as is and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc").exists(), reason="POSIX only")
@pytest.mark.parametrize("lazy", [False, True], ids=["text-encoder-preloaded", "lazy"])
def test_two_workers_answer_and_stop_cleanly(run: TinyRun, rec: Recommender, lazy: bool) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_") and k not in THREADS}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kg.cli", "serve", "--model", str(run.run), "--tables",
         str(run.tables), "--port", str(port), "--workers", "2", "--log-level", "info",
         "--body-timeout", "1", *(["--lazy-text-encoder"] if lazy else [])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        workers = _wait_for_workers(proc, port, 2, set())
        # each worker limits its BLAS threads to its share of the cores (numpy's default
        # would be one per core in every worker); /health answers from either worker
        cores = len(os.sched_getaffinity(0))
        for _ in range(6):
            assert json.loads(_get(port, "/health")[1])["blas_threads"] == max(1, cores // 2)
        expected = [r.product_id for r in rec.related("p3", k=5)]
        for _ in range(20):
            status, body = _get(port, "/products/p3/related-products?k=5")
            assert status == 200
            assert [r["product_id"] for r in json.loads(body)["items"]] == expected
        assert _get(port, "/products/nope/related-products")[0] == 404
        # a new product (the text encoder: loaded before the fork, or by each worker)
        expected = [r.product_id for r in rec.related_to_new_product("steel bolt", k=4)]
        for _ in range(4):
            status, body = _post(port, "/related-products", {"title": "steel bolt", "k": 4})
            assert status == 200, body
            assert [r["product_id"] for r in json.loads(body)["items"]] == expected
        # on the wire: a body shorter than its Content-Length times out (408, closed), a
        # declared body over the limit is refused unread (413)
        head = b"POST /recommendations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        answer = _raw(port, head + b"Content-Length: 100\r\n\r\n" + b'["p1",')
        assert answer.startswith(b"HTTP/1.1 408 ")
        answer = _raw(port, head + b"Content-Length: 52428800\r\n\r\n" + b"[")
        assert answer.startswith(b"HTTP/1.1 413 ")
        if not lazy:
            # a worker killed outright: the other answers at once (the workers share the
            # master's listening socket, so nothing queued is lost), and the master forks a
            # replacement
            os.kill(workers[0], signal.SIGKILL)
            deadline = time.monotonic() + 60
            while workers[0] in _children(proc.pid):  # wait for the condition "it is gone"
                assert time.monotonic() < deadline
                time.sleep(0.05)
            for _ in range(10):
                try:
                    assert _get(port, "/health")[0] == 200
                except OSError:
                    proc.terminate()
                    raise AssertionError(proc.communicate(timeout=60)[0][-5000:]) from None
            workers = _wait_for_workers(proc, port, 2, {workers[0]})
            for _ in range(10):
                assert _get(port, "/products/p3/related-products?k=5")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 30  # wait for the condition "no worker runs"
        while any(_running(pid) for pid in workers):
            assert time.monotonic() < deadline, [p for p in workers if _running(p)]
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_taken_port_fails_at_once() -> None:
    from kg.serve_run import ServeConfig, run_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            run_server(object(), ServeConfig(port=port, workers=2))


_FORKED_TORCH = """
import os, sys, torch
from kg.serve_run import one_torch_thread_after_fork
torch.set_num_threads(2)
x = torch.randn(1500, 1500)
(x @ x).sum(); torch.nn.functional.gelu(x).sum()  # the master's pool started (a preloaded encoder)
pid = os.fork()
if pid == 0:
    one_torch_thread_after_fork()
    y = torch.randn(1500, 1500)
    (y @ y).sum(); torch.softmax(y, 1).sum()
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_worker_runs_torch_after_the_master_did() -> None:
    """gunicorn forks the workers from a master that ran the text encoder; GNU OpenMP's pool
    does not survive it. The post-fork hook's one torch thread lets a worker encode a new
    product's text; without it the child's first multi-threaded op hangs (seen: a worker's
    event loop stuck on a catalogue event)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _FORKED_TORCH],
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    try:
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:  # hung: the parent and its forked child
            os.killpg(proc.pid, signal.SIGKILL)
