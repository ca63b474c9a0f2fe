"""Cross-category recommendations on real data: do they come from categories the user has
not bought in, and do they carry a path?

For sampled users with at least ``--min-history`` interactions, ``Recommender.cross_category``
is called at each ``--levels`` tree level, and every result's level-``L`` category is checked
against the level-``L`` categories of the user's **whole** interaction history. The check is
computed here from the canonical tables (``in_category``, ``subcategory_of``, ``categories``),
not by the query layer. With ``--samples N`` it also prints related / recommend /
cross-category results and explanations for N sample products and users. Writes BENCHMARKS.md
section "cross-category".

    .venv/bin/kgrec ingest amazon ../shared/data/amazon2018-industrial-scientific --out runs/amazon/tables
    .venv/bin/kgrec embed --tables runs/amazon/tables --model rotate --out runs/amazon/kge --no-write-back
    .venv/bin/kgrec train --tables runs/amazon/tables --kge runs/amazon/kge --out runs/amazon/fusion
    .venv/bin/python bench/bench_cross_category.py --model runs/amazon/fusion --tables runs/amazon/tables
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine_line, write_section

from ingest.tables import GraphTables
from kg.cli_query import _cut
from kg.query import Recommender


class CategoryTree:
    """Each product's categories at a given tree level, from the tables alone."""

    def __init__(self, tables: GraphTables) -> None:
        cats = tables.categories.to_pydict()
        self.level = dict(zip(cats["id"], cats["level"], strict=True))
        self.name = dict(zip(cats["id"], cats["name"], strict=True))
        sub = tables.subcategory_of.to_pydict()
        self.parent = dict(zip(sub["child_id"], sub["parent_id"], strict=True))
        self.of_product: dict[str, set[str]] = defaultdict(set)
        ic = tables.in_category.to_pydict()
        for p, c in zip(ic["product_id"], ic["category_id"], strict=True):
            self.of_product[p].add(c)

    def at(self, product: str, level: int) -> set[str]:
        """The product's ancestors (or own categories) at ``level``; empty when none is that deep."""
        out = set()
        for c in self.of_product.get(product, ()):
            x: str | None = c
            while x is not None and self.level.get(x, 0) > level:
                x = self.parent.get(x)
            if x is not None and self.level.get(x) == level:
                out.add(x)
        return out


def print_samples(
    rec: Recommender, tree: CategoryTree, history: dict[str, list[str]], titles: dict[str, str],
    n: int, level: int, rng: random.Random,
) -> None:  # fmt: skip
    """Related, recommend, explain and cross-category results of ``n`` products and users."""
    counts: dict[str, int] = defaultdict(int)
    for items in history.values():
        for p in items:
            counts[p] += 1
    for p in rng.sample(sorted(q for q, c in counts.items() if c >= 5), n):
        cats = ", ".join(sorted(tree.name[c] for c in tree.of_product[p]))
        print(f"\n### related to {p}: {_cut(titles.get(p), 70)} [{cats}]")
        for r in rec.related(p, k=5):
            print(f"  {r.rank}. {r.product_id} {r.score:.3f} {_cut(r.title, 55)} ({r.reason})")
    users = sorted(u for u, items in history.items() if len(items) >= 4)
    for u in rng.sample(users, n):
        mine = set().union(*(tree.at(p, level) for p in history[u]))
        print(f"\n### user {u}: {len(history[u])} interactions; level-{level} categories: "
              f"{', '.join(sorted(tree.name[c] for c in mine))}")  # fmt: skip
        print("  latest: " + "; ".join(_cut(titles.get(p), 40) for p in history[u][-3:]))
        recs = rec.recommend(u, k=5)
        for r in recs:
            print(f"  recommend {r.rank}. {r.product_id} {r.score:.3f} {_cut(r.title, 55)}")
        for path in rec.explain(u, recs[0].product_id, max_paths=2):
            print(f"    explain {recs[0].product_id}: {path}")
        for r in rec.cross_category(u, k=5, level=level):
            cats = ", ".join(sorted(tree.name[c] for c in tree.at(r.product_id, level)))
            print(f"  cross-category {r.rank}. {r.product_id} {r.score:.3f} "
                  f"{_cut(r.title, 45)} [{cats}]\n      path: {r.path}")  # fmt: skip


