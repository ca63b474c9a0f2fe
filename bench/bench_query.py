"""Query-layer latency at 100k synthetic products: Python API, HTTP API, Neo4j vector index.

1. Generates the synthetic ``bench`` shop (100k products, 100k users, 1M interactions) and
   trains a small fusion model on it (ids only, one epoch, 1 example per user: latency does
   not depend on model quality, and 100k texts would take hours to encode on 2 cores).
2. Python API: p50/p99 over ``--calls`` calls of ``related``, ``recommend``,
   ``cross_category`` and ``explain`` for random products/users (after a warm-up). numpy's
   BLAS runs ``--blas-threads`` threads (threadpoolctl; default 1, torch 1 thread), so the
   figures do not depend on ``OMP_NUM_THREADS``; the exact operations are timed again with
   one BLAS thread per core, what a Python process gets by default. Each optimisation is
   timed on and off on the same queries, the two alternating in blocks of 100 calls:
   ``recommend`` and ``cross_category`` with the pruned ranking (:mod:`kg.query.pruning`,
   :mod:`kg.query.relative`) and with every product scored, ``related`` with
   ``ApproximateSearch(n_probe=--n-probe)`` (:mod:`kg.query.candidates`) and exact, with its
   recall@10 of the exact top 10 over ``--recall-calls`` queries.
3. HTTP API: ``kgrec serve --no-precomputed`` in a subprocess on loopback; ``--clients``
   concurrent clients (one asyncio process, keep-alive connections) call the three ranking
   endpoints; p50/p99 and requests/s; then ``/health`` alone, and the ranking endpoints of
   ``kgrec serve --approximate``; then ``kgrec precompute --force`` (timed; random stored
   answers compared with the live ones) and the ranking endpoints served from its answers;
   and start-up: ``kgrec serve`` from launch to its first
   answer, and one-shot ``kgrec related`` calls (a new process each).
4. Neo4j: loads the shop into a fresh local Neo4j, writes the fused vectors
   (``product_fused`` index) and times ``db.index.vector.queryNodes`` (k = 10).

Writes BENCHMARKS.md section "query".

    .venv/bin/python bench/bench_query.py [--calls 2000] [--clients 32] [--no-neo4j]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _report import machine_line, write_section

ROOT = Path(__file__).resolve().parents[1]


def _pct(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def time_calls(op: Callable[[int], Any], calls: Iterable[int]) -> tuple[float, float]:
    """p50 and p99 in milliseconds of ``op(i)`` for each ``i`` of ``calls``."""
    samples = []
    for i in calls:
        t0 = time.perf_counter()
        op(i)
        samples.append(time.perf_counter() - t0)
    return _pct(samples)


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


def python_api(
    rec: Any, calls: int, rng: np.random.Generator, *, only_user_ops: bool = False, label: str = ""
) -> list[tuple[str, float, float]]:
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
    if only_user_ops:
        del ops["related(product, k=10)"]
    else:
        recs = [rec.recommend(u, k=1)[0].product_id for u in users[:calls]]
        ops["explain(user, top product)"] = lambda i: rec.explain(users[i], recs[i])
    rows = []
    for name, op in ops.items():
        name = name + label
        for i in range(min(50, calls)):
            op(i)  # warm-up
        p50, p99 = time_calls(op, range(calls))
        rows.append((name, p50, p99))
        print(f"python {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
    return rows


def pruning_on_off(
    rec: Any, calls: int, rng: np.random.Generator, label: str = ""
) -> list[tuple[str, float, float]]:
    """p50 of ``recommend`` and ``cross_category`` with the pruned ranking
    (:mod:`kg.query.pruning` and :mod:`kg.query.relative`, the default) and with every product
    scored (graph terms, and similarity terms where the model has them), on the same users,
    the two settings alternating in blocks of 100 calls (so a slower minute of the machine
    hits both): ``(operation + label, p50 pruned, p50 every product)``."""
    import kg.query.pruning as pruning

    idx = rec.index
    users = [idx.user_ids[i] for i in rng.choice(np.flatnonzero(np.diff(idx.hist_indptr)), calls)]
    ops = {
        "recommend(user, k=10)": lambda u: rec.recommend(u, k=10),
        "cross_category(user, k=10, level=1)": lambda u: rec.cross_category(u, k=10),
    }
    default, never, rows = pruning.PRUNE_ABOVE, 2**62, []  # never: no catalogue is pruned
    try:
        for name, op in ops.items():
            samples: dict[int, list[float]] = {default: [], never: []}
            for lo in range(0, calls, 100):
                for setting, out in samples.items():
                    pruning.PRUNE_ABOVE = setting
                    for u in users[lo : lo + 100]:
                        t0 = time.perf_counter()
                        op(u)
                        out.append(time.perf_counter() - t0)
            on, off = (_pct(samples[s])[0] for s in (default, never))
            name += label
            rows.append((name, on, off))
            print(f"python {name}: p50 {on:.2f} ms pruned, {off:.2f} ms every product", flush=True)
    finally:
        pruning.PRUNE_ABOVE = default
    return rows


#: The operations approximate search answers, as timed and compared: ``(name, call)``.
APPROXIMATE_OPS: dict[str, str] = {
    "related": "related(product, k=10)",
    "recommend": "recommend(user, k=10)",
    "cross_category": "cross_category(user, k=10, level=1)",
}


def _op_args(rec: Any, op: str, calls: int, rng: np.random.Generator) -> list[str]:
    """``calls`` random products (``related``) or users with a history (the others)."""
    idx = rec.index
    if op == "related":
        return [idx.product_ids[i] for i in rng.integers(0, idx.n_products, calls)]
    active = np.flatnonzero(np.diff(idx.hist_indptr) > 0)
    return [idx.user_ids[i] for i in rng.choice(active, calls)]


def _call(rec: Any, op: str, arg: str, k: int = 10) -> list[Any]:
    if op == "cross_category":
        return rec.cross_category(arg, k=k, level=1)
    return getattr(rec, op)(arg, k=k)


def approximate_on_off(
    rec: Any, approx: Any, calls: int, rng: np.random.Generator, op: str = "related"
) -> tuple[str, float, float]:
    """p50 of ``op`` (:data:`APPROXIMATE_OPS`) with approximate search (``approx``) and exact
    (``rec``) on the same products or users, alternating in blocks of 100 calls:
    ``(operation, p50 approximate, p50 exact)``."""
    args = _op_args(rec, op, calls, rng)
    for a in args[:50]:  # warm-up
        _call(approx, op, a), _call(rec, op, a)
    samples: dict[str, list[float]] = {"approximate": [], "exact": []}
    for lo in range(0, calls, 100):
        for which, r in (("approximate", approx), ("exact", rec)):
            for a in args[lo : lo + 100]:
                t0 = time.perf_counter()
                _call(r, op, a)
                samples[which].append(time.perf_counter() - t0)
    on, off = (_pct(samples[w])[0] for w in ("approximate", "exact"))
    name = APPROXIMATE_OPS[op]
    print(f"python {name}: p50 {on:.2f} ms approximate, {off:.2f} ms exact", flush=True)
    return name, on, off


def with_similarity_terms(rec: Any, dim: int = 64) -> Any:
    """A copy of ``rec`` with text and KGE similarity terms of ``dim`` dims each, as a model trained with
    product features serves them (``gnn.similarity``). The vectors are random unit vectors: how
    many products need the terms (``kg.query.relative``) depends on them, so a real catalogue's
    may need more."""
    from gnn.scoring import FusionScorer

    rng = np.random.default_rng(3)
    vectors = {}
    for name in ("kge", "text"):
        v = rng.normal(size=(rec.index.n_products, dim)).astype(np.float32)
        vectors[name] = v / np.linalg.norm(v, axis=1, keepdims=True)
    out = copy.copy(rec)  # rec itself stays the model on disk (its precomputed answers' key)
    out.model = dataclasses.replace(
        rec.model,
        similarity=vectors,
        similarity_recent=3,
        similarity_decay=0.5,
        similarity_weights={"kge": 0.5, "text": 1.0},
    )
    out.scorer = FusionScorer(out.model)
    return out


def _load(port: int, paths: list[str], clients: int, seconds: float) -> tuple[list[float], int]:
    """``clients`` concurrent keep-alive connections, each sending its next request as soon as
    the previous answer is read (closed loop), for ``seconds``: latencies and non-200 count.

    One asyncio process with raw HTTP/1.1, so the load generator costs far less CPU than the
    server it measures (a threaded ``http.client`` load generator needed as much CPU as the
    server on this 2-core machine)."""
    import asyncio

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        while time.perf_counter() < stop:
            request = f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: bench\r\n\r\n"
            t0 = time.perf_counter()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            i += clients
        writer.close()

    async def main() -> None:
        await asyncio.gather(*(client(k) for k in range(clients)))

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    return latencies, errors


def http_api(
    model_dir: Path,
    tables_dir: Path,
    rec: Any,
    clients: int,
    seconds: float,
    workers: int,
    extra: tuple[str, ...] = (),
    label: str = "",
    health: bool = False,
) -> list[tuple[str, float, float, float, int, Any, float]]:
    """``kgrec serve --workers`` on loopback under ``clients`` concurrent clients: the three
    ranking endpoints cycled, and with ``health`` ``/health`` alone (the HTTP stack's own
    ceiling). ``extra``: more ``kgrec serve`` arguments; ``label``: what the rows are called
    after the requests. Each row ends with the BLAS threads per worker that ``/health``
    reports and the seconds from the launch of ``kgrec serve`` to its first answer."""
    port = _free_port()
    launched = time.perf_counter()
    proc = _serve(model_dir, tables_dir, port, workers, extra)
    try:
        threads = _wait_http(port, proc)
        start_s = time.perf_counter() - launched
        paths = _ranking_paths(rec, _route_names(port))
        rows = []
        mixes = [("related / recommendations / cross-category" + label, paths)]
        if health:
            mixes.append(("/health only", ["/health"]))
        for name, todo in mixes:
            _load(port, todo, clients, 2.0)  # warm-up: connections, caches
            t0 = time.perf_counter()
            latencies, errors = _load(port, todo, clients, seconds)
            wall = time.perf_counter() - t0
            p50, p99 = _pct(latencies)
            rps = len(latencies) / wall
            print(f"http {name}, {clients} clients, {workers} workers: p50 {p50:.1f} ms, "
                  f"p99 {p99:.1f} ms, {rps:.0f} req/s, {errors} non-200", flush=True)  # fmt: skip
            rows.append((name, p50, p99, rps, errors, threads, start_s))
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=30)


#: The ranking routes of ``kgrec serve``: this tree's, and those before they were renamed (a
#: ``--compare-with`` checkout of an older commit).
ROUTES = ("/products/{p}/related-products", "/users/{u}/recommendations",
          "/users/{u}/cross-category-recommendations")  # fmt: skip
OLD_ROUTES = ("/products/{p}/related", "/users/{u}/recommendations", "/users/{u}/cross-category")


def _route_names(port: int) -> tuple[str, ...]:
    """The ranking routes the server on ``port`` has (from its ``/openapi.json``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/openapi.json")
    spec = json.loads(conn.getresponse().read())
    conn.close()
    return ROUTES if "/products/{product_id}/related-products" in spec["paths"] else OLD_ROUTES


def _ranking_paths(rec: Any, routes: tuple[str, ...], n: int = 2000) -> list[str]:
    """``n`` random products and users with a history (seeded), each route in turn."""
    idx = rec.index
    rng = np.random.default_rng(1)
    active = np.flatnonzero(np.diff(idx.hist_indptr) > 0)
    paths = []
    for _ in range(n):
        p = idx.product_ids[int(rng.integers(0, idx.n_products))]
        u = idx.user_ids[int(rng.choice(active))]
        paths += [route.format(p=p, u=u) + "?k=10" for route in routes]
    return paths


def _worker_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each child process of ``pid`` (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def http_compare(
    args: argparse.Namespace, rec: Any, model_dir: Path, tables_dir: Path
) -> list[str]:
    """The HTTP rows of this tree against a checkout of another commit (``--compare-with``),
    alternating the servers round by round (so a slower minute of the machine hits all):
    the ranking endpoints computed live, ``/health``, and the ranking endpoints from each
    one's precomputed answers; medians over ``--rounds``. Also this tree with
    ``--reuse-port`` (a listening socket per worker), and how evenly the
    workers shared the load (CPU seconds of the busiest worker over the mean)."""
    base: Path = args.compare_with
    modes = (False,) if args.compare_live_only else (False, True)
    for src in () if args.compare_live_only else (base, None):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "kg", "precompute", "--model", str(model_dir), "--tables",
             str(tables_dir), "--no-progress"],
            check=True, stdout=subprocess.DEVNULL, cwd=src or ROOT,
            env={**os.environ, "PYTHONPATH": str(src or ROOT)},
        )  # fmt: skip
        print(f"precompute ({src or 'this tree'}): {time.perf_counter() - t0:.0f} s", flush=True)
    variants = [("baseline", base, ()), ("this tree", None, ()),
                ("this tree, `--reuse-port`", None, ("--reuse-port",))]  # fmt: skip
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    rounds = [variants if r % 2 == 0 else variants[::-1] for r in range(args.rounds)]
    for order in rounds:
        for name, src, extra in order:
            for stored in modes:
                flags = (*extra, "--lazy-text-encoder", *(() if stored else ("--no-precomputed",)))
                port = _free_port()
                proc = _serve(model_dir, tables_dir, port, args.workers, flags, src)
                try:
                    _wait_http(port, proc)
                    paths = _ranking_paths(rec, _route_names(port))
                    mixes = [("precomputed" if stored else "live", paths)]
                    if not stored:
                        mixes.append(("/health", ["/health"]))
                    for mix, todo in mixes:
                        _load(port, todo, args.clients, 2.0)
                        before = _worker_cpu(proc.pid)
                        t0 = time.perf_counter()
                        latencies, errors = _load(port, todo, args.clients, args.http_seconds)
                        wall = time.perf_counter() - t0
                        after = _worker_cpu(proc.pid)
                        used = [after[w] - before.get(w, 0.0) for w in after]
                        skew = max(used) / max(np.mean(used), 1e-9)
                        p50, _ = _pct(latencies)
                        rps = len(latencies) / wall
                        results.setdefault((name, mix), []).append((rps, p50, skew))
                        print(f"compare {name} {mix}: {rps:.0f} req/s, p50 {p50:.1f} ms, "
                              f"busiest worker {skew:.2f} x mean, {errors} non-200",
                              flush=True)  # fmt: skip
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
    lines = [
        f"- Machine: {machine_line()}",
        f"- Baseline: `{base}` (`git -C {base} rev-parse HEAD`: {_commit(base)}); this tree: "
        f"{_commit(ROOT)}",
        f"- `kgrec serve --workers {args.workers} --lazy-text-encoder`, {args.clients} "
        f"keep-alive clients, {args.http_seconds:.0f} s per measurement, {args.rounds} rounds "
        "alternating the servers; medians. Worker balance: CPU seconds of the busiest worker "
        "over the workers' mean (1.00 = even).",
        f"- Command: `.venv/bin/python bench/bench_query.py {' '.join(sys.argv[1:])}`",
        "",
        "| server | requests | requests/s | p50 ms | busiest worker / mean |",
        "|---|---|---:|---:|---:|",
    ]
    for (name, mix), runs in results.items():
        rps, p50, skew = (float(np.median([r[i] for r in runs])) for i in range(3))
        lines.append(f"| {name} | {mix} | {rps:.0f} | {p50:.1f} | {skew:.2f} |")
    return lines


