"""Scale figures at the xl preset (1M products with text, 1M users, 10M interactions).

Parts (all by default, or pick with --parts; each runs in a child process of its own, so its
peak RSS is its own, writes bench/results/PRESET/PART.json (--results: elsewhere; kept in the
repository, so the report covers every part when only some are re-run), and is skipped on a
later run while that file exists, unless --force):

  generate          stream the xl shop into WORK/xl-tables (write_shop): time, peak RSS
  generate-memory   the same sizes in memory (generate_shop, preset large) for comparison
  bulk              bulk load of WORK/xl-tables into a fresh local Neo4j (kgrec ingest --bulk's
                    bulk_load: CSV, stop, neo4j-admin import, start, constraints), counts checked
  bolt              load of the xl tables over Bolt into a fresh local Neo4j (write_graph,
                    --workers transactions at once), counts checked
  bolt-bench        the bench preset (100k products, 1M interactions) over Bolt with 1 and
                    --workers transactions, alternated on one server, --reps times each
  kge               PyKEEN TransE and RotatE epochs on the xl catalogue graph (IN_CATEGORY,
                    SUBCATEGORY_OF, MADE_BY): epoch time, peak RSS, and the cost of evaluating
  text              MiniLM encoding rate on a seeded sample of the xl product texts through the
                    resumable cache; the encoder is killed once part-way and re-run to finish
  fusion            one epoch of the fusion GNN on the xl shop (leave-one-out split) with
                    mini-batch neighbour sampling (kgrec train --fanout), ids only (the text
                    of 1M products takes the hours the part text measures): graph build, epoch,
                    full-graph inference of every vector, validation; saved to WORK/xl-model
  query             the query layer on that model at 1M products: Recommender.load, RSS,
                    related / recommend / cross_category / explain p50 and p99, exact and
                    approximate (ApproximateSearch) related / recommend / cross_category, each
                    with recall@10 of the exact top 10
  http              kgrec serve (2 workers) on the xl model: start-up to the first answer,
                    memory of each worker (PSS: pages shared after the fork are split), and
                    the three ranking endpoints under 32 concurrent clients

The report (BENCHMARKS.md section "scale") is written from every result present.

    .venv/bin/python bench/bench_scale.py --work /data/kgrec-scale
    .venv/bin/python bench/bench_scale.py --work /data/kgrec-scale --parts bulk,bolt --force
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import machine_line, write_section

PARTS = (
    "generate",
    "generate-memory",
    "bulk",
    "bolt",
    "bolt-bench",
    "kge",
    "text",
    "fusion",
    "query",
    "http",
)
REL_TABLES = ("interactions", "in_category", "subcategory_of", "made_by", "triples")
NODE_TABLES = ("users", "products", "categories", "brands", "entities")


def _peaks() -> dict[str, float]:
    """Peak RSS in MiB of this process and of its largest finished child (a JVM, if any)."""
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mib": round(me, 1), "largest_child_rss_mib": round(child, 1)}


def _server(home: Path, args: argparse.Namespace) -> Any:
    import secrets

    from kg.neo4j.server import LocalNeo4j, free_port

    shutil.rmtree(home, ignore_errors=True)
    return LocalNeo4j(
        home, port=free_port(), password=secrets.token_urlsafe(16), heap=args.heap,
        pagecache=args.pagecache,
    )  # fmt: skip


def _made_by(args: argparse.Namespace, name: str, marker: str, part: str) -> Path:
    """WORK/name, which the part ``part`` makes (``marker`` is in it once made)."""
    folder = args.work / name
    if not (folder / marker).exists():
        raise SystemExit(
            f"{folder} is missing: run the part {part!r} first (with --force when its result "
            "is already kept)"
        )
    return folder


def _tables_dir(args: argparse.Namespace) -> Path:
    return _made_by(args, "xl-tables", "manifest.json", "generate")


# ------------------------------------------------------------------------------ parts
def part_generate(args: argparse.Namespace) -> dict[str, Any]:
    from ingest.sources.synthetic import SyntheticConfig
    from ingest.sources.synthetic_stream import write_shop

    config = SyntheticConfig.preset(args.preset)
    shop = write_shop(config, args.work / "xl-tables", show_progress=False)
    size = sum(p.stat().st_size for p in shop.folder.iterdir())
    return {"seconds": shop.seconds, "counts": shop.counts, "folder_mib": size / 2**20}


def part_generate_memory(args: argparse.Namespace) -> dict[str, Any]:
    from ingest.sources.synthetic import SyntheticConfig, generate_shop

    t0 = time.perf_counter()
    preset = "large" if args.preset == "xl" else args.preset  # xl's sizes, made in memory
    shop = generate_shop(SyntheticConfig.preset(preset), show_progress=False)
    return {"seconds": time.perf_counter() - t0, "counts": shop.counts()}


def _check_counts(driver: Any, counts: dict[str, int]) -> dict[str, Any]:
    from ingest import schema
    from ingest.neo4j_writer import graph_counts

    in_db = graph_counts(driver)
    want_nodes = {n.label: counts[n.table] for n in schema.NODE_TYPES if counts[n.table]}
    want_rels = {e.rel_type: counts[e.table] for e in schema.EDGE_TYPES if counts[e.table]}
    assert in_db == {"nodes": want_nodes, "relationships": want_rels}, in_db
    return in_db


def part_bulk(args: argparse.Namespace) -> dict[str, Any]:
    from kg.neo4j.bulk import bulk_load
    from kg.neo4j.driver import open_driver

    folder = _tables_dir(args)
    counts = json.loads((folder / "manifest.json").read_text())["counts"]
    server = _server(args.work / "neo4j-bulk", args)
    server.start(timeout=600)
    try:
        # the streamed generator's folder is read batch by batch, never whole
        report = bulk_load(server, folder, show_progress=False)
        info = server.status()
        with open_driver(server.settings(info)) as driver:
            in_db = _check_counts(driver, counts)
        data = server.home / "data"
        store = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(server.home, ignore_errors=True)
    return {
        "seconds": report.seconds,
        "node_rows": report.node_rows,
        "relationship_rows": report.relationship_rows,
        "import_rels_per_s": report.rate("import"),
        "total_rels_per_s": report.rate("total"),
        "store_mib": store / 2**20,
        "in_db": in_db,
    }


def part_bolt(args: argparse.Namespace) -> dict[str, Any]:
    from ingest.neo4j_writer import write_graph
    from ingest.tables import GraphTables
    from kg.neo4j.driver import open_driver

    t0 = time.perf_counter()
    tables = GraphTables.load(_tables_dir(args))
    read_s = time.perf_counter() - t0
    server = _server(args.work / "neo4j-bolt", args)
    server.start(timeout=600)
    try:
        with open_driver(server.settings(server.status())) as driver:
            report = write_graph(
                driver, tables, workers=args.workers, batch_size=args.batch_size,
                show_progress=False,
            )  # fmt: skip
            in_db = _check_counts(driver, tables.counts())
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)
    return {
        "read_seconds": read_s,
        "rows": report.rows,
        "seconds": report.seconds,
        "total_seconds": report.total_seconds,
        "rels_per_s": report.rate(REL_TABLES),
        "nodes_per_s": report.rate(NODE_TABLES),
        "workers": args.workers,
        "in_db": in_db,
    }


def part_bolt_bench(args: argparse.Namespace) -> dict[str, Any]:
    import statistics

    from ingest.neo4j_writer import write_graph
    from ingest.sources.synthetic import SyntheticConfig, generate_shop
    from kg.neo4j.driver import open_driver

    shop = generate_shop(SyntheticConfig.preset("bench"), show_progress=False)
    server = _server(args.work / "neo4j-bolt-bench", args)
    server.start(timeout=600)
    runs: dict[str, list[dict[str, float]]] = {}
    try:
        with open_driver(server.settings(server.status())) as driver:
            for _ in range(args.reps):
                for workers in dict.fromkeys((1, args.workers)):
                    _empty(driver)
                    r = write_graph(driver, shop, workers=workers, show_progress=False)
                    runs.setdefault(str(workers), []).append(
                        {"rels_per_s": r.rate(REL_TABLES), "nodes_per_s": r.rate(NODE_TABLES),
                         "total_seconds": r.total_seconds}
                    )  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)
    medians = {w: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for w, rs in runs.items()}
    return {"runs": runs, "medians": medians, "reps": args.reps}


def _empty(driver: Any) -> None:
    """Delete the graph and every constraint, so the next load is a first load."""
    with driver.session() as session:
        session.run(
            "MATCH ()-[r]->() CALL { WITH r DELETE r } IN TRANSACTIONS OF 50000 ROWS"
        ).consume()
        session.run(
            "MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 50000 ROWS"
        ).consume()
    records, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD name")
    for record in records:
        driver.execute_query("DROP CONSTRAINT $name", name=record["name"])


def part_kge(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ingest.tables import GraphTables
    from kg.embeddings.train import EmbedConfig, evaluate_link_prediction, train_kge
    from kg.embeddings.triples import build_triples

    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    names = ("products", "categories", "brands", "in_category", "subcategory_of", "made_by")
    full = GraphTables.load(_tables_dir(args))
    tables = GraphTables(**{n: full.table(n) for n in names})
    del full
    triples = build_triples(tables)
    factory = triples.factory()
    prep_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "triples": factory.num_triples,
        "entities": factory.num_entities,
        "prepare_seconds": prep_s,
        "runs": [],
    }
    sample = factory.clone_and_exchange_triples(factory.mapped_triples[:: factory.num_triples // 8])
    load = os.getloadavg()[0]
    # fastest first; the result file is rewritten after each run, so a run cut short keeps them
    for model, batch in (("transe", 32768), ("rotate", 32768), ("transe", 4096)):
        config = EmbedConfig(
            model=model, dim=64, epochs=1000, batch_size=batch, eval_every=1000, device="cpu"
        )
        t0 = time.perf_counter()
        outcome = train_kge(
            factory, sample, config, show_progress=False, stop_after_epochs=args.kge_epochs
        )
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        probe = factory.clone_and_exchange_triples(
            factory.mapped_triples[:: factory.num_triples // 64]
        )
        # a batch scores every entity: keep it near 2^24 numbers (RotatE's 256 took 33 GB)
        width = 2 * config.dim if model == "rotate" else config.dim
        eval_batch = max(1, min(256, 2**24 // (factory.num_entities * width // 64)))
        evaluate_link_prediction(outcome.model, probe, [factory], batch_size=eval_batch)
        eval_s = time.perf_counter() - t1
        out["runs"].append(
            {
                "model": model,
                "batch_size": batch,
                "epochs": outcome.epochs_trained,
                "epoch_seconds": outcome.train_seconds / outcome.epochs_trained,
                "triples_per_s": outcome.triples_per_second,
                "wall_seconds": wall,
                "eval_triples": probe.num_triples,
                "eval_batch_size": eval_batch,
                "eval_seconds": eval_s,
                **_peaks(),
            }
        )
        del outcome
        partial = {**out, **_peaks(), "load_before": load, "load_after": os.getloadavg()[0]}
        (args.results / "kge.json").write_text(json.dumps(partial, indent=2))
    return out


def part_text(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from gnn.text import product_texts
    from ingest.tables import GraphTables

    names = ("products", "brands", "made_by", "in_category")
    full = GraphTables.load(_tables_dir(args))
    tables = GraphTables(**{n: full.table(n) for n in names})
    del full
    _, texts = product_texts(tables)
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), args.text_sample, replace=False)]
    lengths = [len(t) for t in sample]
    work = args.work / "text"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "texts.json").write_text(json.dumps(sample))
    cache = work / "cache"
    chunk = args.text_chunk
    # the first encoder is killed once two chunks are stored; the second finishes the job
    cmd = [sys.executable, __file__, "--work", str(args.work), "--encode", str(work)]
    cmd += ["--text-chunk", str(chunk)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    t0 = time.perf_counter()
    while _cached(cache) < 2 * chunk and first.poll() is None:
        time.sleep(0.5)  # poll interval: the cache's index says how far the encoder got
    first.kill()
    first.wait()
    killed_after = time.perf_counter() - t0
    stored = _cached(cache)
    second = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    result = json.loads(second.stdout.strip().splitlines()[-1])
    return {
        "sample": len(sample),
        "chars_median": float(np.median(lengths)),
        "killed_after_seconds": killed_after,
        "stored_before_kill": stored,
        "second_run": result,
        "rate_texts_per_s": result["encoded"] / result["encode_seconds"],
        "all_products": len(texts),
        **_peaks(),
    }


def _cached(cache: Path) -> int:
    for index in cache.glob("*/index.json"):
        try:
            return len(json.loads(index.read_text())["rows"])
        except (ValueError, KeyError):
            return 0  # being replaced this instant: read again at the next poll
    return 0


def encode_child(work: Path, chunk: int) -> None:
    """Encode WORK/texts.json through WORK/cache; print what this run encoded as JSON."""
    import torch

    from gnn.text import TextEncoder, encode_texts
    from gnn.text_cache import TextEmbeddingCache

    torch.set_num_threads(os.cpu_count() or 1)
    texts = json.loads((work / "texts.json").read_text())
    t0 = time.perf_counter()
    encoder = TextEncoder(device="cpu")
    encoder.load()
    load_s = time.perf_counter() - t0
    key = encoder.cache_key
    before = len(TextEmbeddingCache(work / "cache" / key, key=key, dim=encoder.dim))
    t0 = time.perf_counter()
    encode_texts(texts, work / "cache", encoder, show_progress=False, chunk_size=chunk)
    secs = time.perf_counter() - t0
    print(json.dumps({"cached_before": before, "encoded": len(set(texts)) - before,
                      "encode_seconds": secs, "model_load_seconds": load_s,
                      "batch_size": encoder.batch_size, "max_length": encoder.max_length}))  # fmt: skip


def _xl_model(args: argparse.Namespace) -> Path:
    return _made_by(args, "xl-model", "config.json", "fusion")


def part_fusion(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from gnn.fusion import FusionRecommender
    from gnn.model import FusionConfig
    from gnn.splits import leave_one_out
    from ingest.tables import GraphTables

    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    tables = GraphTables.load(_tables_dir(args))
    split = leave_one_out(tables)
    prep_s = time.perf_counter() - t0
    fanout = tuple(int(f) for f in args.fanout.split(","))
    config = FusionConfig(
        use_text=False, use_kge=False, dim=64, num_layers=len(fanout), fanout=fanout,
        negatives=args.negatives, batch_size=args.fusion_batch, max_epochs=1,
        valid_users=args.valid_users, blend_grid=(0.0, 0.5), similarity_grid=(0.0,),
    )  # fmt: skip
    per_user = args.examples_per_user or None
    model = FusionRecommender(tables, config, examples_per_user=per_user)
    t0 = time.perf_counter()
    model.fit(split, seed=0, show_progress=True)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.save(args.work / "xl-model")
    info = model.fit_info
    sizes = np.array([max(s.size - 1, 0) for s in split.train_sequences])
    examples = int(np.minimum(sizes, per_user).sum()) if per_user else int(sizes.sum())
    return {
        "examples_per_user": per_user,
        "all_examples": int(sizes.sum()),
        "split_seconds": prep_s,
        "fit_seconds": fit_s,
        "save_seconds": time.perf_counter() - t0,
        "graph_seconds": info["graph_seconds"],
        "epoch_seconds": info["epoch_seconds_mean"],
        "examples": examples,
        "steps": -(-examples // config.batch_size),
        "valid_users": info["valid_users"],
        "valid_ndcg@10": info["best_valid_ndcg@10"],
        "fanout": list(fanout),
        "negatives": config.negatives,
        "batch_size": config.batch_size,
        "users": split.n_users,
        "products": split.n_items,
    }


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def part_query(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from bench_query import approximate_on_off, python_api, recall_at_k
    from threadpoolctl import threadpool_limits

    from kg.query import ApproximateSearch, Recommender

    torch.set_num_threads(1)
    threadpool_limits(limits=1, user_api="blas")
    before = _rss_mib()
    t0 = time.perf_counter()
    rec = Recommender.load(_xl_model(args), _tables_dir(args))
    load_s = time.perf_counter() - t0
    loaded = _rss_mib()
    rng = np.random.default_rng(0)
    rows = python_api(rec, args.calls, rng)
    t0 = time.perf_counter()
    approx = Recommender(rec.model, rec.tables, approximate=ApproximateSearch(n_probe=args.n_probe))
    build_s = time.perf_counter() - t0
    assert approx.product_clusters is not None
    per_op = {}
    for op in ("related", "recommend", "cross_category"):
        _, on, off = approximate_on_off(rec, approx, args.calls, rng, op)
        recall, same = recall_at_k(rec, approx, args.recall_calls, rng, op=op)
        per_op[op] = {"p50_approximate": on, "p50_exact": off, "recall@10": recall,
                      "identical": same}  # fmt: skip
    return {
        "products": rec.n_products,
        "load_seconds": load_s,
        "rss_before_mib": before,
        "rss_loaded_mib": loaded,
        "rows": [list(r) for r in rows],
        "approximate": {
            "n_lists": approx.product_clusters.n_lists, "n_probe": args.n_probe,
            "user_n_lists": approx.user_clusters.n_lists if approx.user_clusters else None,
            "n_probe_user": approx.approximate.n_probe_user,
            "build_seconds": build_s, "calls": args.recall_calls, "operations": per_op,
            "blend": [rec.scorer.weights.mode, rec.scorer.weights.beta],
        },
        "calls": args.calls,
    }  # fmt: skip


def _worker_memory(pid: int) -> list[dict[str, float]]:
    """RSS and PSS (MiB) of ``pid`` (the master) and of each of its children (workers)."""
    import psutil

    master = psutil.Process(pid)
    out = []
    for who, proc in (("master", master), *(("worker", c) for c in master.children(True))):
        mem = proc.memory_full_info()
        out.append({"process": who, "rss_mib": mem.rss / 2**20, "pss_mib": mem.pss / 2**20})
    return out


def _paths(tables_dir: Path, routes: tuple[str, ...], n: int = 2000) -> list[str]:
    """``n`` random products and users with interactions (seeded), each route in turn."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    products = pq.read_table(tables_dir / "products.parquet", columns=["id"])[0]
    users = pc.unique(pq.read_table(tables_dir / "interactions.parquet", columns=["user_id"])[0])
    chosen_p = products.take(rng.integers(0, len(products), n)).to_pylist()
    chosen_u = users.take(rng.integers(0, len(users), n)).to_pylist()
    return [
        route.format(p=p, u=u) + "?k=10"
        for p, u in zip(chosen_p, chosen_u, strict=True)
        for route in routes
    ]