def check(
    rec: Recommender, tree: CategoryTree, history: dict[str, list[str]], users: list[str],
    level: int, k: int,
) -> dict[str, float]:  # fmt: skip
    """Counts over ``users``' cross-category results at ``level``."""
    results = wrong = with_path = empty = 0
    start = time.perf_counter()
    for u in users:
        mine = set().union(*(tree.at(p, level) for p in history[u]))
        recs = rec.cross_category(u, k=k, level=level)
        empty += not recs
        for r in recs:
            results += 1
            theirs = tree.at(r.product_id, level)
            wrong += (not theirs) or bool(theirs & mine)
            with_path += r.path is not None
    seconds = time.perf_counter() - start
    return {
        "users": len(users), "results": results, "wrong": wrong, "with_path": with_path,
        "empty": empty, "ms_per_call": 1000 * seconds / max(len(users), 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder of kgrec train")
    parser.add_argument("--tables", type=Path, required=True, help="the tables it was trained on")
    parser.add_argument("--users", type=int, default=1000, help="users checked (default 1000)")
    parser.add_argument("--min-history", type=int, default=4)
    parser.add_argument("--levels", default="2,3", help="tree levels checked (default 2,3)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--samples", type=int, default=5, help="sample products/users printed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    tables = GraphTables.load(args.tables)
    rec = Recommender.load(args.model, args.tables)
    tree = CategoryTree(tables)
    history: dict[str, list[str]] = defaultdict(list)
    inter = tables.interactions.sort_by([("user_id", "ascending"), ("order", "ascending")])
    for u, p in zip(inter["user_id"].to_pylist(), inter["product_id"].to_pylist(), strict=True):
        history[u].append(p)
    titles = dict(zip(tables.products["id"].to_pylist(), tables.products["title"].to_pylist(),
                      strict=True))  # fmt: skip
    rng = random.Random(args.seed)
    levels = [int(x) for x in args.levels.split(",")]
    if args.samples:
        print_samples(rec, tree, history, titles, args.samples, levels[0], rng)
    eligible = sorted(u for u, items in history.items() if len(items) >= args.min_history)
    users = rng.sample(eligible, min(args.users, len(eligible)))
    rows = []
    for level in levels:
        c = check(rec, tree, history, users, level, args.k)
        rows.append(
            f"| {level} | {c['users']:,} | {c['results']:,} | {c['wrong']:,} | "
            f"{c['with_path']:,} | {c['empty']:,} | {c['ms_per_call']:.2f} |"
        )
    source = tables.meta.get("path") or tables.meta.get("source", "?")
    body = "\n".join(
        [
            f"- Machine: {machine_line()}",
            f"- Data: `{args.tables}` (from `{source}`, fingerprint {tables.fingerprint()[:16]}); "
            f"model `{args.model}`; {len(users):,} users drawn (seed {args.seed}) among the "
            f"{len(eligible):,} with at least {args.min_history} interactions.",
            f"- Command: `.venv/bin/python bench/bench_cross_category.py {' '.join(sys.argv[1:])}`",
            "- `wrong`: results whose level-L category is one the user has an interaction in "
            "(whole history, not only train), or that have no level-L category; computed from "
            "the tables, not by the query layer.",
            "",
            f"| level | users | results (k = {args.k}) | wrong | with a path | users with no "
            "result | ms per call |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print("\n" + body)
    if not args.no_write:
        write_section("cross-category", "Cross-category results on real data", body)


if __name__ == "__main__":
    main()
