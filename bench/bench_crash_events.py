"""Crash test of live events: kill -9 ``kgrec serve --events``, and separately the Neo4j JVM, in
the middle of a stream of events; restart; re-send what was not acknowledged; compare Neo4j and
the live answers with a clean run (issue 21).

The synthetic ``tiny`` shop and a small fusion model on it (ids and text, a few epochs: the
answers must be reproducible, not good). The stream: ``--events`` seeded view events of
random users and products, with a few new products and one retirement among them, POSTed in
batches of ``--batch``. Scenarios, each on an emptied Neo4j loaded with the shop and a fresh
server:

* clean: every batch sent once;
* kill -9 the server (gunicorn's master and its workers) once a third of the batches were
  acknowledged, restart it (it replays Neo4j's event log over the snapshot), and re-send every
  batch from the first unacknowledged one on (a batch that was committed but not acknowledged
  comes back as duplicates);
* kill -9 the Neo4j JVM at the same point, restart it (the server keeps running: its POSTs
  fail while Neo4j is down and its feed retries), and re-send likewise.

Compared with the clean run: node and relationship counts, a SHA-256 of every sorted
``(user, order, product, event id)`` of ``INTERACTED``, and the answers of
``/users/U/recommendations`` and ``/products/P/related-products`` for a seeded sample (ids
and scores within 1e-6). Writes BENCHMARKS.md section "crash-events".

    .venv/bin/python bench/bench_crash_events.py [--events 2000] [--batch 40]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _report import machine_line, write_section
from bench_crash import _checksum, empty
from bench_query import _free_port, _wait_http

from ingest.neo4j_writer import graph_counts, write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from kg.neo4j.driver import open_driver
from kg.neo4j.server import LocalNeo4j, free_port

ROOT = Path(__file__).resolve().parents[1]


def _train(tables: Any, folder: Path) -> None:
    from gnn.fusion import FusionRecommender
    from gnn.model import FusionConfig
    from gnn.splits import leave_one_out

    cfg = FusionConfig(use_text=False, use_kge=False, max_epochs=3, dim=32, batch_size=256,
                       blend_grid=(0.0, 0.5), similarity_grid=(0.0,))  # fmt: skip
    FusionRecommender(tables, cfg).fit(leave_one_out(tables), show_progress=False).save(folder)


def _stream(tables: Any, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    products = tables.products.column("id").to_pylist()
    users = tables.users.column("id").to_pylist()
    titles = tables.products.column("title").to_pylist()
    leaf = dict(zip(tables.in_category.column("product_id").to_pylist(),
                    tables.in_category.column("category_id").to_pylist(), strict=True))  # fmt: skip
    events: list[dict[str, Any]] = []
    for i in range(n):
        if i and i % (n // 4) == 0:  # a new product, then views of it
            k = int(rng.integers(len(products)))
            pid = f"live-{i}"
            events.append({"type": "product", "event_id": f"cp-{i}", "product_id": pid,
                           "title": f"{titles[k]} (new)", "category": leaf[products[k]]})  # fmt: skip
            products = [*products, pid]
        events.append({"type": "interaction", "event_id": f"ci-{i}",
                       "user_id": users[int(rng.integers(len(users)))],
                       "product_id": products[int(rng.integers(len(products)))],
                       "kind": "view", "ts": 1_733_500_000 + i})  # fmt: skip
    retired = products[int(rng.integers(len(products) - 10))]
    events.insert(n // 2, {"type": "retire", "event_id": "cr-1", "product_id": retired})
    return events


def _post(port: int, token: str, batch: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The receipt, or ``None`` when the batch was not acknowledged."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/events", data=json.dumps(batch).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError):
        return None


def _get(port: int, path: str) -> list[tuple[str, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as resp:
        return [(r["product_id"], r["score"]) for r in json.loads(resp.read())["items"]]


def _answers(
    port: int, users: list[str], products: list[str], seq: int
) -> tuple[dict[str, Any], bool]:
    """The sampled answers, once every worker has applied the log up to ``seq``; and whether
    both workers caught up and gave the same answers."""
    deadline = time.perf_counter() + 120
    seen: set[int] = set()
    while len(seen) < 2 and time.perf_counter() < deadline:  # both workers caught up
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=60) as resp:
            health = json.loads(resp.read())
        if health["events_seq"] >= seq:
            seen.add(health["worker"])
        time.sleep(0.05)  # polling the workers' progress
    paths = {f"u:{u}": f"/users/{u}/recommendations" for u in users}
    paths |= {f"p:{p}": f"/products/{p}/related-products" for p in products}
    agree = len(seen) == 2
    if not agree:
        print(f"a worker did not reach event {seq} in 120 s", flush=True)
    out = {}
    for key, path in paths.items():
        answers = [_get(port, path) for _ in range(4)]  # new connections: either worker
        if any(not _same({key: a}, {key: answers[0]}) for a in answers[1:]):
            print(f"the workers disagree on {key}: {answers}", flush=True)
            agree = False
        out[key] = answers[0]
    return out, agree


def _same(a: dict[str, Any], b: dict[str, Any], *, say: bool = False) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        same_ids = [p for p, _ in a[key]] == [p for p, _ in b[key]]
        if not same_ids or not np.allclose(
            [s for _, s in a[key]], [s for _, s in b[key]], atol=1e-6, rtol=0
        ):
            if say:
                print(f"answers differ on {key}:\n  {a[key]}\n  {b[key]}", flush=True)
            return False
    return True


def _graph(driver: Any) -> tuple[dict[str, Any], str]:
    records, _, _ = driver.execute_query(
        "MATCH (u:User)-[r:INTERACTED]->(p:Product) "
        "RETURN u.id AS u, r.order AS o, p.id AS p, r.event_id AS e"
    )
    lines = (f"{r['u']}\t{r['o']}\t{r['p']}\t{r['e']}" for r in records)
    return graph_counts(driver), _checksum(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--sample", type=int, default=40, help="users and products compared")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    shop = generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)
    events = _stream(shop, args.events, rng)
    batches = [events[i : i + args.batch] for i in range(0, len(events), args.batch)]
    users = [str(u) for u in rng.choice(shop.users.column("id").to_pylist(), args.sample)]
    products = [str(p) for p in rng.choice(shop.products.column("id").to_pylist(), args.sample)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="kgrec-crash-events-") as tmp:
        work = Path(tmp)
        _train(shop, work / "model")
        shop.save(work / "tables")
        server = LocalNeo4j(work / "neo4j", port=free_port(), password=secrets.token_urlsafe(12))
        info = server.start(timeout=300)
        settings = server.settings(info)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
        env |= {"NEO4J_URI": settings.uri, "NEO4J_USERNAME": "neo4j",
                "NEO4J_PASSWORD": settings.password or ""}  # fmt: skip
        token_file = work / "token"

        def serve(port: int) -> subprocess.Popen[str]:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kg", "serve", "--model", str(work / "model"),
                 "--tables", str(work / "tables"), "--port", str(port), "--workers", "2",
                 "--log-level", "critical", "--events", "--events-token-file", str(token_file)],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                text=True, start_new_session=True,
            )  # fmt: skip
            _wait_http(port, proc)
            return proc

        def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=120)

        reference: tuple[Any, ...] | None = None
        for scenario in ("clean", "server", "neo4j"):
            with open_driver(settings) as driver:
                empty(driver)
                write_graph(driver, shop, show_progress=False)
            port = _free_port()
            proc = serve(port)
            token = token_file.read_text().strip()
            cut = len(batches) // 3 if scenario != "clean" else len(batches)
            acked = 0
            for batch in batches[:cut]:
                if _post(port, token, batch) is None:
                    break
                acked += 1
            restart_s = 0.0
            failed = 0
            if scenario == "server":
                stop(proc, signal.SIGKILL)
                t0 = time.perf_counter()
                proc = serve(port)
                restart_s = time.perf_counter() - t0
            elif scenario == "neo4j":
                os.kill(info.pid, signal.SIGKILL)
                failed = int(_post(port, token, batches[acked]) is None)  # Neo4j is down
                t0 = time.perf_counter()
                info = server.start(timeout=300)
                restart_s = time.perf_counter() - t0
            duplicates = 0
            for batch in batches[acked:]:
                receipt = None
                for _ in range(100):  # the server may still be reconnecting to Neo4j
                    receipt = _post(port, token, batch)
                    if receipt is not None:
                        break
                    time.sleep(0.2)  # retry interval of an unacknowledged batch
                if receipt is None:
                    raise SystemExit(f"{scenario}: a batch was never acknowledged")
                duplicates += receipt["duplicates"]
            with open_driver(server.settings(info)) as driver:
                graph = _graph(driver)
                from ingest.events import last_seq

                seq = last_seq(driver)
            answers, agree = _answers(port, users, products, seq)
            stop(proc)
            if reference is None:
                reference = (graph, answers)
            rows.append({
                "scenario": scenario, "acked_before": acked, "batches": len(batches),
                "failed_while_down": failed, "restart_s": restart_s, "duplicates": duplicates,
                "counts": graph[0] == reference[0][0], "checksum": graph[1] == reference[0][1],
                "answers": agree and _same(answers, reference[1], say=True),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        server.stop()

    names = {"clean": "clean run", "server": "kill -9 `kgrec serve` (master and workers)",
             "neo4j": "kill -9 the Neo4j JVM"}  # fmt: skip
    lines = [
        f"- Machine: {machine_line()}",
        f"- Data: synthetic `tiny` shop; {len(events):,} events ({args.events:,} views, "
        f"{sum(e['type'] == 'product' for e in events)} new products, 1 retirement) in "
        f"{len(batches)} batches of {args.batch}, POSTed to `kgrec serve --events --workers 2`.",
        f"- Compared with the clean run: counts per label and type, a SHA-256 of every sorted "
        f"`(user, order, product, event id)`, and the answers (ids, scores within 1e-6) of "
        f"recommendations for {args.sample} users and related products for {args.sample} "
        "products, read once both workers applied the whole log (each read four times over "
        "new connections: equal only when both workers give the same answers).",
        "- Command: `.venv/bin/python bench/bench_crash_events.py`",
        "",
        "| scenario | batches acknowledged before the kill | POSTs refused while down | "
        "restart s | duplicates on re-send | counts equal | checksum equal | answers equal |",
        "|---|---:|---:|---:|---:|:-:|:-:|:-:|",
    ]
    for r in rows:
        yes = {True: "yes", False: "**no**"}
        lines.append(
            f"| {names[r['scenario']]} | {r['acked_before']} of {r['batches']} | "
            f"{r['failed_while_down']} | {r['restart_s']:.1f} | {r['duplicates']} | "
            f"{yes[r['counts']]} | {yes[r['checksum']]} | {yes[r['answers']]} |"
        )
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("crash-events", "Live events crash test: kill -9 mid-stream", body)
    return 0 if all(r["counts"] and r["checksum"] and r["answers"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