def _commit(folder: Path) -> str:
    out = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    return out.stdout.strip() or "unknown"


def recall_at_k(
    exact: Any,
    approx: Any,
    calls: int,
    rng: np.random.Generator,
    k: int = 10,
    op: str = "related",
) -> tuple[float, float]:
    """Recall of the exact top ``k`` of ``op`` (:data:`APPROXIMATE_OPS`) in the approximate
    top ``k`` (mean over ``calls`` random products or users), and the share of identical
    lists."""
    recall, same = [], []
    for a in _op_args(exact, op, calls, rng):
        want = [r.product_id for r in _call(exact, op, a, k)]
        got = [r.product_id for r in _call(approx, op, a, k)]
        recall.append(len(set(want) & set(got)) / max(len(want), 1))
        same.append(want == got)
    out = float(np.mean(recall)), float(np.mean(same))
    print(f"recall@{k} {op}: {out[0]:.4f}, identical lists {out[1]:.3f}", flush=True)
    return out


def precompute(
    model_dir: Path, tables_dir: Path, rec: Any, calls: int, rng: np.random.Generator
) -> dict[str, Any]:
    """``kgrec precompute --force`` in a subprocess (its wall seconds), then ``calls`` random
    stored answers of each operation compared byte for byte with the live ones, and the
    seconds :meth:`AnswerStore.open` takes (it computes the store's key)."""
    from kg.query.answers import JSON_ENCODER, OPERATIONS, AnswerStore

    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "kg", "precompute", "--model", str(model_dir), "--tables",
         str(tables_dir), "--force", "--no-progress"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = AnswerStore.open(model_dir, rec)
    open_s = time.perf_counter() - t0
    assert store is not None
    manifest = {**store.manifest, "bytes": store.path.stat().st_size}
    idx, differ = rec.index, 0
    for op in OPERATIONS:
        ids = idx.product_ids if op == "related" else idx.user_ids
        for q in rng.integers(0, len(ids), calls).tolist():
            live = getattr(rec, op)(ids[q], store.k)
            want = ",".join(JSON_ENCODER.encode(r.to_dict()) for r in live).encode("utf-8")
            differ += store.items(op, ids[q], store.k) != want
    store.close()
    out = {"manifest": manifest, "wall": wall, "open": open_s}
    out.update(compared=calls * len(OPERATIONS), differ=differ)
    print(f"precompute: {wall:.0f} s, {manifest['bytes'] / 2**20:.0f} MB; "
          f"{differ} of {out['compared']} stored answers differ from live", flush=True)  # fmt: skip
    return out


