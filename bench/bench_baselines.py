"""Baselines under full ranking: Amazon 2018 Industrial & Scientific and KGAT Amazon-Book.

Amazon (leave-one-out by position in each user's chronological list): random, most popular,
item co-occurrence (hyper-parameters tuned on the validation split), BPR-MF and LightGCN (early
stopping on validation NDCG@10), each with several seeds. KGAT Amazon-Book (its own 80/20
train/test split; 10% of each user's train rows held out for early stopping): most popular,
BPR-MF and LightGCN with a small epoch budget, next to published Recall@20. Results go to
stdout and to BENCHMARKS.md (section "baselines"; re-running one part keeps the other).

    .venv/bin/python bench/bench_baselines.py                         # both parts
    .venv/bin/python bench/bench_baselines.py --part amazon --seeds 3
    .venv/bin/python bench/bench_baselines.py --part kgat --kgat-lgcn-epochs 8
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from _report import BENCHMARKS, machine_line, write_section

from gnn.baselines import BPRMF, ItemCooccurrence, LightGCN, MostPopular, RandomScorer
from gnn.baselines.cooccurrence import tune
from gnn.evaluate import EvalResult, aggregate, evaluate
from gnn.splits import EvalOn, Split, given_split, leave_one_out
from ingest.sources.amazon import read_amazon
from ingest.sources.kgat import read_kgat

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
AMAZON = DATA / "amazon2018-industrial-scientific"
KGAT_BOOK = DATA / "kgat-amazon-book"

#: Recall@20 on the KGAT Amazon-Book split as published (see kgat-amazon-book/SOURCE.md).
PUBLISHED_RECALL20 = {
    "bpr_mf": "0.1244 (KGAT paper); 0.1395 (KGAT-pytorch re-implementation)",
    "lightgcn": "0.1398",
}

AMAZON_COLUMNS = [
    ("recall@10", "Recall@10"),
    ("ndcg@10", "NDCG@10"),
    ("hit@10", "Hit@10"),
    ("recall@20", "Recall@20"),
    ("ndcg@20", "NDCG@20"),
    ("hit@20", "Hit@20"),
    ("mrr", "MRR"),
    ("coverage@10", "Cov@10"),
    ("coverage@20", "Cov@20"),
]


def _fit_and_eval(
    name: str,
    make: Callable[[], Any],
    split: Split,
    seeds: list[int],
    *,
    ks: tuple[int, ...],
    batch_size: int,
) -> dict[str, Any]:
    results: list[EvalResult] = []
    fit_s: list[float] = []
    valid: list[float] = []
    epochs: list[str] = []
    for seed in seeds:
        model = make()
        t0 = time.perf_counter()
        model.fit(split, seed=seed, show_progress=True)
        fit_s.append(time.perf_counter() - t0)
        info = getattr(model, "fit_info", {})
        if info:
            epochs.append(f"{info['best_epoch']}/{info['epochs_run']}")
        if split.eval_users("valid").size:
            res = evaluate(
                model, split, on="valid", ks=(10,), batch_size=batch_size, show_progress=False
            )
            valid.append(res["ndcg@10"])
        result = evaluate(
            model,
            split,
            on="test",
            ks=ks,
            batch_size=batch_size,
            show_progress=split.n_users > 20_000,
        )
        results.append(result)
        print(
            f"  {name} seed {seed}: {json.dumps(result.metrics)} fit {fit_s[-1]:.1f}s", flush=True
        )
    return {
        "name": name,
        "summary": aggregate(results),
        "n_users": results[0].n_users,
        "fit_s": (float(np.mean(fit_s)), float(np.std(fit_s))),
        "valid_ndcg10": (
            float(np.mean(valid)),
            float(np.std(valid, ddof=1)) if len(valid) > 1 else 0.0,
        )
        if valid
        else None,
        "epochs": ", ".join(epochs),
        "seeds": len(seeds),
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _cell(mean_std: tuple[float, float], digits: int = 4) -> str:
    mean, std = mean_std
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = ["model", *[c[1] for c in columns], "valid NDCG@10", "users", "fit s", "epochs best/run"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        cells = [r["name"], *[_cell(r["summary"][key]) for key, _ in columns]]
        cells.append(_cell(r["valid_ndcg10"]) if r["valid_ndcg10"] else "–")
        cells += [f"{r['n_users']:,}", f"{r['fit_s'][0]:.1f}", r["epochs"] or "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class _TrainHistoryOnly(ItemCooccurrence):
    """Co-occurrence that scores test from the train history only (diagnostic)."""

    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> np.ndarray:
        return super().score(user_indices, split, "valid")


def run_amazon(args: argparse.Namespace) -> str:
    t0 = time.perf_counter()
    tables = read_amazon(AMAZON, show_progress=False)
    split = leave_one_out(tables)
    print(f"amazon: {split.stats()} ({time.perf_counter() - t0:.1f} s)", flush=True)
    seeds = list(range(args.seeds))
    t0 = time.perf_counter()
    if args.no_tune:
        cooc_config, n_trials = ItemCooccurrence().config, 0
    else:
        cooc_config, trials = tune(split, show_progress=True)
        n_trials = len(trials)
    tune_s = time.perf_counter() - t0
    print(f"co-occurrence config: {cooc_config} ({n_trials} trials, {tune_s:.0f} s)", flush=True)
    common = {
        "dim": 64,
        "batch_size": 2048,
        "max_epochs": args.amazon_max_epochs,
        "eval_every": args.eval_every,
        "patience": args.patience,
    }
    bpr = {**common, "lr": args.bpr_lr, "reg": args.bpr_reg}
    lgcn = {**common, "lr": args.lgcn_lr, "reg": args.lgcn_reg, "num_layers": 3}
    models: list[tuple[str, Callable[[], Any]]] = [
        ("Random", RandomScorer),
        ("MostPopular", MostPopular),
        ("ItemCooccurrence (tuned on valid)", lambda: ItemCooccurrence(cooc_config)),
        (
            "ItemCooccurrence, test history without the valid item¹",
            lambda: _TrainHistoryOnly(cooc_config),
        ),
        ("BPR-MF", lambda: BPRMF(**bpr)),
        ("LightGCN (3 layers)", lambda: LightGCN(**lgcn)),
    ]
    rows = []
    for name, make in models:
        print(f"amazon: {name}", flush=True)
        rows.append(_fit_and_eval(name, make, split, seeds, ks=(10, 20), batch_size=1024))
    stats = split.stats()
    cmd = " ".join(["bench/bench_baselines.py", *sys.argv[1:]])
    return "\n".join(
        [
            "### Amazon 2018 Industrial & Scientific, leave-one-out",
            "",
            f"- Measured: {_now()}",
            f"- Machine: {machine_line()}; torch threads: {torch.get_num_threads()}",
            f"- Dataset: `{AMAZON.name}` ({stats['users']:,} users, {stats['items']:,} items, "
            f"{stats['train_interactions']:,} train interactions)",
            "- Split: leave-one-out by position: last item = test, second-to-last = valid, rest = "
            "train. Test ranking excludes train + valid items; sequential scorers see the valid "
            "item as the latest history item; models are fitted on train only.",
            "- Metrics: full ranking over all items, mean ± sample std over "
            f"{args.seeds} seeds (seeds 0..{args.seeds - 1}); Recall@K = Hit@K here (one "
            "target per user). `valid NDCG@10` is the validation score of the chosen model.",
            f"- ItemCooccurrence: coordinate search on validation NDCG@10 ({n_trials} trials, "
            f"{tune_s:.0f} s) chose `{cooc_config}`; it is deterministic (std 0).",
            f"- BPR-MF: Adam lr {args.bpr_lr}, L2 {args.bpr_reg}; LightGCN: Adam lr "
            f"{args.lgcn_lr}, L2 {args.lgcn_reg}; both dim 64, batch 2048, validation every "
            f"{args.eval_every} epochs, patience {args.patience} validations, at most "
            f"{args.amazon_max_epochs} epochs, best validation epoch kept. lr and L2 were chosen "
            "on validation NDCG@10 (seed 0) among the few settings tried: BPR-MF lr/L2 "
            "1e-3/1e-4, 5e-3/1e-4, 5e-3/1e-3, 1e-2/1e-3, 5e-3/3e-3, 5e-3/1e-2, 5e-3/3e-2; "
            "LightGCN 1e-3/1e-4, 5e-3/1e-4, 5e-3/1e-3, 1e-2/1e-4, 5e-3/1e-2.",
            "- ¹ Diagnostic row: the same co-occurrence model scoring test from the train "
            "history only, i.e. with the information BPR-MF and LightGCN have (their user "
            "vectors are fitted on train and not refitted with the valid item). It shows how "
            "much of the gap is the most recent item.",
            f"- Command: `.venv/bin/python {cmd}`",
            "",
            _table(rows, AMAZON_COLUMNS),
        ]
    )


def run_kgat(args: argparse.Namespace) -> str:
    t0 = time.perf_counter()
    tables = read_kgat(KGAT_BOOK, show_progress=False)
    split = given_split(tables, valid_fraction=args.kgat_valid_fraction, seed=0)
    stats = split.stats()
    print(f"kgat: {stats} ({time.perf_counter() - t0:.1f} s)", flush=True)
    seeds = list(range(args.kgat_seeds))
    stop = {"eval_every": 5, "patience": 3, "valid_users": args.kgat_valid_users}
    bpr = {
        "lr": args.kgat_bpr_lr,
        "reg": args.kgat_bpr_reg,
        "batch_size": args.kgat_batch_size,
        "max_epochs": args.kgat_epochs,
        **stop,
    }
    lgcn = {
        "lr": args.kgat_lgcn_lr,
        "reg": args.kgat_lgcn_reg,
        "batch_size": args.kgat_lgcn_batch_size,
        "max_epochs": args.kgat_lgcn_epochs,
        "num_layers": 3,
        **stop,
        "eval_every": 2,
    }
    models: list[tuple[str, Callable[[], Any]]] = [
        ("MostPopular", MostPopular),
        ("BPR-MF", lambda: BPRMF(**bpr)),
        ("LightGCN (3 layers)", lambda: LightGCN(**lgcn)),
    ]
    keys = {"BPR-MF": "bpr_mf", "LightGCN (3 layers)": "lightgcn"}
    rows = []
    for name, make in models:
        print(f"kgat: {name}", flush=True)
        rows.append(_fit_and_eval(name, make, split, seeds, ks=(20,), batch_size=512))
    lines = [
        "| model | Recall@20 | NDCG@20 | published Recall@20 | valid NDCG@10 | users | fit s "
        "| epochs best/run |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        published = PUBLISHED_RECALL20.get(keys.get(r["name"], ""), "–")
        valid = _cell(r["valid_ndcg10"]) if r["valid_ndcg10"] else "–"
        lines.append(
            f"| {r['name']} | {_cell(r['summary']['recall@20'])} | "
            f"{_cell(r['summary']['ndcg@20'])} | {published} | {valid} | {r['n_users']:,} | "
            f"{r['fit_s'][0]:.0f} | {r['epochs'] or '–'} |"
        )
    cmd = " ".join(["bench/bench_baselines.py", *sys.argv[1:]])
    frac = args.kgat_valid_fraction
    held_out = stats["valid_targets"] / max(stats["train_pairs"] + stats["valid_targets"], 1)
    return "\n".join(
        [
            "### KGAT Amazon-Book, given train/test split",
            "",
            f"- Measured: {_now()}",
            f"- Machine: {machine_line()}; torch threads: {torch.get_num_threads()}",
            f"- Dataset: `{KGAT_BOOK.name}` ({stats['users']:,} users, {stats['items']:,} items, "
            f"{stats['train_pairs'] + stats['valid_targets']:,} train / "
            f"{stats['test_targets']:,} test interactions); no knowledge graph needed.",
            "- Split: KGAT's own 80/20 train/test split. KGAT has no validation set, so "
            f"given_split(valid_fraction={frac}, seed=0) holds out round({frac} x n) of each "
            f"user's train rows, at least one ({stats['valid_targets']:,} rows, "
            f"{held_out:.0%}), for early stopping (validation NDCG@10 on "
            f"{args.kgat_valid_users:,} sampled users): models train on the other "
            f"{stats['train_pairs']:,} pairs. Test ranking excludes all original train items, "
            "as in KGAT.",
            f"- BPR-MF: Adam lr {args.kgat_bpr_lr}, L2 {args.kgat_bpr_reg} (chosen on the "
            "validation rows only, between 1e-3 and 1e-2; an earlier run with L2 1e-4, lr 1e-2 "
            "and no early stopping overfitted: train loss 0.015, test Recall@20 0.072), batch "
            f"{args.kgat_batch_size}, at most {args.kgat_epochs} epochs. LightGCN: Adam lr "
            f"{args.kgat_lgcn_lr}, L2 {args.kgat_lgcn_reg}, batch {args.kgat_lgcn_batch_size}, "
            f"at most {args.kgat_lgcn_epochs} epochs; dim 64 for both; {len(seeds)} seed(s). "
            "**Both get far fewer epochs than the published runs (hundreds to 1,000; one "
            "LightGCN epoch takes about 30 s on one CPU thread here) and train on fewer pairs, "
            "so these numbers are under-trained lower bounds.**",
            "- Metrics: full ranking over all items; Recall@20 = hits/|test items|; NDCG@20 "
            "with IDCG over min(20, |test items|) slots (KGAT's own NDCG code differs, so only "
            "Recall@20 is compared with published numbers, which train on 100% of train).",
            f"- Command: `.venv/bin/python {cmd}`",
            "",
            "\n".join(lines),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["amazon", "kgat", "all"], default="all")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per Amazon model")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-tune", action="store_true", help="co-occurrence defaults")
    parser.add_argument("--bpr-lr", type=float, default=5e-3)
    parser.add_argument("--bpr-reg", type=float, default=3e-2)
    parser.add_argument("--lgcn-lr", type=float, default=5e-3)
    parser.add_argument("--lgcn-reg", type=float, default=1e-3)
    parser.add_argument("--amazon-max-epochs", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--kgat-valid-fraction", type=float, default=0.1)
    parser.add_argument("--kgat-valid-users", type=int, default=10_000)
    parser.add_argument("--kgat-epochs", type=int, default=60, help="most BPR-MF epochs")
    parser.add_argument("--kgat-lgcn-epochs", type=int, default=8)
    parser.add_argument("--kgat-seeds", type=int, default=1)
    parser.add_argument("--kgat-bpr-lr", type=float, default=5e-3)
    parser.add_argument("--kgat-bpr-reg", type=float, default=1e-2)
    parser.add_argument("--kgat-lgcn-lr", type=float, default=1e-2)
    parser.add_argument("--kgat-lgcn-reg", type=float, default=1e-4)
    parser.add_argument("--kgat-batch-size", type=int, default=8192)
    parser.add_argument("--kgat-lgcn-batch-size", type=int, default=16384)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    parts = _existing_parts()
    if args.part in ("amazon", "all"):
        parts["amazon"] = run_amazon(args)
        print(parts["amazon"], flush=True)
    if args.part in ("kgat", "all"):
        parts["kgat"] = run_kgat(args)
        print(parts["kgat"], flush=True)
    if not args.no_write:
        body = "\n\n".join(parts[k] for k in ("amazon", "kgat") if k in parts)
        write_section("baselines", "Baselines (full ranking)", body)
    return 0


def _existing_parts() -> dict[str, str]:
    """The Amazon and KGAT subsections already in BENCHMARKS.md, so one part can be re-run."""
    if not BENCHMARKS.exists():
        return {}
    match = re.search(
        r"<!-- section:baselines -->(.*?)<!-- /section:baselines -->", BENCHMARKS.read_text(), re.S
    )
    if not match:
        return {}
    parts = {}
    for block in re.split(r"\n(?=### )", match.group(1)):
        if block.startswith("### Amazon"):
            parts["amazon"] = block.strip()
        elif block.startswith("### KGAT"):
            parts["kgat"] = block.strip()
    return parts


if __name__ == "__main__":
    raise SystemExit(main())
