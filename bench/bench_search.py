"""Personalised product search (``Recommender.search``, :mod:`kg.query.search`).

**Part ``amazon``** (Amazon 2018 Industrial & Scientific in ``../shared/data``):

1. *Personalised product search*, the protocol of Ai et al. (SIGIR 2017) and its successors:
   leave-one-out as in the harness (:func:`gnn.splits.leave_one_out`); the query of a
   purchase is made from its product's category path (the words of its category names,
   analysed as the index analyses text, lower-cased, Lucene's English stop words and repeats
   removed); the test query is the test item's, with the history = train prefix + validation
   item; full ranking over all products with the user's history items left out (as the
   harness does); NDCG@10, Recall@10 and MRR, with ties ranked at their expected position
   (random tie-breaking, computed exactly). Users whose test item has no category get no
   query and are not counted. Rows: BM25 alone (the in-process index, whose scores equal
   Neo4j's ``db.index.fulltext.queryNodes``; see 3.), dense text alone, hybrid without the
   user, hybrid with graph links, the full search with the user. The fusion model behind the
   personal term is trained on the train split (early stopping on validation), and the query
   layer's graph (co-occurrence index, histories) holds train + validation interactions only.
   The weights are chosen on the validation queries (the validation item's query, history =
   train prefix, graph = train interactions), one term at a time, never on test.
2. *Known-item search*: ``--known-items`` products drawn with a seed among those whose title
   has 3 distinct words (no stop words); a query of 3 of them in a seeded order, and a copy
   with one seeded typo (a letter deleted, inserted, replaced, or two swapped) in a word of 4
   letters or more. MRR of the product over all products for BM25 alone (the words as
   typed, as Neo4j's full-text index scores them), BM25 with the search's typo variants, and
   the full search (no user).
3. *Lexical backend*: the same queries through a fresh local Neo4j (the graph written by
   ``write_graph``, which creates the ``product_text`` index): p50/p99 of
   ``db.index.fulltext.queryNodes`` (all hits) against the in-process BM25 of all products,
   and whether the two give the same top 10. (``--no-neo4j`` skips it.)

**Part ``latency``** (the synthetic ``bench`` shop of ``bench/bench_query.py``, 100k products;
its model and tables are reused from ``--work-dir``): product text vectors are random unit
vectors (encoding 100k texts takes hours on 2 cores, and the latency does not depend on their
values); queries are 3 title words of random products. Python API p50/p99 of ``search`` with
every query new (its MiniLM encoding included), with repeated queries (cached vectors), with a
user; the query encoding alone; and ``GET /search`` under ``--clients`` concurrent clients
(the app with that search index, served by ``kgrec serve``'s gunicorn runner in a child
process).

Writes BENCHMARKS.md section ``search`` (``--no-write``: print only).

    .venv/bin/python bench/bench_search.py --part amazon --work-dir runs/bench-search
    .venv/bin/python bench/bench_search.py --part latency --work-dir /root/scratch/q
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pyarrow as pa
from _report import machine_line, write_section

ROOT = Path(__file__).resolve().parents[1]
AMAZON = ROOT.parent / "shared" / "data" / "amazon2018-industrial-scientific"
K = 10


# ------------------------------------------------------------------------------ metrics
def expected_metrics(scores: np.ndarray, target: int) -> tuple[float, float, float]:
    """``(NDCG@10, Recall@10, reciprocal rank)`` of one target under random tie-breaking:
    the target is equally likely at each position of its tie group (``-inf``: left out)."""
    s = scores[target]
    higher = int(np.count_nonzero(scores > s))
    ties = int(np.count_nonzero(scores == s))
    ranks = np.arange(higher + 1, higher + ties + 1, dtype=np.float64)
    top = ranks <= K
    ndcg = float(np.where(top, 1.0 / np.log2(ranks + 1.0), 0.0).mean())
    return ndcg, float(top.mean()), float((1.0 / ranks).mean())


def _mean(rows: list[tuple[float, float, float]]) -> dict[str, float]:
    a = np.asarray(rows, np.float64)
    return {"ndcg@10": float(a[:, 0].mean()), "recall@10": float(a[:, 1].mean()),
            "mrr": float(a[:, 2].mean())}  # fmt: skip


# ------------------------------------------------------------------------ amazon: setup
def category_queries(tables: Any) -> dict[str, str]:
    """The protocol's query of every product with a category: the words of the names on its
    category path, root first, analysed, stop words and repeats removed (the first words
    within the API's 512 characters: a few Amazon paths are longer)."""
    from kg.query.analyzer import ENGLISH_STOP_WORDS, analyze
    from kg.query.search import MAX_QUERY_LENGTH

    cats = tables.categories.to_pydict()
    name = {c: (n or c) for c, n in zip(cats["id"], cats["name"], strict=True)}
    level = dict(zip(cats["id"], cats["level"], strict=True))
    sub = tables.subcategory_of.to_pydict()
    parent = dict(zip(sub["child_id"], sub["parent_id"], strict=True))
    out = {}
    for pid, cid in zip(*(tables.in_category.column(c).to_pylist() for c in ("product_id", "category_id")), strict=True):  # fmt: skip
        path: list[str] = []
        while cid is not None and cid not in path:
            path.append(cid)
            cid = parent.get(cid)
        path.sort(key=lambda c: level.get(c) or 0)
        words = [w for c in path for w in analyze(name[c]) if w not in ENGLISH_STOP_WORDS]
        query = ""
        for w in dict.fromkeys(words):  # at most MAX_QUERY_LENGTH characters, whole words
            if len(query) + len(w) + 1 > MAX_QUERY_LENGTH:
                break
            query = f"{query} {w}" if query else w
        if query:
            out[pid] = query
    return out


def without_rows(tables: Any, split: Any, keep_valid: bool) -> Any:
    """``tables`` with the test interactions (and the validation ones unless ``keep_valid``)
    removed: the graph the query layer may see when evaluating on valid / test."""
    inter = tables.interactions
    users = inter.column("user_id").to_numpy(zero_copy_only=False)
    order = inter.column("order").to_numpy()
    rows = np.lexsort((order, users))
    sorted_users = users[rows]
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    counts = np.diff(np.r_[starts, len(rows)])
    from_end = np.repeat(counts, counts) - 1 - (np.arange(len(rows)) - np.repeat(starts, counts))
    long_enough = np.repeat(counts, counts) >= 3
    drop = long_enough & ((from_end == 0) | ((from_end == 1) & (not keep_valid)))
    keep = np.ones(len(rows), bool)
    keep[rows[drop]] = False
    return replace(tables, interactions=inter.filter(pa.array(keep)))


def fusion_model(tables: Any, split: Any, folder: Path, max_epochs: int) -> tuple[Any, str]:
    """The fusion model (text, no KGE) trained on the split's train part, cached in ``folder``."""
    from gnn.features import text_features
    from gnn.fusion import FusionRecommender
    from gnn.fusion_io import FusionArrays
    from gnn.model import FusionConfig
    from gnn.pipeline import default_text_cache

    if (folder / "config.json").exists():
        return FusionArrays.load(folder), f"reused from `{folder}`"
    t0 = time.perf_counter()
    text, info = text_features(tables, split.item_ids, default_text_cache())
    config = FusionConfig(max_epochs=max_epochs, use_kge=False)
    model = FusionRecommender(tables, config, text=text, feature_info={"text": info})
    model.fit(split, seed=0, show_progress=True)
    model.save(folder)
    fit = model.fit_info if hasattr(model, "fit_info") else {}
    note = (f"trained here in {time.perf_counter() - t0:.0f} s (seed 0, text features, no KGE, "
            f"best epoch {fit.get('best_epoch')}/{fit.get('epochs_run')})")  # fmt: skip
    return FusionArrays.load(folder), note


# ------------------------------------------------------------------ amazon: evaluation
class Evaluation:
    """Search queries of one split side (``valid`` or ``test``) over one recommender."""

    def __init__(
        self, rec: Any, split: Any, on: str, queries: dict[str, str], users: int | None = None
    ) -> None:
        self.rec, self.search = rec, rec.product_search
        self.cases: list[tuple[str, np.ndarray, int, str]] = []
        ids = split.item_ids
        skipped = 0
        todo = split.eval_users(on)
        if users is not None and users < todo.size:  # a seeded sample (shorter runs)
            todo = np.sort(np.random.default_rng(0).choice(todo, users, replace=False))
        for u in todo.tolist():
            target = int(split.targets(on)[u][0])
            query = queries.get(ids[target])
            if query is None:
                skipped += 1
                continue
            history = np.asarray(split.history(on)[u], np.int64)
            self.cases.append((split.user_ids[u], history, target, query))
        self.skipped = skipped
        self.parts = {q: self.search.parts(q) for q in {c[3] for c in self.cases}}
        self._personal: dict[tuple[str, int], np.ndarray] = {}

    def run(self, weights: Any, user: bool, show_progress: bool = True) -> dict[str, float]:
        from tqdm import tqdm

        rows = []
        for user_id, history, target, query in tqdm(
            self.cases, disable=not show_progress, leave=False, mininterval=5
        ):
            personal = None
            if user:
                personal = self._personal_of(user_id, history)
            blocked = np.unique(history)
            _, scores, _ = self.search.rank(
                self.parts[query], K, personal=personal, blocked=blocked, weights=weights,
                full=True,
            )  # fmt: skip
            rows.append(expected_metrics(scores, target))
        return _mean(rows)

    def timed(self, weights: Any, user: bool) -> tuple[dict[str, float], float]:
        """:meth:`run`'s metrics and its milliseconds per query."""
        t0 = time.perf_counter()
        m = self.run(weights, user)
        return m, (time.perf_counter() - t0) / max(1, len(self.cases)) * 1e3

    def _personal_of(self, user_id: str, history: np.ndarray) -> Callable[[np.ndarray], Any]:
        rec = self.rec

        def personal(products: np.ndarray) -> np.ndarray:
            return rec._personal(history, user_id, products)

        return personal


def reduced_dense(test: Evaluation, weights: Any) -> tuple[str, dict[str, float], float]:
    """Row 5 again with the dense scan that catalogues above ``EXACT_UP_TO`` products get
    (``DenseIndex``: PCA-reduced, the pool's cosines exact): what the reduction costs, on
    real text vectors."""
    from kg.query.dense import EXACT_UP_TO, REDUCED_DIMS, DenseIndex

    search = test.search
    exact, parts = search.dense, test.parts
    search.dense = DenseIndex(exact.vectors, exact_up_to=0)
    try:
        test.parts = {q: search.parts(q) for q in parts}
        m, ms = test.timed(weights, True)
    finally:
        search.dense, test.parts = exact, parts
    name = (
        f"5 with the dense scan of catalogues over {EXACT_UP_TO:,} products "
        f"({REDUCED_DIMS}-dim PCA scan, exact cosines for the reranked pool)"
    )
    return name, m, ms


def choose_weights(valid: Evaluation, base: Any) -> tuple[Any, list[str]]:
    """The weights, one term at a time on the validation queries (NDCG@10): dense with
    lexical, then word coverage, then the category and brand links, then the user term."""
    from kg.query.query_links import LinkSettings

    log: list[str] = []
    off = replace(base, coverage=0.0, dense=0.0, category=0.0, brand=0.0, user=0.0,
                  links=replace(base.links, filters=False))  # fmt: skip

    def best(name: str, grid: Sequence[Any], make: Callable[[Any], Any], user: bool) -> Any:
        found = []
        for value in grid:
            w = make(value)
            m = valid.run(w, user, show_progress=False)
            found.append((m["ndcg@10"], value, w))
            log.append(f"{name}={value}: valid NDCG@10 {m['ndcg@10']:.4f}")
            print(f"  valid {name}={value}: {json.dumps(m)}", flush=True)
        return max(found, key=lambda x: x[0])

    _, dense, _ = best("dense", (0.5, 1.0, 2.0, 4.0), lambda v: replace(off, dense=v), False)
    _, coverage, _ = best("coverage", (0.0, 1.0, 2.0, 4.0, 8.0, 16.0),
                          lambda v: replace(off, dense=dense, coverage=v), False)  # fmt: skip
    hybrid = replace(off, dense=dense, coverage=coverage)
    _, cat, _ = best(
        "category (brand = category / 2)",
        (0.5, 1.0, 2.0),
        lambda v: replace(hybrid, category=v, brand=v / 2),
        False,
    )
    linked = replace(hybrid, category=cat, brand=cat / 2)
    _, filters, _ = best(
        "filters", (False, True), lambda v: replace(linked, links=LinkSettings(filters=v)), False
    )
    linked = replace(linked, links=LinkSettings(filters=filters))
    _, user, _ = best("user", (1.0, 2.0, 4.0, 8.0), lambda v: replace(linked, user=v), True)
    return replace(linked, user=user), log


def known_items(search: Any, tables: Any, n: int, seed: int) -> dict[str, Any]:
    """Known-item search: MRR of BM25 alone and of the full search, clean and with a typo."""
    from kg.query.analyzer import ENGLISH_STOP_WORDS, analyze

    rng = np.random.default_rng(seed)
    titles = tables.products.column("title").to_pylist()
    ids = tables.products.column("id").to_pylist()
    index = search.rec.index.product_index
    usable = []
    for pid, title in zip(ids, titles, strict=True):
        words = [w for w in dict.fromkeys(analyze(title)) if w not in ENGLISH_STOP_WORDS]
        if len(words) >= 3 and any(len(w) >= 4 and w.isalpha() for w in words):
            usable.append((pid, words))
    chosen = rng.choice(len(usable), min(n, len(usable)), replace=False)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    bm25_only = replace(search.weights, coverage=0.0, dense=0.0, category=0.0, brand=0.0, typo=0.0,
                        links=replace(search.weights.links, filters=False))  # fmt: skip
    out: dict[str, list[tuple[float, float, float]]] = {}
    examples = []
    for i in chosen.tolist():
        pid, words = usable[i]
        picked = [words[j] for j in rng.choice(len(words), 3, replace=False)]
        long = [j for j, w in enumerate(picked) if len(w) >= 4 and w.isalpha()]
        if not long:
            picked[0] = next(w for w in words if len(w) >= 4 and w.isalpha())
            long = [0]
        j = long[int(rng.integers(len(long)))]
        word = picked[j]
        while True:
            at = int(rng.integers(len(word)))
            kind = int(rng.integers(4))
            letter = alphabet[int(rng.integers(26))]
            if kind == 0:
                typo = word[:at] + word[at + 1 :]
            elif kind == 1:
                typo = word[:at] + letter + word[at:]
            elif kind == 2:
                typo = word[:at] + letter + word[at + 1 :]
            else:
                at = min(at, len(word) - 2)
                typo = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
            if typo != word:
                break
        clean = " ".join(picked)
        typoed = " ".join([*picked[:j], typo, *picked[j + 1 :]])
        if len(examples) < 3:
            examples.append(f"`{clean}` / `{typoed}`")
        target = index[pid]
        for name, query in (("clean", clean), ("typo", typoed)):
            parts = search.parts(query)
            as_typed = search.parts(query, bm25_only)  # Neo4j's BM25: no typo variants
            for row, w, p in (("bm25", bm25_only, as_typed), ("bm25+variants", bm25_only, parts),
                              ("full", search.weights, parts)):  # fmt: skip
                _, scores, _ = search.rank(p, K, weights=w, full=True)
                out.setdefault(f"{row} {name}", []).append(expected_metrics(scores, target))
    return {"n": len(chosen), "examples": examples, **{k: _mean(v) for k, v in out.items()}}


def lexical_backends(tables: Any, rec: Any, queries: list[str], calls: int) -> dict[str, Any]:
    """Neo4j's full-text index against the in-process BM25 on the same queries."""
    from ingest.neo4j_writer import write_graph
    from ingest.search_index import PRODUCT_TEXT_INDEX
    from kg.neo4j.driver import open_driver
    from kg.neo4j.server import LocalNeo4j, free_port
    from kg.query.analyzer import analyze, escape_query

    lexical = rec.product_search.lexical
    ids = rec.index.product_ids
    cypher = ("CALL db.index.fulltext.queryNodes($index, $query, {limit: $limit}) "
              "YIELD node, score RETURN node.id AS id, score")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="kgrec-bench-search-") as home:
        server = LocalNeo4j(Path(home), port=free_port(), password=secrets.token_urlsafe(16))
        info = server.start(timeout=600)
        try:
            with open_driver(server.settings(info)) as driver:
                t0 = time.perf_counter()
                write_graph(driver, tables, show_progress=False)
                load_s = time.perf_counter() - t0
                neo, mine, same = [], [], 0
                for i in range(calls):
                    q = queries[i % len(queries)]
                    t0 = time.perf_counter()
                    records, _, _ = driver.execute_query(
                        cypher, index=PRODUCT_TEXT_INDEX, query=escape_query(q),
                        limit=len(ids),
                    )  # fmt: skip
                    neo.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    scores = lexical.scores(analyze(q))
                    top = np.argsort(-scores, kind="stable")[:K]
                    mine.append(time.perf_counter() - t0)
                    if i < len(queries):
                        theirs = sorted((-r["score"], r["id"]) for r in records)[:K]
                        ours = sorted((-float(scores[j]), ids[j]) for j in top if scores[j] > 0)
                        same += all(
                            a[1] == b[1] or math.isclose(a[0], b[0], rel_tol=1e-4)
                            for a, b in zip(theirs, ours, strict=False)
                        ) and len(theirs) == len(ours)
        finally:
            server.stop()
    pct = lambda a: (float(np.percentile(a, 50)) * 1e3, float(np.percentile(a, 99)) * 1e3)  # noqa: E731
    return {"neo4j": pct(neo), "in_process": pct(mine), "same_top10": same,
            "compared": min(calls, len(queries)), "load_s": load_s, "calls": calls}  # fmt: skip


