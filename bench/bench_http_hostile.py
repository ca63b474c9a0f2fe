"""The HTTP API under a mix of valid and hostile requests (issue 19 item 10).

``kgrec serve --workers 2`` on the 100k-product synthetic ``bench`` shop (the model and tables
of ``bench/bench_query.py``: pass the same ``--work-dir`` to reuse them), loopback only.
``--clients`` concurrent clients (one asyncio process, raw HTTP/1.1 keep-alive connections)
send for ``--seconds`` a seeded random mix of valid requests (the ranking endpoints,
explanations, a new user, ``/health``) and hostile ones: huge declared and chunked bodies,
huge and over-long ids, bad JSON, deeply nested JSON, a body shorter than its Content-Length,
unknown routes and methods, bad parameters, unknown ids, a huge header. Records the count of
each status code per kind of request, connection errors (a reset, or a connection closed
before its answer), the valid requests' p50/p99, and the workers' memory (RSS) before and
after. Target: no 5xx and no connection errors.

Writes BENCHMARKS.md section "http-hostile".

    .venv/bin/python bench/bench_http_hostile.py --work-dir /tmp/kgrec-bench-query
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine_line, write_section
from bench_query import _free_port, _model, _pct, _serve, _wait_http, _worker_cpu

#: Request kinds and their weights in the mix (valid kinds first).
VALID = {"related": 6, "recommendations": 6, "cross-category": 4, "explanation": 2,
         "new user": 2, "health": 2}  # fmt: skip
HOSTILE = {
    "50 MB declared body": 1, "2 MB chunked body": 1, "1 MB id": 1, "600-character id": 1,
    "bad JSON": 1, "nested JSON (100k levels)": 1, "truncated body": 1, "unknown route": 1,
    "wrong method": 1, "bad k": 1, "bad level": 1, "unknown id": 1, "64 KB header": 1,
    "invalid UTF-8 id": 1,
}  # fmt: skip


def _request(kind: str, rng: random.Random, products: list[str], users: list[str]) -> bytes:
    """The raw bytes of one request of ``kind`` (the body of a huge one is sent apart)."""
    p, u = rng.choice(products), rng.choice(users)

    def get(path: str, extra: str = "") -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: bench\r\n{extra}\r\n".encode()

    def post(path: str, body: bytes, length: int | None = None) -> bytes:
        n = len(body) if length is None else length
        head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        return f"{head}Content-Length: {n}\r\n\r\n".encode() + body

    if kind == "related":
        return get(f"/products/{p}/related-products?k=10")
    if kind == "recommendations":
        return get(f"/users/{u}/recommendations?k=10")
    if kind == "cross-category":
        return get(f"/users/{u}/cross-category-recommendations?k=10")
    if kind == "explanation":
        return get(f"/users/{u}/explanations/{p}")
    if kind == "new user":
        ids = ",".join(f'"{x}"' for x in rng.sample(products, 3))
        return post("/recommendations?k=10", f"[{ids}]".encode())
    if kind == "health":
        return get("/health")
    if kind == "50 MB declared body":
        return post("/recommendations", b'["' + b"x" * 65536, length=50 * 2**20)
    if kind == "2 MB chunked body":
        head = "POST /recommendations HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"x" * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(32))
        return head.encode() + body + b"0\r\n\r\n"
    if kind == "1 MB id":
        return get(f"/products/{'x' * 2**20}/related-products")
    if kind == "600-character id":
        return get(f"/users/{'y' * 600}/recommendations")
    if kind == "bad JSON":
        return post("/recommendations", b'["p1", "p2"')
    if kind == "nested JSON (100k levels)":
        return post("/recommendations", b"[" * 100_000)
    if kind == "truncated body":
        return post("/recommendations", b'["p1",', length=100)
    if kind == "unknown route":
        return get(f"/products/{p}/nothing-here")
    if kind == "wrong method":
        return f"DELETE /users/{u}/recommendations HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    if kind == "bad k":
        return get(f"/products/{p}/related-products?k={rng.choice(['0', '-1', 'ten', '10' * 20])}")
    if kind == "bad level":
        return get(f"/users/{u}/cross-category-recommendations?level=99")
    if kind == "unknown id":
        return get(f"/products/no-such-{rng.randrange(10**9)}/related-products")
    if kind == "64 KB header":
        return get("/health", f"X-Junk: {'z' * 65536}\r\n")
    if kind == "invalid UTF-8 id":
        return get("/products/%FF%FE%80/related-products")
    raise ValueError(kind)


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status of the next response, and whether the server closes the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"connection" and value.strip().lower() == b"close":
            close = True
    await reader.readexactly(length)
    return status, close


def run_mix(
    port: int, clients: int, seconds: float, products: list[str], users: list[str], seed: int
) -> dict[str, Any]:
    """The mix of the module docstring: counts per kind and status, connection errors, valid
    latencies."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    latencies: list[float] = []
    kinds = [*VALID, *HOSTILE]
    weights = [*VALID.values(), *HOSTILE.values()]
    stop = time.perf_counter() + seconds

    async def client(c: int) -> None:
        rng = random.Random(seed * 1000 + c)
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while time.perf_counter() < stop:
            kind = rng.choices(kinds, weights)[0]
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            t0 = time.perf_counter()
            try:
                writer.write(_request(kind, rng, products, users))
                # refused mid-upload: the answer is still in the read buffer
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    await writer.drain()
                status, close = await asyncio.wait_for(_answer(reader), 60)
            except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
                counts[kind][f"connection error ({type(exc).__name__})"] += 1
                close = True
            else:
                counts[kind][str(status)] += 1
                if kind in VALID and status == 200:
                    latencies.append(time.perf_counter() - t0)
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    async def main() -> None:
        await asyncio.gather(*(client(c) for c in range(clients)))

    asyncio.run(main())
    return {"counts": counts, "latencies": latencies}


