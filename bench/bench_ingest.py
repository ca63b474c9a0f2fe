"""Ingest throughput: a synthetic shop loaded into a fresh local Neo4j.

Starts its own Neo4j (temporary home, free port), generates the shop, loads it with
``write_graph``, and reports nodes/s and relationships/s per table, then re-runs the load to
time the idempotent MERGE path. Results go to stdout and to BENCHMARKS.md (section "ingest").

    .venv/bin/python bench/bench_ingest.py                 # 100k products / 1M interactions
    .venv/bin/python bench/bench_ingest.py --preset demo   # quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine_line, write_section

from ingest import schema
from ingest.neo4j_writer import graph_counts, write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from kg.neo4j.driver import open_driver
from kg.neo4j.server import LocalNeo4j, free_port

NODE_TABLES = tuple(n.table for n in schema.NODE_TYPES)
REL_TABLES = ("interactions", "in_category", "subcategory_of", "made_by", "triples")


def _proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bench", choices=["tiny", "demo", "bench", "large"])
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4, help="write transactions at once")
    parser.add_argument("--heap", default="2g")
    parser.add_argument("--pagecache", default="2g")
    parser.add_argument("--no-rerun", action="store_true", help="skip the idempotent re-load")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = parser.parse_args()

    config = SyntheticConfig.preset(args.preset)
    t0 = time.perf_counter()
    shop = generate_shop(config, show_progress=False)
    gen_s = time.perf_counter() - t0
    counts = shop.counts()
    print(f"generated {args.preset}: {counts} in {gen_s:.1f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="kgrec-bench-") as home:
        server = LocalNeo4j(home, port=free_port(), heap=args.heap, pagecache=args.pagecache)
        info = server.start(timeout=300)
        try:
            with open_driver(server.settings(info)) as driver:
                cpu0 = (_proc_cpu_seconds(info.pid), _self_cpu_seconds(), time.perf_counter())
                first = write_graph(
                    driver, shop, batch_size=args.batch_size, workers=args.workers,
                    show_progress=True,
                )  # fmt: skip
                cpu1 = (_proc_cpu_seconds(info.pid), _self_cpu_seconds(), time.perf_counter())
                in_db = graph_counts(driver)
                rerun = None
                if not args.no_rerun:
                    rerun = write_graph(
                        driver, shop, batch_size=args.batch_size, workers=args.workers,
                        show_progress=True,
                    )  # fmt: skip
                    assert graph_counts(driver) == in_db, "re-run changed the graph"
        finally:
            server.stop()

    java_cpu, py_cpu, wall = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    lines = [
        f"- Machine: {machine_line()}",
        f"- Dataset: synthetic preset `{args.preset}` (seed {config.seed}): "
        f"{counts['products']:,} products, {counts['users']:,} users, "
        f"{counts['interactions']:,} interactions; generated in {gen_s:.1f} s",
        f"- Neo4j: local 5.26 embedded, heap {args.heap}, page cache {args.pagecache}; "
        f"batch {args.batch_size:,} rows per transaction, {args.workers} at once",
        f"- Command: `.venv/bin/python bench/bench_ingest.py --preset {args.preset} "
        f"--workers {args.workers}`",
        f"- In Neo4j after load: {in_db}",
        f"- Where the first load's time goes: {wall:.1f} s wall; Neo4j JVM used {java_cpu:.1f} "
        f"CPU-s ({java_cpu / wall:.0%} of one core), this Python client {py_cpu:.1f} CPU-s "
        f"({py_cpu / wall:.0%}). The server executes each write transaction on one thread; "
        f"{args.workers} run at once.",
        "",
        "| load | table | rows | seconds | rows/s |",
        "|---|---|---:|---:|---:|",
    ]
    for label, report in (("first (CREATE edges)", first), ("re-run (MERGE, no change)", rerun)):
        if report is None:
            continue
        for table, rows in report.rows.items():
            if rows:
                secs = report.seconds[table]
                lines.append(f"| {label} | {table} | {rows:,} | {secs:.1f} | {rows / secs:,.0f} |")
        lines.append(
            f"| {label} | **nodes** | {report.node_rows:,} | "
            f"{sum(report.seconds[t] for t in NODE_TABLES):.1f} | **{report.rate(NODE_TABLES):,.0f}** |"
        )
        lines.append(
            f"| {label} | **relationships** | {report.rel_rows:,} | "
            f"{sum(report.seconds[t] for t in REL_TABLES):.1f} | **{report.rate(REL_TABLES):,.0f}** |"
        )
        lines.append(f"| {label} | total (constraints included) | | {report.total_seconds:.1f} | |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("ingest", "Ingest into Neo4j", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
