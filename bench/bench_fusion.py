"""The fusion GNN against the baselines, with an ablation, under full ranking.

Amazon 2018 Industrial & Scientific, leave-one-out, K = 10 and 20, mean ± std over seeds:
most popular, item co-occurrence (tuned on validation), text-only and KGE-only recency
scorers (tuned on validation), BPR-MF, LightGCN, the fused model, and the fused model without
text, without KGE, without KG edges, without message passing, and without the co-occurrence
blend. KGAT Amazon-Book (given train/test, 10% of train held out for early stopping, no KG
available): the fused model without KGE next to LightGCN, and (``--part kgat-control``) the
same fused model with each user's training items in a seeded random order: the published
models on that split ignore the order of a training line, which may not be chronological,
while the fused model reads it (transition edges, co-occurrence windows, recency). Writes
BENCHMARKS.md sections "fusion" (Amazon), "fusion-kgat" and "fusion-kgat-control" (KGAT).
``--part sampling`` trains the fused model on Amazon over the full graph and with neighbour
sampling (``FusionConfig.fanout``, the mini-batch training of the ``xl`` shop), same seeds,
and writes section "fusion-sampling".

    .venv/bin/python bench/bench_fusion.py --part amazon --seeds 3
    .venv/bin/python bench/bench_fusion.py --part sampling --seeds 2 --max-epochs 20
    .venv/bin/python bench/bench_fusion.py --part kgat
    .venv/bin/python bench/bench_fusion.py --part kgat-control --kgat-epochs 12
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from _report import machine_line, write_section
from bench_baselines import AMAZON, AMAZON_COLUMNS, KGAT_BOOK, _cell, _fit_and_eval, _now, _table

from gnn.baselines import BPRMF, ContentRecency, ItemCooccurrence, LightGCN, MostPopular
from gnn.baselines.cooccurrence import tune
from gnn.features import kge_features, text_features
from gnn.fusion import FusionRecommender
from gnn.model import FusionConfig
from gnn.pipeline import default_text_cache
from gnn.splits import given_split, leave_one_out
from ingest.sources.amazon import read_amazon
from ingest.sources.kgat import read_kgat
from ingest.tables import GraphTables
from kg.embeddings.artifact import KGEmbeddings

KGE_CACHE = Path.home() / ".kgrec" / "cache" / "bench-kge-amazon"


def _kge_artifact(tables: GraphTables, model: str, dim: int) -> Path:
    """Train (once; reused while the data fingerprint matches) the Amazon KG embeddings."""
    import json

    from kg.embeddings.pipeline import embed_graph
    from kg.embeddings.train import EmbedConfig

    folder = KGE_CACHE / f"{model}-{dim}"
    config = folder / "config.json"
    if config.is_file():
        saved = json.loads(config.read_text()).get("data", {}).get("fingerprint")
        if saved == tables.fingerprint():
            return folder
    cfg = EmbedConfig(
        model=model, dim=dim, epochs=300, batch_size=512, lr=0.02, eval_every=25, patience=3,
        seed=42,
    )  # fmt: skip
    embed_graph(tables, cfg, folder, restart=True, show_progress=True)  # other data: anew
    return folder


class _Without:
    """An already fitted fusion model scored without some parts of its final score: the
    similarity terms, and also the co-occurrence blend (``blend=False``: the GNN alone)."""

    def __init__(self, model: FusionRecommender, *, blend: bool) -> None:
        self.model = model
        self.keep_blend = blend
        self.fit_info = model.fit_info

    def fit(self, split: Any, *, seed: int = 0, show_progress: bool = True) -> _Without:
        return self

    def score(self, user_indices: Any, split: Any, on: Any) -> Any:
        m = self.model
        saved = m.blend, m.similarity_weights
        m.blend = m.blend if self.keep_blend else 0.0
        m.similarity_weights = {}
        try:
            return m.score(user_indices, split, on)
        finally:
            m.blend, m.similarity_weights = saved


def _amazon_inputs(args: argparse.Namespace) -> tuple[Any, ...]:
    """``(tables, split, text, text_info, kge, kge_info)`` of Amazon Industrial & Scientific."""
    tables = read_amazon(AMAZON, show_progress=False)
    split = leave_one_out(tables)
    t0 = time.perf_counter()
    text, text_info = text_features(tables, split.item_ids, default_text_cache())
    text_s = time.perf_counter() - t0
    kge_dir = _kge_artifact(tables, args.kge_model, args.kge_dim)
    kge, kge_info = kge_features(KGEmbeddings.load(kge_dir), split.item_ids)
    print(f"text {text.shape} ({text_s:.0f} s), kge {kge.shape} from {kge_dir}", flush=True)
    return tables, split, text, text_info, kge, kge_info


def run_amazon(args: argparse.Namespace) -> str:
    tables, split, text, text_info, kge, kge_info = _amazon_inputs(args)
    stats = split.stats()
    cooc_config, trials = tune(split, show_progress=False)
    text_scorer = ContentRecency(text, name="text")
    text_tuned = text_scorer.tune(split)
    kge_scorer = ContentRecency(kge, name="kge")
    kge_tuned = kge_scorer.tune(split)
    base = FusionConfig(
        max_epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience
    )
    common = {"dim": 64, "batch_size": 2048, "max_epochs": 400, "eval_every": 5, "patience": 5}

    made: dict[str, list[FusionRecommender]] = {}

    def fusion(cls: type = FusionRecommender, **over: Any) -> Callable[[], Any]:
        key = ",".join(f"{k}={v}" for k, v in over.items()) or cls.__name__

        def make() -> FusionRecommender:
            model = cls(tables, base, text=text, kge=kge, **over)
            made.setdefault(key, []).append(model)
            return model

        return make

    full_fits = made.setdefault("FusionRecommender", [])
    fitted_a, fitted_b = iter(full_fits), iter(full_fits)
    models: list[tuple[str, Callable[[], Any], int]] = [
        ("MostPopular", MostPopular, 1),
        ("ItemCooccurrence (tuned on valid)", lambda: ItemCooccurrence(cooc_config), 1),
        ("Text-only recency (tuned on valid)", lambda: text_scorer, 1),
        ("KGE-only recency (tuned on valid)", lambda: kge_scorer, 1),
    ]
    if args.mf_baselines:
        models += [
            ("BPR-MF", lambda: BPRMF(**common, lr=5e-3, reg=1e-3), args.seeds),
            (
                "LightGCN (3 layers)",
                lambda: LightGCN(**common, lr=5e-3, reg=1e-3, num_layers=3),
                args.seeds,
            ),
        ]
    models += [
        (
            "**Fusion** (text + KGE + graph; co-occurrence blend; similarity terms)",
            fusion(),
            args.seeds,
        ),
        (
            "Fusion − similarity terms (GNN + co-occurrence blend)",
            lambda: _Without(next(fitted_a), blend=True),
            args.seeds,
        ),
        (
            "Fusion − similarity terms − blend (the GNN alone)",
            lambda: _Without(next(fitted_b), blend=False),
            args.seeds,
        ),
        ("Fusion − text", fusion(use_text=False), args.ablation_seeds),
        ("Fusion − KGE", fusion(use_kge=False), args.ablation_seeds),
        ("Fusion − KG edges", fusion(use_kg_edges=False), args.ablation_seeds),
        ("Fusion − message passing (0 layers)", fusion(num_layers=0), args.ablation_seeds),
    ]
    if args.only:
        models = [m for m in models if any(o.lower() in m[0].lower() for o in args.only)]
    rows = []
    for name, make, n_seeds in models:
        print(f"amazon: {name}", flush=True)
        rows.append(
            _fit_and_eval(name, make, split, list(range(n_seeds)), ks=(10, 20), batch_size=1024)
        )
    best_base = max(
        (r for r in rows if not r["name"].lstrip("*").startswith("Fusion")),
        key=lambda r: r["summary"]["ndcg@10"][0],
        default=None,  # --only without a baseline
    )
    fused = next((r for r in rows if r["name"].startswith("**Fusion")), None)
    verdict = ""
    if fused and best_base:
        gain = fused["summary"]["ndcg@10"][0] / best_base["summary"]["ndcg@10"][0] - 1
        verdict = (
            f"- **Fusion vs the best baseline ({best_base['name']}) on NDCG@10: {gain:+.1%} "
            f"relative** (target: +10%)."
        )
    cmd = " ".join(["bench/bench_fusion.py", *sys.argv[1:]])
    full = made.get("FusionRecommender", [])
    blends = [
        (
            m.fit_info.get("blend_mode"),
            m.fit_info.get("blend"),
            m.fit_info.get("similarity_weights"),
        )
        for m in full
    ]
    epoch_s = sum(m.fit_info.get("epoch_seconds_mean", 0.0) for m in full) / max(len(full), 1)
    return "\n".join(
        [
            "### Amazon 2018 Industrial & Scientific, leave-one-out: fusion, baselines, ablation",
            "",
            f"- Measured: {_now()}",
            f"- Machine: {machine_line()}; torch threads: {torch.get_num_threads()}",
            f"- Dataset: `{AMAZON.name}` ({stats['users']:,} users, {stats['items']:,} items, "
            f"{stats['train_interactions']:,} train interactions); split and metrics as in the "
            "baselines section (full ranking, train + valid items excluded from test ranking).",
            f"- Seeds: {args.seeds} for the fused model (the two rows below it score the same "
            f"fitted models without parts of the final score), {args.ablation_seeds} for each "
            "ablation row (− text and − KGE drop the feature everywhere: GNN input and "
            "similarity term) "
            "(2 CPU cores: one fit takes minutes); the counting and content scorers are "
            "deterministic (one run, std 0). BPR-MF and LightGCN "
            + (
                f"were re-run here with {args.seeds} seeds."
                if args.mf_baselines
                else "are in the baselines section above (same split and harness, 3 seeds: "
                "NDCG@10 0.0385 and 0.0404), not re-run here."
            ),
            f"- Text: {text_info['encoder'].get('name', 'all-MiniLM-L6-v2')} mean-pooled, "
            f"{text.shape[1]} dims (cached). KGE: {kge_info['model']} "
            f"{kge_info['dim']} wide ({kge_info['layout']}), trained on IN_CATEGORY, "
            "SUBCATEGORY_OF, MADE_BY only (no interactions).",
            f"- Tuned on validation only: co-occurrence `{cooc_config}` ({len(trials)} trials); "
            f"text recency n_recent {text_tuned['n_recent']}, decay "
            f"{text_tuned['recency_decay']}; KGE recency n_recent {kge_tuned['n_recent']}, "
            f"decay {kge_tuned['recency_decay']}.",
            f"- Fusion: `{base}`; cross-entropy over all items, early stopping on validation "
            "NDCG@10 of the GNN alone; then the final-score weights (`gnn.fusion_blend`: blend "
            f"mode and β from {base.blend_grid}, the text and KGE similarity weights τ from "
            f"{base.similarity_grid}, vectors reduced to {base.similarity_dim} dims) are chosen "
            f"on validation NDCG@10; chosen per seed (mode, β, τ): {blends}. Epoch time on "
            f"CPU (full model, mean over epochs and seeds): {epoch_s:.2f} s.",
            verdict,
            f"- Command: `.venv/bin/python {cmd}`",
            "",
            _table(rows, AMAZON_COLUMNS),
        ]
    )


def run_sampling(args: argparse.Namespace) -> str:
    """The fused model trained over the full graph and with neighbour sampling, same seeds."""
    tables, split, text, _, kge, _ = _amazon_inputs(args)
    stats = split.stats()
    fanout = tuple(int(f) for f in args.fanout.split(","))
    base = FusionConfig(
        max_epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience
    )
    made: dict[str, list[FusionRecommender]] = {}
    variants = {
        "full graph: every step propagates over the whole graph; softmax over all products": {},
        f"neighbour sampling: fanout {args.fanout} per layer, softmax over the batch's targets "
        f"and {args.negatives:,} sampled products": {"fanout": fanout,
                                                    "negatives": args.negatives},
    }  # fmt: skip
    rows = []
    for name, over in variants.items():

        def make(name: str = name, over: dict[str, Any] = over) -> FusionRecommender:
            model = FusionRecommender(tables, base, text=text, kge=kge, **over)
            made.setdefault(name, []).append(model)
            return model

        print(f"amazon sampling: {name}", flush=True)
        rows.append(
            _fit_and_eval(name, make, split, list(range(args.seeds)), ks=(10, 20), batch_size=1024)
        )
    epochs = {
        name: sum(m.fit_info["epoch_seconds_mean"] for m in ms) / len(ms)
        for name, ms in made.items()
    }
    cmd = " ".join(["bench/bench_fusion.py", *sys.argv[1:]])
    ndcg = [r["summary"]["ndcg@10"] for r in rows]
    return "\n".join(
        [
            "### Amazon 2018 Industrial & Scientific: full-graph training against neighbour "
            "sampling",
            "",
            f"- Measured: {_now()}",
            f"- Machine: {machine_line()}; torch threads: {torch.get_num_threads()}",
            f"- Dataset: `{AMAZON.name}` ({stats['users']:,} users, {stats['items']:,} items, "
            f"{stats['train_interactions']:,} train interactions), leave-one-out, full ranking "
            "over all items (the harness of the fusion section).",
            f"- The fused model of the fusion section (text + KGE + graph, co-occurrence blend, "
            f"similarity terms; `{base}`), seeds 0 to {args.seeds - 1} for each variant; "
            "only the training step differs (`FusionConfig.fanout`, `gnn/sampling.py`). The "
            "vectors kept after training are computed over the full graph in both.",
            "- Epoch time on CPU (mean over epochs and seeds): "
            + "; ".join(f"{name.split(':')[0]} {sec:.2f} s" for name, sec in epochs.items()),
            f"- NDCG@10, sampled against full graph: {ndcg[1][0]:.4f} ± {ndcg[1][1]:.4f} against "
            f"{ndcg[0][0]:.4f} ± {ndcg[0][1]:.4f} ({ndcg[1][0] / ndcg[0][0] - 1:+.1%}).",
            f"- Command: `.venv/bin/python {cmd}`",
            "",
            _table(rows, AMAZON_COLUMNS),
        ]
    )


def shuffled_train_order(tables: GraphTables, seed: int = 0) -> GraphTables:
    """``tables`` with each user's training interactions (``split == "train"``) in a seeded
    random order: their ``order`` values are permuted among themselves, the test rows keep
    theirs."""
    import numpy as np
    import pyarrow as pa

    inter = tables.interactions
    users = inter["user_id"].to_numpy(zero_copy_only=False)
    order = inter["order"].to_numpy().copy()
    train = np.flatnonzero(inter["split"].to_numpy(zero_copy_only=False) == "train")
    train = train[np.lexsort((order[train], users[train]))]  # by user, then position
    starts = np.flatnonzero(np.r_[True, users[train][1:] != users[train][:-1]])
    rng = np.random.default_rng(seed)
    for lo, hi in zip(starts, np.r_[starts[1:], train.size], strict=True):
        rows = train[lo:hi]
        order[rows] = rng.permutation(order[rows])
    shuffled = inter.set_column(inter.schema.get_field_index("order"), "order", pa.array(order))
    return GraphTables(
        **{**{n: tables.table(n) for n in tables.counts()}, "interactions": shuffled}
    )


def run_kgat(args: argparse.Namespace, *, control: bool = False) -> str:
    tables = read_kgat(KGAT_BOOK, show_progress=False)
    if control:
        tables = shuffled_train_order(tables, seed=0)
    split = given_split(tables, valid_fraction=0.1, seed=0)
    stats = split.stats()
    t0 = time.perf_counter()
    stop = {"eval_every": 2, "patience": 3, "valid_users": 10_000}
    models: list[tuple[str, Callable[[], Any]]] = [
        (
            "LightGCN (3 layers)",
            lambda: LightGCN(
                dim=64,
                lr=1e-2,
                reg=1e-4,
                batch_size=8192,
                max_epochs=args.kgat_epochs,
                num_layers=3,
                **stop,
            ),
        ),
        (
            "Fusion without KGE (no KG here)",
            lambda: FusionRecommender(
                tables,
                FusionConfig(
                    use_text=False,
                    use_kge=False,
                    max_epochs=args.kgat_epochs,
                    batch_size=2048,
                    **stop,
                ),
                examples_per_user=2,
            ),
        ),
    ]
    if control:
        models = [("Fusion without KGE, training items shuffled per user (seeded control)",
                   models[1][1])]  # fmt: skip
    rows = [
        _fit_and_eval(name, make, split, [0], ks=(20,), batch_size=512) for name, make in models
    ]
    lines = [
        "| model | Recall@20 | NDCG@20 | valid NDCG@10 | users | fit s | epochs best/run |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        valid = _cell(r["valid_ndcg10"]) if r["valid_ndcg10"] else "–"
        lines.append(
            f"| {r['name']} | {_cell(r['summary']['recall@20'])} | "
            f"{_cell(r['summary']['ndcg@20'])} | {valid} | {r['n_users']:,} | "
            f"{r['fit_s'][0]:.0f} | {r['epochs'] or '–'} |"
        )
    cmd = " ".join(["bench/bench_fusion.py", *sys.argv[1:]])
    control_note = [
        "- Control: each user's training interactions are put in a seeded random order "
        "(seed 0) before the split is built, so the transition edges, the co-occurrence "
        "windows and the recency of the user side see no order; the test interactions and "
        "every other setting are those of the section above. The published models (BPR-MF, "
        "LightGCN, KGAT, KGIN, KGCL) ignore the order of a training line, and KGAT's files do "
        "not say it is chronological: **this control row is the one to compare with the "
        "published numbers**; the row above measures what the line order adds.",
    ]
    return "\n".join(
        [
            "### KGAT Amazon-Book, given split: fusion without KGE vs LightGCN"
            + (", training order shuffled (control)" if control else ""),
            "",
            f"- Measured: {_now()} ({time.perf_counter() - t0:.0f} s in all)",
            f"- Machine: {machine_line()}; torch threads: {torch.get_num_threads()}",
            f"- Dataset: `{KGAT_BOOK.name}` ({stats['users']:,} users, {stats['items']:,} "
            f"items); KGAT's train/test split, 10% of each user's train rows held out for early "
            "stopping; its KG is not available here, so no KGE and no text (KGAT gives no "
            "product text).",
            "- Published Recall@20 on this split: BPR-MF 0.1244, LightGCN 0.1398, KGCL 0.1496.",
            f"- At most {args.kgat_epochs} epochs each, one seed (an epoch over 600k pairs is "
            "slow on 2 CPU cores): under-trained lower bounds.",
            *(control_note if control else []),
            f"- Command: `.venv/bin/python {cmd}`",
            "",
            "\n".join(lines),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part",
        choices=["amazon", "sampling", "kgat", "kgat-control", "both"],
        default="amazon",
    )
    parser.add_argument("--fanout", default="5,2", help="sampling: neighbours per layer")
    parser.add_argument("--negatives", type=int, default=2048, help="sampling: negatives")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--ablation-seeds", type=int, default=1)
    parser.add_argument(
        "--mf-baselines", action="store_true",
        help="also re-run BPR-MF and LightGCN (else see the baselines section)",
    )  # fmt: skip
    parser.add_argument("--kge-model", default="rotate", choices=["transe", "rotate"])
    parser.add_argument("--kge-dim", type=int, default=64)
    parser.add_argument("--kgat-epochs", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="run only models whose name contains these")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    # Each part owns its BENCHMARKS.md section, so running one part keeps the other's table.
    sections = []
    if args.part in ("amazon", "both"):
        sections.append(("fusion", "Fusion GNN: Amazon Industrial & Scientific", run_amazon(args)))
    if args.part in ("kgat", "both"):
        sections.append(("fusion-kgat", "Fusion GNN: KGAT Amazon-Book", run_kgat(args)))
    if args.part == "sampling":
        title = "Fusion GNN: neighbour sampling against full-graph training"
        sections.append(("fusion-sampling", title, run_sampling(args)))
    if args.part == "kgat-control":
        title = "Fusion GNN: KGAT Amazon-Book, training order shuffled (control)"
        sections.append(("fusion-kgat-control", title, run_kgat(args, control=True)))
    for key, title, body in sections:
        print(body)
        if not args.no_write and not args.only:
            write_section(key, title, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