def _rss(pid: int) -> list[float]:
    """RSS in MB of each worker (child process) of ``pid``."""
    out = []
    for child in sorted(_worker_cpu(pid)):
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        out.append(kb / 1024)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work-dir", type=Path,
        help="the model and tables of bench_query.py (built there when missing)",
    )  # fmt: skip
    parser.add_argument("--note", help="a line for the section (e.g. how busy the machine was)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from ingest.sources.synthetic import SyntheticConfig, generate_shop
    from ingest.tables import GraphTables

    with tempfile.TemporaryDirectory(prefix="kgrec-bench-hostile-") as tmp:
        work = args.work_dir or Path(tmp)
        if not ((work / "model" / "config.json").exists() and (work / "tables").exists()):
            tables = generate_shop(SyntheticConfig.preset("bench"), show_progress=True)
            _model(tables, work / "model")
            tables.save(work / "tables")
        tables = GraphTables.load(work / "tables")
        counts = tables.counts()
        products = tables.products.column("id").to_pylist()
        users = tables.users.column("id").to_pylist()
        rng = random.Random(args.seed)
        products, users = rng.sample(products, 5000), rng.sample(users, 5000)
        port = _free_port()
        proc = _serve(work / "model", work / "tables", port, args.workers, ())
        try:
            _wait_http(port, proc)
            before = _rss(proc.pid)
            t0 = time.perf_counter()
            result = run_mix(port, args.clients, args.seconds, products, users, args.seed)
            wall = time.perf_counter() - t0
            after = _rss(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    by_kind = result["counts"]
    total: Counter[str] = Counter()
    for c in by_kind.values():
        total.update(c)
    fivexx = sum(n for code, n in total.items() if code.startswith("5"))
    conn_errors = sum(n for code, n in total.items() if code.startswith("connection"))
    p50, p99 = _pct(result["latencies"]) if result["latencies"] else (float("nan"),) * 2
    codes = sorted(total)
    lines = [
        f"- Machine: {machine_line()}",
        f"- Data: synthetic `bench` shop ({counts['products']:,} products, {counts['users']:,} "
        "users), the model of `bench/bench_query.py`; `kgrec serve --workers "
        f"{args.workers}` (default limits: body 1 MiB, URL 16 KiB, body timeout 10 s, ids "
        "512 characters), loopback",
        f"- Load: {args.clients} keep-alive clients (one asyncio process, raw HTTP/1.1) for "
        f"{args.seconds:.0f} s ({wall:.0f} s with the last answers), seed {args.seed}; "
        f"valid : hostile = {sum(VALID.values())} : {sum(HOSTILE.values())} by weight",
        f"- Command: `.venv/bin/python bench/bench_http_hostile.py {' '.join(sys.argv[1:])}`",
        *([f"- Note: {args.note}"] if args.note else []),
        "",
        f"**{fivexx} responses 5xx, {conn_errors} connection errors** (target: 0 and 0); "
        f"valid requests answered 200: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"({len(result['latencies']):,} requests); worker RSS before "
        f"{', '.join(f'{x:.0f}' for x in before)} MB, after "
        f"{', '.join(f'{x:.0f}' for x in after)} MB.",
        "",
        "| request | " + " | ".join(codes) + " |",
        "|---|" + "---:|" * len(codes),
    ]
    for kind in [*VALID, *HOSTILE]:
        row = by_kind.get(kind, Counter())
        lines.append(f"| {kind} | " + " | ".join(f"{row.get(c, 0):,}" for c in codes) + " |")
    lines.append("| **all** | " + " | ".join(f"**{total[c]:,}**" for c in codes) + " |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("http-hostile", "HTTP API under hostile input", body)
    return 0 if fivexx == 0 and conn_errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
