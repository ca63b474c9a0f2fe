"""Crash test of ingest: kill the loading client, and separately the Neo4j JVM, mid-load; restart,
re-run, and compare the graph with a clean load (counts, and a checksum of every
``(user, order, product)``).

Starts its own Neo4j (temporary home, free port). Each scenario loads the same synthetic shop
with ``kgrec ingest synthetic`` (a subprocess, as a user runs it) into an empty database, kills
the process named by the scenario once part of the interactions are in Neo4j (a condition on
the graph, not a timer), restarts what was killed, runs the same command again and checks the
result. Two loads started together (issue 19) are checked the same way. Results go to stdout
and to BENCHMARKS.md (section "crash").

    .venv/bin/python bench/bench_crash.py                  # the demo shop (60k interactions)
    .venv/bin/python bench/bench_crash.py --preset tiny    # a quick look
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine_line, write_section

from ingest import schema
from ingest.neo4j_writer import graph_counts
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from ingest.tables import GraphTables
from kg.neo4j.driver import open_driver
from kg.neo4j.server import LocalNeo4j, free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    """One scenario's record."""

    scenario: str
    killed_at: int  # INTERACTED edges in Neo4j when the kill was sent (-1: no kill)
    first_status: int | None
    first_stderr: str
    restart_s: float
    rerun_s: float
    counts_equal: bool
    checksum_equal: bool


def expected(tables: GraphTables) -> tuple[dict, str]:
    """The counts and the ``(user, order, product)`` checksum of a clean load of ``tables``."""
    nodes = {n.label: tables.table(n.table).num_rows for n in schema.NODE_TYPES}
    rels = {e.rel_type: tables.table(e.table).num_rows for e in schema.EDGE_TYPES}
    counts = {
        "nodes": {k: v for k, v in sorted(nodes.items()) if v},
        "relationships": {k: v for k, v in sorted(rels.items()) if v},
    }
    rows = zip(
        tables.interactions["user_id"].to_pylist(),
        tables.interactions["order"].to_pylist(),
        tables.interactions["product_id"].to_pylist(),
        strict=True,
    )
    return counts, _checksum(f"{u}\t{o}\t{p}" for u, o, p in rows)


def _checksum(lines) -> str:
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def observed(driver) -> tuple[dict, str]:
    """The graph's counts and its ``(user, order, product)`` checksum."""
    records, _, _ = driver.execute_query(
        "MATCH (u:User)-[r:INTERACTED]->(p:Product) RETURN u.id AS u, r.order AS o, p.id AS p"
    )
    return graph_counts(driver), _checksum(f"{r['u']}\t{r['o']}\t{r['p']}" for r in records)


def interacted(driver) -> int:
    records, _, _ = driver.execute_query("MATCH ()-[r:INTERACTED]->() RETURN count(r) AS n")
    return int(records[0]["n"])


