"""Query-layer latency at 100k synthetic products: Python API, HTTP API, Neo4j vector index.

1. Generates the synthetic ``bench`` shop (100k products, 100k users, 1M interactions) and
   trains a small fusion model on it (ids only, one epoch, 1 example per user: latency does
   not depend on model quality, and 100k texts would take hours to encode on 2 cores).
2. Python API: p50/p99 over ``--calls`` calls of ``related``, ``recommend``,
   ``cross_category`` and ``explain`` for random products/users (after a warm-up).
3. HTTP API: ``kgrec serve`` in a subprocess on loopback; ``--clients`` concurrent clients
   (threads, keep-alive connections) call the four endpoints; p50/p99 and requests/s.
4. Neo4j: loads the shop into a fresh local Neo4j, writes the fused vectors
   (``product_fused`` index) and times ``db.index.vector.queryNodes`` (k = 10).

Writes BENCHMARKS.md section "query".

    .venv/bin/python bench/bench_query.py [--calls 2000] [--clients 32] [--no-neo4j]
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _report import machine_line, write_section

ROOT = Path(__file__).resolve().parents[1]


def _pct(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _model(tables: Any, folder: Path) -> Any:
    from gnn.fusion import FusionRecommender
    from gnn.model import FusionConfig
    from gnn.splits import leave_one_out

    split = leave_one_out(tables)
    cfg = FusionConfig(use_text=False, use_kge=False, max_epochs=1, batch_size=4096,
                       valid_users=500, blend_grid=(0.0, 0.5), dim=64)  # fmt: skip
    model = FusionRecommender(tables, cfg, examples_per_user=1).fit(split, show_progress=True)
    model.save(folder)
    return model


def python_api(rec: Any, calls: int, rng: np.random.Generator) -> list[tuple[str, float, float]]:
    idx = rec.index
    products = [idx.product_ids[i] for i in rng.integers(0, idx.n_products, calls)]
    sizes = np.diff(idx.hist_indptr)
    active = np.flatnonzero(sizes > 0)
    users = [idx.user_ids[i] for i in rng.choice(active, calls)]
    ops = {
        "related(product, k=10)": lambda i: rec.related(products[i], k=10),
        "recommend(user, k=10)": lambda i: rec.recommend(users[i], k=10),
        "cross_category(user, k=10, level=1)": lambda i: rec.cross_category(users[i], k=10),
    }
    recs = [rec.recommend(u, k=1)[0].product_id for u in users[:calls]]
    ops["explain(user, top product)"] = lambda i: rec.explain(users[i], recs[i])
    rows = []
    for name, op in ops.items():
        for i in range(min(50, calls)):
            op(i)  # warm-up
        samples = []
        for i in range(calls):
            t0 = time.perf_counter()
            op(i)
            samples.append(time.perf_counter() - t0)
        p50, p99 = _pct(samples)
        rows.append((name, p50, p99))
        print(f"python {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
    return rows


def http_api(
    model_dir: Path, tables_dir: Path, rec: Any, clients: int, seconds: float
) -> tuple[float, float, float, int]:
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kg", "serve", "--model", str(model_dir), "--tables",
         str(tables_dir), "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_http(port, proc)
        idx = rec.index
        rng = np.random.default_rng(1)
        active = np.flatnonzero(np.diff(idx.hist_indptr) > 0)
        paths = []
        for _ in range(2000):
            p = idx.product_ids[int(rng.integers(0, idx.n_products))]
            u = idx.user_ids[int(rng.choice(active))]
            paths += [f"/products/{p}/related?k=10", f"/users/{u}/recommendations?k=10",
                      f"/users/{u}/cross-category?k=10"]  # fmt: skip
        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()
        stop = time.perf_counter() + seconds

        def client(offset: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine, i = [], offset
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                conn.request("GET", paths[i % len(paths)])
                resp = conn.getresponse()
                resp.read()
                mine.append(time.perf_counter() - t0)
                if resp.status != 200:
                    with lock:
                        errors[0] += 1
                i += clients
            conn.close()
            with lock:
                latencies.extend(mine)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        p50, p99 = _pct(latencies)
        rps = len(latencies) / wall
        print(f"http {clients} clients: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {rps:.0f} req/s, "
              f"{errors[0]} non-200", flush=True)  # fmt: skip
        return p50, p99, rps, errors[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _free_port() -> int:
    from kg.neo4j.server import free_port

    return free_port()


def _wait_http(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kgrec serve exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)  # polling the server's readiness, not waiting out a fixed delay
    raise RuntimeError("kgrec serve did not become ready")


def neo4j_vector(tables: Any, rec: Any, calls: int) -> tuple[float, float, float]:
    from ingest.neo4j_writer import write_graph
    from kg.neo4j.driver import open_driver
    from kg.neo4j.server import LocalNeo4j, free_port
    from kg.query.writeback import FUSED_INDEX, write_fused_vectors

    with tempfile.TemporaryDirectory(prefix="kgrec-bench-query-") as home:
        server = LocalNeo4j(home, port=free_port(), password=secrets.token_urlsafe(12),
                            heap="2g", pagecache="1g")  # fmt: skip
        info = server.start(timeout=600)
        try:
            settings = server.settings(info)
            with open_driver(settings) as driver:
                t0 = time.perf_counter()
                write_graph(driver, tables, show_progress=True)
                write_fused_vectors(driver, rec, show_progress=True)
                load_s = time.perf_counter() - t0
                query = (
                    "MATCH (p:Product {id: $product}) "
                    "CALL db.index.vector.queryNodes($index, 10, p.fused) YIELD node, score "
                    "RETURN node.id AS id, score"
                )
                rng = np.random.default_rng(2)
                ids = [
                    rec.index.product_ids[i] for i in rng.integers(0, rec.index.n_products, calls)
                ]
                samples = []
                for i, pid in enumerate(ids):
                    t0 = time.perf_counter()
                    driver.execute_query(query, product=pid, index=FUSED_INDEX)
                    if i >= 20:  # the first calls warm the index
                        samples.append(time.perf_counter() - t0)
                p50, p99 = _pct(samples)
                print(f"neo4j vector query: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
                return p50, p99, load_s
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--http-seconds", type=float, default=30.0)
    parser.add_argument("--vector-calls", type=int, default=500)
    parser.add_argument("--no-neo4j", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import torch

    from ingest.sources.synthetic import SyntheticConfig, generate_shop
    from kg.query import Recommender

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    tables = generate_shop(SyntheticConfig.preset("bench"), show_progress=True)
    counts = tables.counts()
    print(f"shop: {counts} ({time.perf_counter() - t0:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="kgrec-bench-query-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        _model(tables, work / "model")
        train_s = time.perf_counter() - t0
        tables.save(work / "tables")
        t0 = time.perf_counter()
        rec = Recommender.load(work / "model", work / "tables")
        load_s = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        py_rows = python_api(rec, args.calls, rng)
        http_row = http_api(work / "model", work / "tables", rec, args.clients, args.http_seconds)
        vec = None if args.no_neo4j else neo4j_vector(tables, rec, args.vector_calls)
    lines = [
        f"- Machine: {machine_line()}; Python API single-threaded (torch 1 thread)",
        f"- Data: synthetic `bench` shop: {counts['products']:,} products, {counts['users']:,} "
        f"users, {counts['interactions']:,} interactions; a fusion model with id embeddings only "
        f"(dim 64, one epoch: latency does not depend on quality), trained in {train_s:.0f} s; "
        f"`Recommender.load` took {load_s:.1f} s.",
        f"- Command: `.venv/bin/python bench/bench_query.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        f"Python API, {args.calls:,} calls each after 50 warm-up calls, random products / users "
        "with a history (targets: p50 < 2 ms, p99 < 10 ms):",
        "",
        "| operation | p50 ms | p99 ms |",
        "|---|---:|---:|",
        *[f"| `{name}` | {p50:.2f} | {p99:.2f} |" for name, p50, p99 in py_rows],
        "",
        f"HTTP API (`kgrec serve`, one uvicorn worker, loopback), {args.clients} concurrent "
        f"keep-alive clients for {args.http_seconds:.0f} s cycling related / recommendations / "
        "cross-category (target: p50 < 15 ms):",
        "",
        "| clients | p50 ms | p99 ms | requests/s | non-200 |",
        "|---:|---:|---:|---:|---:|",
        f"| {args.clients} | {http_row[0]:.1f} | {http_row[1]:.1f} | {http_row[2]:.0f} | "
        f"{http_row[3]} |",
        "",
        f"One uvicorn worker answers one request at a time, so with {args.clients} clients each "
        f"request waits behind the others: {args.clients} / {http_row[2]:.0f} req/s = "
        f"{1000 * args.clients / max(http_row[2], 1e-9):.0f} ms (Little's law), the p50 above.",
    ]
    if vec is not None:
        lines += [
            "",
            f"Neo4j vector index `product_fused` (64 dims, cosine), `db.index.vector.queryNodes` "
            f"k = 10 through the Python driver, {args.vector_calls - 20} timed calls: p50 "
            f"{vec[0]:.2f} ms, p99 {vec[1]:.2f} ms (graph + vectors loaded in {vec[2]:.0f} s).",
        ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("query", "Query layer: latency at 100k products", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