def scan_floor(rec: Any, calls: int) -> tuple[float, float]:
    """p50/p99 of the bare ``(P, d) @ (d,)`` float32 product every personalised query needs."""
    vectors = rec.scorer.vectors
    u = np.ascontiguousarray(vectors[:10].mean(axis=0))
    samples = []
    for i in range(calls + 50):
        t0 = time.perf_counter()
        vectors @ u
        if i >= 50:
            samples.append(time.perf_counter() - t0)
    return _pct(samples)


def _serve(
    model_dir: Path,
    tables_dir: Path,
    port: int,
    workers: int,
    extra: tuple[str, ...],
    src: Path | None = None,
) -> subprocess.Popen[str]:
    """``kgrec serve`` in a subprocess (it sets each worker's BLAS threads itself); with
    ``src``, the ``kg`` package of that checkout (run from there, first on ``PYTHONPATH``)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-m", "kg", "serve", "--model", str(model_dir), "--tables",
         str(tables_dir), "--port", str(port), "--log-level", "warning",
         "--workers", str(workers), *extra],
        env=env, cwd=src or ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def serve_start_seconds(
    model_dir: Path, tables_dir: Path, workers: int, extra: tuple[str, ...]
) -> float:
    """Seconds from the launch of ``kgrec serve`` to its first answer."""
    port = _free_port()
    launched = time.perf_counter()
    proc = _serve(model_dir, tables_dir, port, workers, extra)
    try:
        _wait_http(port, proc)
        return time.perf_counter() - launched
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cli_seconds(model_dir: Path, tables_dir: Path, product: str, runs: int = 3) -> list[float]:
    """Wall seconds of ``runs`` one-shot ``kgrec related`` calls, each a new process: imports,
    tables, model and index, then one query."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "kg", "related", product, "-k", "10", "--model",
             str(model_dir), "--tables", str(tables_dir)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        out.append(time.perf_counter() - t0)
    return out