def part_http(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from bench_query import _free_port, _load, _pct, _route_names, _serve, _wait_http

    model_dir, tables_dir = _xl_model(args), _tables_dir(args)
    port = _free_port()
    launched = time.perf_counter()
    # no search index: the model has no text features, and encoding 1M texts takes hours
    extra = ("--no-precomputed", "--lazy-text-encoder")
    proc = _serve(model_dir, tables_dir, port, args.serve_workers, extra)
    try:
        _wait_http(port, proc)
        start_s = time.perf_counter() - launched
        memory = _worker_memory(proc.pid)

        paths = _paths(tables_dir, _route_names(port))
        _load(port, paths, args.clients, 5.0)  # warm-up
        t0 = time.perf_counter()
        latencies, errors = _load(port, paths, args.clients, args.http_seconds)
        wall = time.perf_counter() - t0
        p50, p99 = _pct(latencies)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {
        "start_seconds": start_s,
        "workers": args.serve_workers,
        "memory": memory,
        "clients": args.clients,
        "seconds": args.http_seconds,
        "p50_ms": p50,
        "p99_ms": p99,
        "requests_per_s": len(latencies) / wall,
        "errors": errors,
        "requests": len(latencies),
        "mean_ms": float(np.mean(latencies)) * 1000,
    }


RUNNERS = {
    "generate": part_generate,
    "generate-memory": part_generate_memory,
    "bulk": part_bulk,
    "bolt": part_bolt,
    "bolt-bench": part_bolt_bench,
    "kge": part_kge,
    "text": part_text,
    "fusion": part_fusion,
    "query": part_query,
    "http": part_http,
}


# ----------------------------------------------------------------------------- report
def _fmt_s(s: float) -> str:
    return f"{s:,.1f}"


def report(args: argparse.Namespace) -> str:
    res = {
        p: json.loads(f.read_text()) for p in PARTS if (f := args.results / f"{p}.json").exists()
    }
    loads = [r[k] for r in res.values() for k in ("load_before", "load_after") if k in r]
    shared = [
        f"- **Measured on a shared machine**: 1-minute load averages {min(loads):.0f} to "
        f"{max(loads):.0f} on 2 cores while these parts ran; every time below is an upper "
        "bound, to be measured again on a quiet machine."
    ] if loads and max(loads) > 2.5 else []  # fmt: skip
    counts = res.get("generate", {}).get("counts", {})
    sizes = ", ".join(f"{v:,} {k}" for k, v in counts.items() if v)
    lines = [
        f"- Machine: {machine_line()}",
        f"- Dataset: synthetic preset `{args.preset}` (seed 0), streamed: {sizes}; products "
        "have a title and a description",
        f"- Command: `.venv/bin/python bench/bench_scale.py --work WORK` (parts: "
        f"{', '.join(res)}); Neo4j heap {args.heap}, page cache {args.pagecache}",
        "- Load average (1 min) before and after each part is listed: above 2 on this 2-core "
        "machine means other work shared it and the times are upper bounds.",
        *shared,
        "",
        "| step | figure | peak RSS (MiB) | load avg |",
        "|---|---|---:|---|",
    ]

    def row(step: str, figure: str, r: dict[str, Any], rss: str | None = None) -> None:
        peak = rss or f"{r['peak_rss_mib']:,.0f}"
        lines.append(
            f"| {step} | {figure} | {peak} | {r['load_before']:.1f} / {r['load_after']:.1f} |"
        )

    if "generate" in res:
        r = res["generate"]
        row(f"generate {args.preset}, streamed (`write_shop`)",
            f"{_fmt_s(r['seconds'])} s; {r['folder_mib']:,.0f} MiB of Parquet", r)  # fmt: skip
    if "generate-memory" in res:
        r = res["generate-memory"]
        row("generate the same shop in memory (`generate_shop`)",
            f"{_fmt_s(r['seconds'])} s", r)  # fmt: skip
    if "bulk" in res:
        r = res["bulk"]
        s = r["seconds"]
        row("bulk load (`kgrec ingest ... --bulk`)",
            f"{r['relationship_rows']:,} relationships + {r['node_rows']:,} nodes: importer "
            f"{_fmt_s(s['import'])} s = **{r['import_rels_per_s']:,.0f} relationships/s**; whole "
            f"load {_fmt_s(s['total'])} s = {r['total_rels_per_s']:,.0f}/s (CSV {_fmt_s(s['csv'])}"
            f" s, stop {_fmt_s(s['stop'])} s, start {_fmt_s(s['start'])} s, constraints "
            f"{_fmt_s(s['schema'])} s); store {r.get('store_mib', 0) / 1024:,.1f} GiB on disk", r,
            f"{r['peak_rss_mib']:,.0f} (Python); {r['largest_child_rss_mib']:,.0f} (largest JVM)")  # fmt: skip
    if "bolt" in res:
        r = res["bolt"]
        row(f"load over Bolt (`write_graph`, {r['workers']} workers)",
            f"**{r['rels_per_s']:,.0f} relationships/s**, {r['nodes_per_s']:,.0f} nodes/s; "
            f"{_fmt_s(r['total_seconds'])} s in all (interactions "
            f"{_fmt_s(r['seconds']['interactions'])} s)", r,
            f"{r['peak_rss_mib']:,.0f} (Python); {r['largest_child_rss_mib']:,.0f} (Neo4j)")  # fmt: skip
    if "bolt-bench" in res:
        r = res["bolt-bench"]
        figs = "; ".join(
            f"{w} worker{'s' if w != '1' else ''}: **{m['rels_per_s']:,.0f}** relationships/s, "
            f"{m['nodes_per_s']:,.0f} nodes/s"
            for w, m in r["medians"].items()
        )
        row(f"load over Bolt, preset bench (1M interactions), medians of {r['reps']} alternated runs",
            figs, r)  # fmt: skip
    if "kge" in res:
        r = res["kge"]
        for run in r["runs"]:
            hours = run["eval_seconds"] / run["eval_triples"] * 0.1 * r["triples"] / 3600
            row(f"KGE {run['model']} dim 64, batch {run['batch_size']:,} ({r['triples']:,} "
                f"triples, {r['entities']:,} entities)",
                f"**{_fmt_s(run['epoch_seconds'])} s/epoch** ({run['triples_per_s']:,.0f} "
                f"triples/s, {run['epochs']} epochs); filtered evaluation "
                f"{run['eval_seconds'] / run['eval_triples'] * 1000:,.0f} ms/triple, so a 10% "
                f"test split takes about {hours:,.1f} h", run | {"load_before": r["load_before"],
                "load_after": r["load_after"]})  # fmt: skip
    if "text" in res:
        r = res["text"]
        hours = r["all_products"] / r["rate_texts_per_s"] / 3600
        sec = r["second_run"]
        row("text encoding (all-MiniLM-L6-v2, cache, CPU)",
            f"**{r['rate_texts_per_s']:,.1f} texts/s** on {r['sample']:,} sampled xl texts "
            f"(median {r['chars_median']:.0f} characters, batch {sec['batch_size']}, max_length "
            f"{sec['max_length']}): all {r['all_products']:,} would take about {hours:,.1f} h. "
            f"Killed after {_fmt_s(r['killed_after_seconds'])} s with {r['stored_before_kill']:,} "
            f"texts stored; the re-run found {sec['cached_before']:,} cached and encoded the other "
            f"{sec['encoded']:,}", r)  # fmt: skip
    if "fusion" in res:
        r = res["fusion"]
        row(f"fusion GNN, one epoch, ids only, dim 64, {len(r['fanout'])} layers, neighbour "
            f"sampling fanout {','.join(map(str, r['fanout']))}, {r['negatives']:,} sampled "
            f"negatives, batch {r['batch_size']:,} ({r['products']:,} products, {r['users']:,} "
            "users)",
            f"**{_fmt_s(r['epoch_seconds'])} s/epoch** of {r['examples']:,} examples ("
            + (f"{r['examples_per_user']} per user" if r.get("examples_per_user") else "all")
            + f"; {r['steps']:,} steps: {r['epoch_seconds'] / r['steps'] * 1000:,.0f} ms/step, "
            f"{r['epoch_seconds'] / r['examples'] * 1e6:,.0f} µs/example, so an epoch of all "
            f"{r.get('all_examples', r['examples']):,} examples takes about "
            f"{r['epoch_seconds'] / r['examples'] * r.get('all_examples', r['examples']) / 60:,.0f}"
            " min); "
            f"graph {_fmt_s(r['graph_seconds'])} s; the whole fit {_fmt_s(r['fit_seconds'])} s "
            f"(with full-graph inference of every vector, co-occurrence counts and validation on "
            f"{r['valid_users']:,} users: NDCG@10 {r['valid_ndcg@10']:.4f}); split "
            f"{_fmt_s(r['split_seconds'])} s", r)  # fmt: skip
    if "query" in res:
        r = res["query"]
        a = r["approximate"]
        figs = "; ".join(f"`{name}` p50 **{p50:.2f}** / p99 {p99:.2f} ms"
                         for name, p50, p99 in r["rows"])  # fmt: skip
        row(f"query layer at {r['products']:,} products (1 BLAS thread, {r['calls']:,} calls "
            "each, exact)",
            f"{figs}; `Recommender.load` {_fmt_s(r['load_seconds'])} s, RSS "
            f"{r['rss_loaded_mib']:,.0f} MiB after it", r)  # fmt: skip
        for op, o in a["operations"].items():
            if op == "related":
                lists, probe = a["n_lists"], f"n_probe {a['n_probe']}"
            else:
                lists, probe = a["user_n_lists"], f"n_probe_user {a['n_probe_user']}"
            row(f"approximate `{op}` (`ApproximateSearch`, {lists:,} lists, {probe})",
                f"p50 **{o['p50_approximate']:.2f} ms** against {o['p50_exact']:.2f} ms exact "
                f"(same {'products' if op == 'related' else 'users'}, alternated); "
                f"**recall@10 {o['recall@10']:.4f}** of the exact top 10 over {a['calls']:,} "
                f"{'products' if op == 'related' else 'users'} ({o['identical']:.1%} identical "
                f"lists)", r)  # fmt: skip
        lines.append(
            f"| cluster indexes of approximate search | built in {_fmt_s(a['build_seconds'])} s "
            f"(both: related and personalised) | | |"
        )
    if "http" in res:
        r = res["http"]
        pss = ", ".join(f"{m['process']} {m['pss_mib']:,.0f}" for m in r["memory"])
        rss = ", ".join(f"{m['rss_mib']:,.0f}" for m in r["memory"])
        row(f"`kgrec serve --workers {r['workers']} --no-precomputed --lazy-text-encoder`, "
            f"{r['clients']} clients, "
            f"the three ranking endpoints, {r['seconds']:.0f} s",
            f"**{r['requests_per_s']:,.0f} requests/s**, p50 {r['p50_ms']:.1f} ms, p99 "
            f"{r['p99_ms']:.1f} ms, {r['errors']} non-200; start-up to the first answer "
            f"{_fmt_s(r['start_seconds'])} s; PSS {pss} MiB (RSS {rss}: shared pages "
            "counted in each)", r,
            "see figure")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, required=True, help="folder for the data, Neo4j homes and models"
    )
    parser.add_argument("--preset", default="xl", help="synthetic preset (xl; smaller to try)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {PARTS}")
    parser.add_argument(
        "--results", type=Path, default=None,
        help="folder of each part's results (JSON), kept in the repository so that the report "
        "covers every part when only some are re-run (default bench/results/PRESET)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="re-run parts that have results")
    parser.add_argument("--heap", default="2g", help="Neo4j heap")
    parser.add_argument("--pagecache", default="3g", help="Neo4j page cache")
    parser.add_argument("--workers", type=int, default=4, help="write transactions at once")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=2, help="bolt-bench runs per setting")
    parser.add_argument("--kge-epochs", type=int, default=2)
    parser.add_argument("--text-sample", type=int, default=2048)
    parser.add_argument("--text-chunk", type=int, default=256)
    parser.add_argument("--fanout", default="5,2", help="fusion: neighbours per layer")
    parser.add_argument("--negatives", type=int, default=4096, help="fusion: sampled negatives")
    parser.add_argument("--fusion-batch", type=int, default=2048, help="fusion: batch size")
    parser.add_argument("--valid-users", type=int, default=2000, help="fusion: validated users")
    parser.add_argument(
        "--examples-per-user", type=int, default=1,
        help="fusion: training examples per user and epoch (0: all)",
    )  # fmt: skip
    parser.add_argument("--calls", type=int, default=1000, help="query: timed calls per row")
    parser.add_argument("--recall-calls", type=int, default=300, help="query: recall@10 calls")
    parser.add_argument("--n-probe", type=int, default=8, help="query: clusters probed")
    parser.add_argument("--serve-workers", type=int, default=2, help="http: kgrec serve workers")
    parser.add_argument("--clients", type=int, default=32, help="http: concurrent clients")
    parser.add_argument("--http-seconds", type=float, default=30.0, help="http: timed seconds")
    parser.add_argument("--keep", action="store_true", help="keep the bulk-loaded Neo4j home")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    parser.add_argument(
        "--section", default="scale",
        help="BENCHMARKS.md section written (another name keeps the section scale, e.g. when "
        "the results of some parts are missing)",
    )  # fmt: skip
    parser.add_argument("--child", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--encode", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work = args.work.resolve()
    if args.results is None:
        args.results = Path(__file__).resolve().parent / "results" / args.preset
    args.results = args.results.resolve()
    if args.encode is not None:
        encode_child(args.encode, args.text_chunk)
        return 0
    if args.child:
        load = os.getloadavg()[0]
        result = RUNNERS[args.child](args)
        result.update(_peaks(), load_before=load, load_after=os.getloadavg()[0])
        out = args.results / f"{args.child}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        return 0
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; parts are {PARTS}")
    args.work.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    for part in parts:
        if (args.results / f"{part}.json").exists() and not args.force:
            print(f"{part}: result present, skipped (--force re-runs it)", flush=True)
            continue
        print(f"{part}: running", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", part])
        if done.returncode:  # the next parts still run (each is a process of its own)
            failed.append(part)
            print(f"{part}: FAILED (exit status {done.returncode})", flush=True)
            continue
        print(f"{part}: done in {time.perf_counter() - t0:,.0f} s", flush=True)
    text = report(args)
    print(text)
    if not args.no_write:
        title = "Scale: the xl shop on one machine"
        if args.section != "scale":
            title += ": a later run of some parts"
        write_section(args.section, title, text)
    if failed:
        print(f"failed parts: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