def empty(driver) -> None:
    with driver.session() as session:
        session.run(
            "MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
        ).consume()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=["tiny", "demo", "bench"])
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = parser.parse_args()

    shop = generate_shop(SyntheticConfig.preset(args.preset), show_progress=False)
    want = expected(shop)
    total = shop.interactions.num_rows
    command = [sys.executable, "-m", "kg", "ingest", "synthetic", "--preset", args.preset,
               "--batch-size", str(args.batch_size), "--no-progress"]  # fmt: skip
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="kgrec-crash-") as home:
        server = LocalNeo4j(home, port=free_port(), heap="1g")
        info = server.start(timeout=300)
        settings = server.settings(info)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")},
            "NEO4J_URI": settings.uri, "NEO4J_USERNAME": "neo4j",
            "NEO4J_PASSWORD": settings.password or "",
        }  # fmt: skip

        def load() -> subprocess.Popen[str]:
            return subprocess.Popen(command, cwd=ROOT, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

        def kill_mid_load(target: str) -> tuple[int, int | None, str]:
            """Start a load, kill ``target`` ("client" or "neo4j") once a third of the
            interactions are in; the edges present then, the client's exit status and what it
            wrote to stderr."""
            nonlocal info
            with open_driver(settings) as driver:
                empty(driver)
                proc = load()
                seen = 0
                while proc.poll() is None and seen < total // 3:
                    seen = interacted(driver)
                    time.sleep(0.02)  # poll interval
            if proc.poll() is not None:
                raise SystemExit(f"the load finished before it could be killed ({seen} edges)")
            if target == "client":
                proc.send_signal(signal.SIGKILL)
            else:
                os.kill(info.pid, signal.SIGKILL)
            _, err = proc.communicate(timeout=300)
            return seen, proc.returncode, err.strip()

        for target in ("client", "neo4j"):
            seen, status, said = kill_mid_load(target)
            restart_s = 0.0
            if target == "neo4j":
                t0 = time.perf_counter()
                info = server.start(timeout=300)  # recovers the store from its transaction log
                restart_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = load()
            _, err = again.communicate(timeout=1800)
            if again.returncode != 0:
                raise SystemExit(f"the re-run failed: {err.strip()}")
            rerun_s = time.perf_counter() - t0
            with open_driver(settings) as driver:
                got = observed(driver)
            outcomes.append(Outcome(f"kill -9 the {'ingest client' if target == 'client' else 'Neo4j JVM'}",
                                    seen, status, said, restart_s, rerun_s, got[0] == want[0],
                                    got[1] == want[1]))  # fmt: skip
            print(outcomes[-1], flush=True)

        with open_driver(settings) as driver:
            empty(driver)
        t0 = time.perf_counter()
        loads = [load(), load()]
        statuses = [p.communicate(timeout=1800) and p.returncode for p in loads]
        both_s = time.perf_counter() - t0
        if any(statuses):
            raise SystemExit(f"a concurrent load failed: {statuses}")
        with open_driver(settings) as driver:
            got = observed(driver)
        outcomes.append(Outcome("two loads started together", -1, 0, "", 0.0, both_s,
                                got[0] == want[0], got[1] == want[1]))  # fmt: skip
        print(outcomes[-1], flush=True)
        server.stop()

    counts = shop.counts()
    lines = [
        f"- Machine: {machine_line()}",
        f"- Dataset: synthetic preset `{args.preset}`: {counts['products']:,} products, "
        f"{counts['users']:,} users, {total:,} interactions; loaded with `kgrec ingest synthetic` "
        f"(batch {args.batch_size:,} rows) into an emptied local Neo4j 5.26",
        f"- Command: `.venv/bin/python bench/bench_crash.py --preset {args.preset}`",
        "- Each scenario kills the process once a third of the interactions are in Neo4j, restarts "
        "what was killed (Neo4j recovers its store from the transaction log), runs the same "
        "command again, and compares the graph with a clean load of the same tables: node and "
        "relationship counts per label and type, and a SHA-256 of every sorted "
        "`(user, order, product)`.",
        "",
        "| scenario | INTERACTED edges when killed | client exit | restart s | re-run s | counts equal | checksum equal |",
        "|---|---:|---:|---:|---:|:-:|:-:|",
    ]  # fmt: skip
    for o in outcomes:
        killed = "–" if o.killed_at < 0 else f"{o.killed_at:,} of {total:,}"
        status = "–" if o.first_status is None else str(o.first_status)
        restart = f"{o.restart_s:.1f}" if o.restart_s else "–"
        lines.append(
            f"| {o.scenario} | {killed} | {status} | {restart} | {o.rerun_s:.1f} | "
            f"{'yes' if o.counts_equal else '**no**'} | {'yes' if o.checksum_equal else '**no**'} |"
        )
    lines.append(
        "\nClient exit -9: killed by the signal. The two concurrent loads' row gives the wall "
        "time of both (they run one after the other: the graph's load lock)."
    )
    for o in outcomes:
        if o.first_stderr:
            lines.append(
                f"\nWhat the client said when {o.scenario[8:]} was killed: `{o.first_stderr}`"
            )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("crash", "Ingest crash test: kill -9 mid-load, restart, re-run", text)
    ok = all(o.counts_equal and o.checksum_equal for o in outcomes)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