def _free_port() -> int:
    from kg.neo4j.server import free_port

    return free_port()


def _wait_http(port: int, proc: subprocess.Popen[str]) -> Any:
    """Wait until ``/health`` answers; its ``blas_threads``."""
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kgrec serve exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            resp = conn.getresponse()
            if resp.status == 200:
                return json.loads(resp.read())["blas_threads"]
        except OSError:
            pass
        time.sleep(0.1)  # polling the server's readiness, not waiting out a fixed delay
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
    parser.add_argument("--workers", type=int, default=2, help="kgrec serve --workers")
    parser.add_argument("--no-neo4j", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--n-probe", type=int, default=8, help="clusters probed by the approximate search"
    )
    parser.add_argument("--recall-calls", type=int, default=1000)
    parser.add_argument(
        "--blas-threads", type=int, default=1, help="numpy BLAS threads of the Python API rows"
    )
    parser.add_argument(
        "--compare-with", type=Path,
        help="only the HTTP rows, this tree against the checkout in this folder (e.g. `git "
        "worktree add /tmp/kgrec-base a6088e1`), alternating; writes section query-http-compare",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare-with")
    parser.add_argument(
        "--compare-live-only", action="store_true",
        help="--compare-with without the precomputed rows (no precompute runs)",
    )  # fmt: skip
    parser.add_argument(
        "--work-dir", type=Path,
        help="keep the shop's tables and the model here and reuse them on the next run "
        "(default: a temporary folder)",
    )  # fmt: skip
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    from ingest.sources.synthetic import SyntheticConfig, generate_shop
    from ingest.tables import GraphTables
    from kg.query import ApproximateSearch, Recommender
    from kg.serve_run import usable_cores

    torch.set_num_threads(1)
    threadpool_limits(limits=args.blas_threads, user_api="blas")
    cores = usable_cores()  # as kgrec serve counts them
    with tempfile.TemporaryDirectory(prefix="kgrec-bench-query-") as tmp:
        work = args.work_dir or Path(tmp)
        t0 = time.perf_counter()
        if (work / "model" / "config.json").exists() and (work / "tables").exists():
            tables = GraphTables.load(work / "tables")
            train_note = "reused from an earlier run of this script (`--work-dir`)"
        else:
            tables = generate_shop(SyntheticConfig.preset("bench"), show_progress=True)
            _model(tables, work / "model")
            tables.save(work / "tables")
            train_note = f"generated and trained in {time.perf_counter() - t0:.0f} s"
        counts = tables.counts()
        print(f"shop: {counts} ({time.perf_counter() - t0:.0f} s)", flush=True)
        t0 = time.perf_counter()
        rec = Recommender.load(work / "model", work / "tables")
        load_s = time.perf_counter() - t0
        if args.compare_with is not None:
            body = "\n".join(http_compare(args, rec, work / "model", work / "tables"))
            print(body)
            if not args.no_write:
                write_section("query-http-compare", "Query layer: HTTP, this tree against a "
                              "baseline commit", body)  # fmt: skip
            return 0
        rng = np.random.default_rng(0)
        py_rows = python_api(rec, args.calls, rng)
        pruning_rows = pruning_on_off(rec, args.calls, rng)
        with threadpool_limits(limits=cores, user_api="blas"):
            cores_rows = python_api(rec, args.calls, rng, label=f" ({cores} BLAS threads)")
        search = ApproximateSearch(n_probe=args.n_probe)
        t0 = time.perf_counter()
        approx = Recommender(rec.model, tables, approximate=search)
        build_s = time.perf_counter() - t0
        assert approx.product_clusters is not None
        n_lists = approx.product_clusters.n_lists
        approx_row = approximate_on_off(rec, approx, args.calls, rng)
        recall = recall_at_k(rec, approx, args.recall_calls, rng)
        sim_label = " + text & KGE similarity terms (2 x 64 dims)"
        sim = with_similarity_terms(rec)
        py_rows += python_api(sim, args.calls, rng, only_user_ops=True, label=sim_label)
        pruning_rows += pruning_on_off(sim, args.calls, rng, label=sim_label)
        del approx, sim
        floor = scan_floor(rec, args.calls)
        model_dir, tables_dir = work / "model", work / "tables"
        served = (rec, args.clients, args.http_seconds, args.workers)
        live = ("--no-precomputed",)
        http_rows = http_api(model_dir, tables_dir, *served, live, ", computed live", health=True)
        http_rows += http_api(
            model_dir, tables_dir, *served,
            (*live, "--approximate", "--n-probe", str(args.n_probe)),
            f", computed live (`--approximate --n-probe {args.n_probe}`)",
        )  # fmt: skip
        stored = precompute(model_dir, tables_dir, rec, args.recall_calls, rng)
        http_rows += http_api(
            model_dir, tables_dir, *served, (), ", precomputed answers (`kgrec precompute`)"
        )
        lazy_s = serve_start_seconds(
            model_dir, tables_dir, args.workers, ("--lazy-text-encoder", *live)
        )
        cli_s = cli_seconds(work / "model", work / "tables", rec.index.product_ids[0])
        vec = None if args.no_neo4j else neo4j_vector(tables, rec, args.vector_calls)
    mixed, manifest = http_rows[0], stored["manifest"]
    counts_of = manifest["counts"]
    lines = [
        f"- Machine: {machine_line()}; Python API: numpy BLAS {args.blas_threads} "
        f"thread{'s' if args.blas_threads > 1 else ''} and torch 1 thread unless a row says "
        f"otherwise; HTTP workers: `kgrec serve`'s default, {mixed[5]} BLAS "
        f"thread{'s' if mixed[5] != 1 else ''} each (`/health`)",
        f"- Data: synthetic `bench` shop: {counts['products']:,} products, {counts['users']:,} "
        f"users, {counts['interactions']:,} interactions; a fusion model with id embeddings only "
        f"(dim 64, one epoch: latency does not depend on quality), {train_note}; "
        f"`Recommender.load` took {load_s:.1f} s.",
        f"- Command: `.venv/bin/python bench/bench_query.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        f"Python API, {args.calls:,} calls each after 50 warm-up calls, random products / users "
        "with a history (targets: p50 < 2 ms, p99 < 10 ms):",
        "",
        "| operation | p50 ms | p99 ms |",
        "|---|---:|---:|",
        *[f"| `{name}` | {p50:.2f} | {p99:.2f} |" for name, p50, p99 in py_rows],
        f"| the bare scan `vectors @ u` ({counts['products']:,} x 64 float32) | {floor[0]:.2f} "
        f"| {floor[1]:.2f} |",
        "",
        "By default every query scores every product exactly, so the bare scan is the floor "
        f"of a personalised query: it reads {counts['products'] * 64 * 4 / 1e6:.1f} MB of "
        "vectors per query.",
        "",
        "A personalised query adds its graph terms, and a model's similarity terms, only to the "
        "products that can still reach the top k (`kg/query/pruning.py`, "
        "`kg/query/relative.py`; same results). The same users with and without that, the two "
        "alternating in blocks of 100 calls (1 BLAS thread):",
        "",
        "| operation | p50 ms, pruned (default) | p50 ms, every product scored |",
        "|---|---:|---:|",
        *[f"| `{name}` | {on:.2f} | {off:.2f} |" for name, on, off in pruning_rows],
        "",
        f"The same exact operations with {cores} BLAS threads ({cores} cores: what a Python "
        "process gets when `OMP_NUM_THREADS` is not set; the scan is split between them):",
        "",
        "| operation | p50 ms | p99 ms |",
        "|---|---:|---:|",
        *[f"| `{name}` | {p50:.2f} | {p99:.2f} |" for name, p50, p99 in cores_rows],
        "",
        f"With `ApproximateSearch(n_probe={args.n_probe})` (`kgrec serve --approximate`; "
        f"{n_lists} k-means clusters built in {build_s:.1f} s) `related` scores only the "
        f"products of the {args.n_probe} clusters nearest the product and those its "
        "co-occurrence and graph terms favour (`kg/query/candidates.py`); the personalised "
        "queries' own inverted file is measured at 1M products by `bench/bench_scale.py`. "
        "The same products approximate and exact, alternating "
        "in blocks of 100 calls (1 BLAS thread), and what it gives up over "
        f"{args.recall_calls:,} random products: recall@10 of the exact top 10, and the share "
        "of identical lists (same products, same order):",
        "",
        "| operation | p50 ms, approximate | p50 ms, exact | recall@10 | identical lists |",
        "|---|---:|---:|---:|---:|",
        f"| `{approx_row[0]}` | {approx_row[1]:.2f} | {approx_row[2]:.2f} | {recall[0]:.4f} "
        f"| {recall[1]:.3f} |",
        "",
        f"HTTP API (`kgrec serve --workers {args.workers}`, loopback), {args.clients} "
        f"concurrent keep-alive clients (closed loop: one asyncio process, raw HTTP/1.1) for "
        f"{args.http_seconds:.0f} s each (target: p50 < 15 ms):",
        "",
        "| requests | p50 ms | p99 ms | requests/s | non-200 |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {n} | {p50:.1f} | {p99:.1f} | {rps:.0f} | {err} |"
            for n, p50, p99, rps, err, *_ in http_rows
        ],
        "",
        f"Precomputed answers: `kgrec precompute` ({cores} workers, exact search) stored "
        f"related of {counts_of['related']:,} products and recommend and cross-category of "
        f"{counts_of['recommend']:,} users, k = {manifest['k']}, in {stored['wall']:.0f} s "
        f"({manifest['bytes'] / 2**20:,.0f} MB, zlib blocks in SQLite); of {stored['compared']:,} random stored "
        f"answers, {stored['differ']} differ from the live answer byte for byte; opening the "
        f"store (its key hashes the model's arrays and the graph) took {stored['open']:.1f} s. "
        "`kgrec serve` sends them for requests whose other parameters are the defaults and "
        f"whose k is at most {manifest['k']}, as in this load; any other request is computed "
        "live. The answers stay those of the model and graph loaded: they change only with "
        "them, and a store made for others is refused.",
        "",
        f"In a closed loop, latency = clients / throughput (Little's law): {args.clients} / "
        f"{mixed[3]:.0f} req/s = {1000 * args.clients / max(mixed[3], 1e-9):.0f} ms. A p50 of "
        f"15 ms with {args.clients} clients needs {args.clients / 0.015:,.0f} requests/s; the "
        "`/health` row is what the HTTP stack alone (uvicorn, FastAPI) does on this machine, "
        "with the load generator on the same 2 cores.",
        "",
        f"Start-up, each a new process (imports, tables, model, index): `kgrec serve --workers "
        f"{args.workers}` answered its first request {mixed[6]:.1f} s after launch (it loads "
        f"the text encoder of new products first), `kgrec serve --approximate` (k-means "
        f"clusters too) {http_rows[2][6]:.1f} s, with precomputed answers (their key is checked) "
        f"{http_rows[3][6]:.1f} s, `kgrec serve --lazy-text-encoder` (no torch until a new "
        f"product comes) {lazy_s:.1f} s (one launch each); a one-shot `kgrec "
        f"related` took {', '.join(f'{x:.1f}' for x in cli_s)} s ({len(cli_s)} runs).",
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