def run_amazon(args: argparse.Namespace) -> str:
    from threadpoolctl import threadpool_limits

    from gnn.splits import leave_one_out
    from ingest.sources.amazon import read_amazon
    from kg.query import Recommender
    from kg.query.search import SearchWeights

    threadpool_limits(limits=1, user_api="blas")
    tables = read_amazon(AMAZON, show_progress=False)
    split = leave_one_out(tables)
    model, model_note = fusion_model(tables, split, args.work_dir / "fusion", args.max_epochs)
    print(f"model: {model_note}", flush=True)
    queries = category_queries(tables)
    t0 = time.perf_counter()
    rec_valid = Recommender(model, without_rows(tables, split, keep_valid=False))
    rec_test = Recommender(model, without_rows(tables, split, keep_valid=True))
    t_build = time.perf_counter()
    valid = Evaluation(rec_valid, split, "valid", queries, args.valid_users)
    build_s = time.perf_counter() - t_build
    print(f"recommenders {t_build - t0:.1f} s, valid search index + queries {build_s:.1f} s; "
          f"{len(valid.cases):,} valid queries ({len(valid.parts):,} distinct)", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    weights, log = choose_weights(valid, SearchWeights())
    tune_s = time.perf_counter() - t0
    print(f"chosen on valid ({tune_s:.0f} s): {weights}", flush=True)
    rec_test.product_search.weights = weights
    test = Evaluation(rec_test, split, "test", queries, args.test_users)
    off = replace(weights, coverage=0.0, dense=0.0, category=0.0, brand=0.0, user=0.0,
                  links=replace(weights.links, filters=False))  # fmt: skip
    rows_spec = [
        ("1. BM25 alone (Neo4j full-text scores, in process)", off, False),
        ("2. dense text alone (MiniLM query vs product text vectors)",
         replace(off, lexical=0.0, dense=1.0), False),
        ("3. hybrid without the user (BM25 + word coverage + dense)",
         replace(off, dense=weights.dense, coverage=weights.coverage), False),
        ("4. hybrid with graph links (+ category and brand links)", replace(weights, user=0.0),
         False),
        ("5. full search with the user (+ personalised graph-aware score)", weights, True),
    ]  # fmt: skip
    rows = []
    for name, w, user in rows_spec:
        m, ms = test.timed(w, user)
        rows.append((name, m, ms))
        print(f"test {name}: {json.dumps(m)}", flush=True)
    reduced = reduced_dense(test, weights)
    print(f"test 5 with the reduced dense scan: {json.dumps(reduced[1])}", flush=True)
    known = known_items(rec_test.product_search, tables, args.known_items, args.seed)
    print(f"known items: {json.dumps(known)}", flush=True)
    backends = None
    if not args.no_neo4j:
        distinct = sorted(test.parts)
        backends = lexical_backends(tables, rec_test, distinct, args.neo4j_calls)
        print(f"lexical backends: {json.dumps(backends)}", flush=True)

    bm25, full = rows[0][1]["ndcg@10"], rows[-1][1]["ndcg@10"]
    partial = max(r[1]["ndcg@10"] for r in rows[:-1])
    lines = [
        "### Amazon 2018 Industrial & Scientific: personalised product search",
        "",
        f"- Machine: {machine_line()}; numpy BLAS 1 thread"
        + (f"; {args.note}" if args.note else ""),
        f"- Data: `amazon2018-industrial-scientific` ({split.n_users:,} users, "
        f"{split.n_items:,} products); leave-one-out; {len(test.cases):,} test queries "
        f"({len(test.parts):,} distinct; {test.skipped:,} users skipped: test item without a "
        f"category); {len(valid.cases):,} validation queries for the weights.",
        "- Queries: the words of the test item's category names (root first), analysed as the "
        "index does, lower-cased, Lucene's English stop words and repeats removed; history = "
        "train prefix + validation item; full ranking over all products, history items left "
        "out; ties at their expected rank.",
        f"- Personal term: fusion model {model_note}; the query layer's graph holds train + "
        "validation interactions (train only for the validation queries).",
        f"- Weights chosen on validation NDCG@10, one term at a time ({tune_s:.0f} s): "
        f"`{weights}`; grid: " + "; ".join(log) + ".",
        f"- **Full search / BM25 alone, NDCG@10: {full / bm25:.2f}x** (target >= 1.4x); "
        f"full {full:.4f} vs best partial row {partial:.4f} (target: above every partial row).",
        "- Command: `.venv/bin/python bench/bench_search.py --part amazon --work-dir "
        f"{args.work_dir}"
        + "".join(
            f" --{name.replace('_', '-')} {getattr(args, name)}"
            for name in ("valid_users", "test_users", "known_items")
            if getattr(args, name) is not None
            and (name != "known_items" or args.known_items != 1000)
        )
        + (" --no-neo4j" if args.no_neo4j else "")
        + "`",
        "",
        "| row | NDCG@10 | Recall@10 | MRR | ms / query (full ranking) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m, ms in [*rows, reduced]:
        lines.append(f"| {name} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['mrr']:.4f} | "
                     f"{ms:.2f} |")  # fmt: skip
    lines += [
        "",
        f"### Known-item search ({known['n']:,} Amazon products, seed {args.seed})",
        "",
        "3 distinct title words (no stop words) in a seeded order, and a copy with one seeded "
        "typo in a word of 4+ letters; MRR of the product over all products. Examples: "
        + ", ".join(known["examples"])
        + ".",
        "",
        "| query | BM25 MRR (as typed) | BM25 + kgrec's typo variants | full search MRR | "
        "full / BM25 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("clean", "typo"):
        b, v = known[f"bm25 {name}"]["mrr"], known[f"bm25+variants {name}"]["mrr"]
        f = known[f"full {name}"]["mrr"]
        lines.append(f"| {name} | {b:.4f} | {v:.4f} | {f:.4f} | {f / b:.2f}x |")
    lines.append("")
    lines.append(
        "Targets: full >= BM25 on clean queries, >= 1.2x BM25 with a typo. BM25 is Neo4j's "
        "full-text score of the words as typed; the middle column gives it the search's typo "
        "variants (a term no product holds replaced by the terms one edit away), which the "
        "section's earlier runs used as the baseline."
    )
    if backends is not None:
        n, p = backends["neo4j"], backends["in_process"]
        lines += [
            "",
            "### Lexical backend: Neo4j full-text index or in-process BM25",
            "",
            f"{backends['calls']:,} calls cycling the {len(test.parts):,} distinct test queries "
            f"(graph written to a fresh local Neo4j in {backends['load_s']:.0f} s): "
            f"`db.index.fulltext.queryNodes` (all hits, over Bolt) p50 {n[0]:.2f} ms, p99 "
            f"{n[1]:.2f} ms; in-process BM25 of every product + top 10 p50 {p[0]:.3f} ms, p99 "
            f"{p[1]:.3f} ms. Same top 10 (ids, or equal scores) on {backends['same_top10']} of "
            f"{backends['compared']} queries. The search serves from the in-process index: "
            "the same scores, no round trip, and the numpy query layer needs every product's "
            "score for the fusion with the dense and personal terms.",
        ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ latency
def run_latency(args: argparse.Namespace) -> str:
    import torch
    from bench_query import _load, _model, _pct, _wait_http, time_calls
    from threadpoolctl import threadpool_limits

    from gnn.text import TextEncoder
    from ingest.sources.synthetic import SyntheticConfig, generate_shop
    from ingest.tables import GraphTables
    from kg.query import Recommender
    from kg.query.analyzer import analyze
    from kg.query.dense import REDUCED_DIMS, DenseIndex
    from kg.query.search import ProductSearch
    from kg.serve_run import usable_cores

    torch.set_num_threads(1)
    threadpool_limits(limits=1, user_api="blas")
    cores = usable_cores()
    work = args.work_dir
    t0 = time.perf_counter()
    if (work / "model" / "config.json").exists() and (work / "tables").exists():
        tables = GraphTables.load(work / "tables")
        note = f"model and tables reused from `{work}`"
    else:
        tables = generate_shop(SyntheticConfig.preset(args.preset), show_progress=True)
        _model(tables, work / "model")
        tables.save(work / "tables")
        note = f"shop generated and model trained in {time.perf_counter() - t0:.0f} s"
    rec = Recommender.load(work / "model", tables)
    rng = np.random.default_rng(args.seed)
    vectors = rng.standard_normal((rec.n_products, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    t0 = time.perf_counter()
    search = ProductSearch(rec, text_vectors=vectors)
    build_s = time.perf_counter() - t0
    rec.__dict__["product_search"] = search  # the cached property, with these vectors
    t0 = time.perf_counter()
    search.vectors.load()
    load_s = time.perf_counter() - t0
    titles = tables.products.column("title").to_pylist()
    queries = []
    for i in rng.integers(0, len(titles), args.calls * 3).tolist():
        words = list(dict.fromkeys(analyze(titles[i])))
        if len(words) >= 3:
            queries.append(" ".join(words[j] for j in rng.choice(len(words), 3, replace=False)))
    queries = list(dict.fromkeys(queries))[: args.calls + 50]
    active = np.flatnonzero(np.diff(rec.index.hist_indptr) > 0)
    users = [rec.index.user_ids[i] for i in rng.choice(active, len(queries))]
    rounds: dict[str, list[tuple[float, float]]] = {}

    def timed(name: str, op: Callable[[int], Any], n: int, warm: int = 0) -> None:
        for i in range(warm):
            op(i)
        p50, p99 = time_calls(op, range(warm, warm + n))
        rounds.setdefault(name, []).append((p50, p99))
        print(f"python {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)

    n = len(queries) - 50
    fresh = queries[50:]
    encoder = rec.new_products.encoder  # ONNX Runtime, one thread (gnn/text_onnx.py)
    in_torch = TextEncoder(encoder.model_path, device="cpu", max_length=encoder.max_length,
                           normalize=encoder.normalize)  # fmt: skip
    in_torch.load()
    # the reduced dense scan (above EXACT_UP_TO products) at its former width and at today's
    wide = DenseIndex(search.dense.vectors, dims=64)
    scans = (("64 dims", wide), (f"{REDUCED_DIMS} dims: what search uses", search.dense))
    for _ in range(args.rounds):
        for name, index in scans:
            timed(f"dense scan alone, {rec.n_products:,} products ({name})",
                  lambda i, d=index: d.scores(vectors[i % len(vectors)]), n, warm=20)  # fmt: skip  # rounds alternate the rows: the machine's drift hits all
        encoders = (
            ("torch, 1 thread", in_torch, 1),
            ("ONNX Runtime, 1 thread: a `kgrec serve` worker", encoder, 1),
            (f"ONNX Runtime, {cores} threads: a process of its own", encoder, cores),
        )
        for name, enc, threads in encoders:  # fmt: skip
            torch.set_num_threads(threads)  # ONNX Runtime runs as many (gnn/text_onnx.py)
            timed(f"query encoding alone (MiniLM; {name})",
                  lambda i, e=enc: e.encode([fresh[i % len(fresh)] + " x"], show_progress=False),
                  n, warm=20)  # fmt: skip
        for threads in (1, cores):
            torch.set_num_threads(threads)
            search.vectors.cache_clear()
            timed(f"`search(query, k=10)`, every query new (encoding included, encoder "
                  f"{threads} thread{'s' if threads > 1 else ''})",
                  lambda i: rec.search(queries[i], k=K), n, warm=50)  # fmt: skip
        torch.set_num_threads(1)
        timed("`search(query, k=10)`, repeated queries (cached vectors)",
              lambda i: rec.search(queries[i], k=K), n, warm=50)  # fmt: skip
        timed("`search(query, user, k=10)`, repeated queries",
              lambda i: rec.search(queries[i], user=users[i], k=K), n, warm=50)  # fmt: skip
    rows = [
        (name, float(np.median([r[0] for r in got])), float(np.median([r[1] for r in got])),
         min(r[0] for r in got), max(r[0] for r in got))
        for name, got in rounds.items()
    ]  # fmt: skip

    http_rows = []
    if not args.no_http:
        http_rows = _http(rec, queries, users, args, _load, _pct, _wait_http)
    lines = [
        f"### Latency at {rec.n_products:,} products (synthetic `{args.preset}` shop)",
        "",
        f"- Machine: {machine_line()}; numpy BLAS 1 thread, torch 1 thread; ONNX Runtime as "
        "each row says (it runs as many threads as torch: every core in a process of its own, "
        "one in each `kgrec serve` worker)" + (f"; {args.note}" if args.note else ""),
        f"- Data: {rec.n_products:,} products; {note}; random unit product text vectors "
        f"(384 dims; latency does not depend on their values); search index built in "
        f"{build_s:.1f} s, query encoder loaded in {load_s:.1f} s; queries: 3 words of random "
        f"titles (seed {args.seed}), {n:,} timed calls per row after 50 warm-up calls; "
        f"{args.rounds} rounds of all rows, one after the other; each figure the median of "
        "the rounds'.",
        f"- Command: `.venv/bin/python bench/bench_search.py --part latency --work-dir {work}`",
        "",
        "Python API (targets, encoding included: p50 < 10 ms, p99 < 30 ms):",
        "",
        "| operation | p50 ms | p99 ms | p50 of each round, lowest to highest |",
        "|---|---:|---:|---:|",
        *[
            f"| {name} | {p50:.2f} | {p99:.2f} | {lo:.2f} to {hi:.2f} |"
            for name, p50, p99, lo, hi in rows
        ],
    ]
    if http_rows:
        lines += [
            "",
            f"HTTP `GET /search` under {args.clients} concurrent clients, {args.workers} "
            f"workers, {args.http_seconds:.0f} s after a 2 s warm-up:",
            "",
            "| requests | p50 ms | p99 ms | req/s | non-200 |",
            "|---|---:|---:|---:|---:|",
            *[f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.0f} | {r[4]} |" for r in http_rows],
        ]
    return "\n".join(lines)


def _http(rec: Any, queries: list[str], users: list[str], args: argparse.Namespace,
          load: Any, pct: Any, wait: Any) -> list[tuple[str, float, float, float, int]]:  # fmt: skip
    """``GET /search`` served by ``kgrec serve``'s runner from this process's recommender
    (with the random text vectors), forked into a child process."""
    import multiprocessing
    from urllib.parse import urlencode

    from kg.neo4j.server import free_port
    from kg.serve import create_app
    from kg.serve_run import ServeConfig, run_server

    port = free_port()
    app = create_app(rec)
    config = ServeConfig(port=port, workers=args.workers, log_level="warning")
    proc = multiprocessing.get_context("fork").Process(target=run_server, args=(app, config))
    proc.start()
    try:
        wait(port, _Alive(proc))
        out = []
        new = [f"/search?{urlencode({'q': q, 'k': K})}" for q in queries]
        mine = [f"/search?{urlencode({'q': q, 'user': u, 'k': K})}" for q, u in
                zip(queries, users, strict=True)]  # fmt: skip
        for name, paths in (("anonymous, repeated queries", new),
                            ("with a user, repeated queries", mine)):  # fmt: skip
            load(port, paths, args.clients, 2.0)
            t0 = time.perf_counter()
            latencies, errors = load(port, paths, args.clients, args.http_seconds)
            wall = time.perf_counter() - t0
            p50, p99 = pct(latencies)
            out.append((name, p50, p99, len(latencies) / wall, errors))
            print(f"http {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)
        return out
    finally:
        proc.terminate()
        proc.join(timeout=30)


class _Alive:
    """What ``bench_query._wait_http`` asks of a server process: ``poll()`` and ``stdout``."""

    stdout = None

    def __init__(self, proc: Any) -> None:
        self.proc = proc

    def poll(self) -> int | None:
        return None if self.proc.is_alive() else (self.proc.exitcode or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["amazon", "latency", "all"], default="all")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench-search",
                        help="the trained models and shops, reused by the next run")  # fmt: skip
    parser.add_argument("--max-epochs", type=int, default=20, help="fusion model epochs")
    parser.add_argument("--known-items", type=int, default=1000)
    parser.add_argument("--valid-users", type=int, help="a seeded sample (default: all)")
    parser.add_argument("--test-users", type=int, help="a seeded sample (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-neo4j", action="store_true")
    parser.add_argument("--neo4j-calls", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=1000, help="Python API calls per row")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the latency rows")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--http-seconds", type=float, default=20.0)
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--preset", default="bench", help="synthetic shop of --part latency")
    parser.add_argument("--note", help="a line for the section (e.g. how busy the machine was)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    parts = _existing_parts()
    if args.part in ("amazon", "all"):
        parts["amazon"] = run_amazon(args)
    if args.part in ("latency", "all"):
        parts["latency"] = run_latency(args)
    text = "\n\n".join(
        f"<!-- part:{name} -->\n{parts[name]}\n<!-- /part:{name} -->"
        for name in ("amazon", "latency")
        if name in parts
    )
    print(text)
    if not args.no_write:
        write_section("search", "Personalised product search", text)
    return 0


def _existing_parts() -> dict[str, str]:
    """The parts of the ``search`` section already in BENCHMARKS.md (a run of one part keeps
    the other)."""
    import re

    from _report import BENCHMARKS

    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    section = re.search(r"<!-- section:search -->(.*?)<!-- /section:search -->", text, re.S)
    if section is None:
        return {}
    found = re.findall(r"<!-- part:(\w+) -->\n(.*?)\n<!-- /part:\1 -->", section.group(1), re.S)
    return dict(found)


if __name__ == "__main__":
    raise SystemExit(main())
