"""Freshness under load: live interaction events through ``kgrec serve --events`` while 32
clients query (issue 21).

1. The synthetic ``bench`` shop (100k products, 100k users, 1M interactions) and its small
   fusion model, as ``bench/bench_query.py`` makes them (shared with it through
   ``--work-dir``), loaded into a fresh local Neo4j.
2. ``kgrec serve --events --workers 2 --no-precomputed`` on that Neo4j and the shop's tables.
3. Per rate in ``--rates``: for ``--seconds``, ``--clients`` closed-loop clients query the
   ranking endpoints of random users, while one sender POSTs view events at that rate in
   batches every ``--batch-ms`` (random users and products, each event id new), open loop: a
   batch is due on time whether or not the earlier ones were answered, on up to ``--senders``
   keep-alive connections (a batch waits while all are busy, and its wait counts). Every
   ``--probe-ms`` one event of the batch is a probe: a user views the product that was their
   top recommendation, and a prober asks ``GET /users/U/recommendations`` (a new connection
   each time, so either worker may answer) until the answer no longer holds it (the product is
   seen now): the probe's freshness is the time from its batch's due time to that answer.
   Reported: freshness p50/p99, the events/s achieved (committed to Neo4j: the POSTs'
   receipts, over the time until the last was answered), the POST latency from the due time,
   and the query p50/p99 meanwhile.

Writes BENCHMARKS.md section "live".

    .venv/bin/python bench/bench_live.py [--work-dir DIR] [--rates 500 1000 2000 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _report import machine_line, write_section
from bench_query import _free_port, _model, _pct, _wait_http

ROOT = Path(__file__).resolve().parents[1]


async def _request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    method: str,
    path: str,
    body: bytes = b"",
    headers: str = "",
) -> tuple[int, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n{headers}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    raw = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in raw.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    payload = await reader.readexactly(length)
    return int(raw.split(b" ", 2)[1]), payload


async def _one_rate(
    port: int,
    token: str,
    rate: int,
    seconds: float,
    clients: int,
    batch_ms: float,
    probe_ms: float,
    rng: np.random.Generator,
    products: list[str],
    users: list[str],
    counter: list[int],
    senders: int,
) -> dict[str, Any]:
    stop = time.perf_counter() + seconds
    query_lat: list[float] = []
    post_lat: list[float] = []
    fresh: list[float] = []
    missed = 0
    committed = 0
    errors = 0
    auth = f"Authorization: Bearer {token}\r\n"

    async def querier(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        while time.perf_counter() < stop:
            user = users[(i * 7919) % len(users)]
            t0 = time.perf_counter()
            status, _ = await _request(reader, writer, "GET", f"/users/{user}/recommendations")
            query_lat.append(time.perf_counter() - t0)
            errors += status != 200
            i += clients
        writer.close()

    async def top(user: str) -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        _, body = await _request(reader, writer, "GET", f"/users/{user}/recommendations?k=1")
        writer.close()
        return json.loads(body)["items"][0]["product_id"]

    async def probe(user: str, product: str, sent: float) -> None:
        nonlocal missed
        deadline = sent + 10.0
        while time.perf_counter() < deadline:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            _, body = await _request(reader, writer, "GET", f"/users/{user}/recommendations")
            writer.close()
            if product not in {r["product_id"] for r in json.loads(body)["items"]}:
                fresh.append(time.perf_counter() - sent)
                return
            await asyncio.sleep(0.005)  # the next poll of the answer
        missed += 1

    def event(user: str, product: str) -> dict[str, Any]:
        counter[0] += 1
        return {"type": "interaction", "event_id": f"bench-{counter[0]}", "user_id": user,
                "product_id": product, "kind": "view", "ts": 1_733_500_000 + counter[0]}  # fmt: skip

    async def post(pool: asyncio.Queue, batch: list[dict[str, Any]], due: float,
                   probe_of: tuple[str, str] | None) -> None:  # fmt: skip
        nonlocal committed, errors
        reader, writer = await pool.get()  # waits while every connection is busy: a backlog
        try:
            status, payload = await _request(
                reader, writer, "POST", "/events", json.dumps(batch).encode(), auth
            )
        finally:
            pool.put_nowait((reader, writer))
        post_lat.append(time.perf_counter() - due)
        if status == 200:
            committed += json.loads(payload)["applied"]
        else:
            errors += 1
        if probe_of is not None:
            await probe(*probe_of, due)

    async def sender() -> None:
        pool: asyncio.Queue = asyncio.Queue()
        for _ in range(senders):
            pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
        per_batch = max(1, round(rate * batch_ms / 1000))
        next_send = time.perf_counter()
        next_probe = next_send
        posts: list[asyncio.Task[None]] = []
        while time.perf_counter() < stop:
            batch = [
                event(users[int(rng.integers(len(users)))],
                      products[int(rng.integers(len(products)))])
                for _ in range(per_batch)
            ]  # fmt: skip
            probe_of = None
            if time.perf_counter() >= next_probe:
                user = users[int(rng.integers(len(users)))]
                probe_of = (user, await top(user))
                batch[0] = event(*probe_of)
                next_probe += probe_ms / 1000
            # open loop: the batch is due now, whether or not earlier ones were answered
            posts.append(asyncio.create_task(post(pool, batch, next_send, probe_of)))
            next_send += batch_ms / 1000
            delay = next_send - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the sender's fixed rate
        await asyncio.gather(*posts)
        while not pool.empty():
            pool.get_nowait()[1].close()

    t_start = time.perf_counter()
    await asyncio.gather(sender(), *(querier(k) for k in range(clients)))
    elapsed = time.perf_counter() - t_start
    f50, f99 = _pct(fresh) if fresh else (float("nan"), float("nan"))
    q50, q99 = _pct(query_lat)
    p50, p99 = _pct(post_lat)
    return {
        "rate": rate, "events_per_s": committed / elapsed, "committed": committed,
        "fresh_p50_ms": f50, "fresh_p99_ms": f99, "probes": len(fresh), "missed": missed,
        "post_p50_ms": p50, "post_p99_ms": p99, "query_p50_ms": q50, "query_p99_ms": q99,
        "queries_per_s": len(query_lat) / seconds, "errors": errors, "elapsed_s": elapsed,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, help="bench_query's --work-dir (shop + model)")
    parser.add_argument("--rates", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-ms", type=float, default=50.0)
    parser.add_argument("--probe-ms", type=float, default=250.0)
    parser.add_argument("--senders", type=int, default=8,
                        help="connections the event sender may keep busy at once")  # fmt: skip
    parser.add_argument("--poll", type=float, default=0.05, help="kgrec serve --events-poll")
    parser.add_argument("--preset", default="bench", help="synthetic preset (bench: 100k)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import torch

    from ingest.neo4j_writer import write_graph
    from ingest.sources.synthetic import SyntheticConfig, generate_shop
    from ingest.tables import GraphTables
    from kg.neo4j.driver import open_driver
    from kg.neo4j.server import LocalNeo4j, free_port

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="kgrec-bench-live-") as tmp:
        work = args.work_dir or Path(tmp)
        if not ((work / "model" / "config.json").exists() and (work / "tables").exists()):
            tables = generate_shop(SyntheticConfig.preset(args.preset), show_progress=True)
            _model(tables, work / "model")
            tables.save(work / "tables")
        tables = GraphTables.load(work / "tables")
        products = tables.products.column("id").to_pylist()
        users = tables.users.column("id").to_pylist()
        server = LocalNeo4j(Path(tmp) / "neo4j", port=free_port(),
                            password=secrets.token_urlsafe(12), heap="2g", pagecache="1g")  # fmt: skip
        info = server.start(timeout=600)
        serve = None
        try:
            settings = server.settings(info)
            t0 = time.perf_counter()
            with open_driver(settings) as driver:
                write_graph(driver, tables, show_progress=True)
            load_s = time.perf_counter() - t0
            print(f"loaded into Neo4j in {load_s:.0f} s", flush=True)
            token_file = Path(tmp) / "events-token"
            port = _free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
            env |= {"NEO4J_URI": settings.uri, "NEO4J_USERNAME": settings.user,
                    "NEO4J_PASSWORD": settings.password}  # fmt: skip
            serve = subprocess.Popen(
                [sys.executable, "-m", "kg", "serve", "--model", str(work / "model"),
                 "--tables", str(work / "tables"), "--port", str(port), "--workers",
                 str(args.workers), "--no-precomputed", "--lazy-text-encoder", "--log-level",
                 "warning", "--events", "--events-token-file", str(token_file),
                 "--events-poll", str(args.poll)],
                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            _wait_http(port, serve)
            token = token_file.read_text().strip()
            counter = [0]
            rows = []
            # warm-up, not reported: each worker's first batch sets up its event log, and
            # Neo4j compiles the event queries
            asyncio.run(
                _one_rate(port, token, args.rates[0], 10.0, args.clients, args.batch_ms,
                          args.probe_ms, rng, products, users, counter, args.senders)
            )  # fmt: skip
            for rate in args.rates:
                row = asyncio.run(
                    _one_rate(port, token, rate, args.seconds, args.clients, args.batch_ms,
                              args.probe_ms, rng, products, users, counter, args.senders)
                )  # fmt: skip
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            if serve is not None:
                serve.terminate()
                serve.wait(timeout=60)
            server.stop()

    lines = [
        f"- Machine: {machine_line()}",
        f"- Dataset: synthetic `{args.preset}` shop ({len(products):,} products, {len(users):,} users, "
        f"{tables.interactions.num_rows:,} interactions) and bench_query's small fusion model; "
        f"loaded over Bolt into a fresh local Neo4j in {load_s:.0f} s.",
        f"- Server: `kgrec serve --events --workers {args.workers} --no-precomputed "
        f"--events-poll {args.poll}`; the load generator, the Neo4j JVM and the server share "
        "the machine's cores.",
        f"- Load: {args.clients} closed-loop clients on `GET /users/U/recommendations` (random "
        f"users) for {args.seconds:.0f} s per rate; one sender POSTs view events (random users "
        f"and products, new event ids) every {args.batch_ms:.0f} ms at the rate, open loop (a "
        f"batch is due on time, answered or not, on up to {args.senders} keep-alive "
        "connections; a batch waiting for a free one counts its wait); every "
        f"{args.probe_ms:.0f} ms one of them is a probe (a user views their top "
        "recommendation), polled on new connections (either worker) until the answer drops it.",
        "- 10 s of load at the first rate before the rows, not reported (warm-up).\n"
        "- Freshness: from the probe's batch's due time to the first answer that reflects it "
        "(Neo4j commit, this worker's apply, or the other worker's next poll).",
        "- Command: `.venv/bin/python bench/bench_live.py --work-dir WORK`",
        "",
        "| rate asked (events/s) | committed events/s | freshness p50 ms | freshness p99 ms | "
        "probes (missed) | POST p50 / p99 ms | query p50 ms | query p99 ms | queries/s | "
        "non-200 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['rate']:,} | {r['events_per_s']:,.0f} | {r['fresh_p50_ms']:.0f} | "
            f"{r['fresh_p99_ms']:.0f} | {r['probes']} ({r['missed']}) | "
            f"{r['post_p50_ms']:.0f} / {r['post_p99_ms']:.0f} | {r['query_p50_ms']:.1f} | "
            f"{r['query_p99_ms']:.1f} | {r['queries_per_s']:,.0f} | {r['errors']} |"
        )
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("live", "Live events: freshness under load", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
