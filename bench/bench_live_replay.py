"""Live replay on Amazon 2018 Industrial & Scientific (issue 21): what freshness is worth.

Protocol. Leave-one-out as in the fusion section (per user by ``order``: last item test,
second-to-last validation, the rest train). The model is the fusion section's configuration
fitted on the train prefixes, the validation items used only to stop and blend (the cold-start
section's ``full`` run, reused from ``--work`` or fitted there). It is served from a snapshot
of the graph holding only the train prefixes; then every validation item is sent as an
interaction event, in time order, through :class:`kg.query.live.LiveState` (the code
``kgrec serve --events`` runs). Evaluated: every user with a validation and a test item; full
ranking over all products by ``Recommender.recommend`` (default score weights), the user's
history excluded; NDCG@10 and Recall@10 (= Hit@10) of the test item. Rows:

1. without the events: the snapshot of train prefixes (the validation item unknown);
2. live: the same snapshot after the validation items as events;
3. reloaded: the model served from a snapshot that already holds the validation items (what a
   restart on a fresh export gives, without retraining);
4. retrained: the same configuration and seed fitted on the train prefixes plus the validation
   items, served from that snapshot. With the validation items in training there is nothing
   left to stop or choose on, so it runs the epochs the train-only fit found best and keeps that
   fit's final-score weights (blend mode, β, similarity weights): the usual refit on train +
   validation once the choices are made.

    .venv/bin/python bench/bench_live_replay.py --work runs/cold-start
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow as pa
import pyarrow.compute as pc
from _report import machine_line, write_section
from bench_baselines import AMAZON
from bench_cold_start import (
    _replace,
    add_fit_arguments,
    as_leave_one_out,
    fitted,
    metrics,
    recommender_tops,
    with_roles,
)
from bench_fusion import _kge_artifact

from gnn.features import kge_features, text_features
from gnn.fusion_io import FusionArrays
from gnn.model import FusionConfig
from gnn.pipeline import default_text_cache
from gnn.splits import given_split, leave_one_out
from ingest import schema
from ingest.events import AppliedEvent
from ingest.sources.amazon import read_amazon
from ingest.tables import GraphTables
from kg.embeddings.artifact import KGEmbeddings
from kg.query import Recommender
from kg.query.live import LiveState
from kg.query.scoring import ScoreWeights


def _only(tables: GraphTables, roles: tuple[str, ...]) -> GraphTables:
    """``tables`` whose interactions are those of ``roles``."""
    inter = tables.interactions
    keep = pc.is_in(inter["split"], value_set=pa.array(list(roles), pa.string()))
    return _replace(tables, interactions=inter.filter(keep))


def retrained(
    folder: Path,
    tables: GraphTables,
    config: FusionConfig,
    features: dict[str, Any],
    feature_info: dict[str, Any],
    seed: int,
    fit: dict[str, Any],
) -> tuple[Path, dict[str, Any]]:
    """Row 4's model (module docstring): ``config`` fitted with the validation items as training
    data for the train-only fit's best epoch count, with that fit's final-score weights; reused
    from ``folder`` when it holds this run."""
    inter = tables.interactions
    roles = inter["split"]
    moved = pc.if_else(pc.equal(roles, "valid"), "train", roles)
    tables = _replace(tables, interactions=inter.set_column(
        inter.schema.get_field_index("split"), "split", moved))  # fmt: skip
    split = as_leave_one_out(given_split(tables))
    config = replace(config, max_epochs=int(fit["best_epoch"]))
    final = {k: fit[k] for k in ("blend", "blend_mode", "similarity_weights")}
    return fitted(folder, tables, split, config, features, feature_info, seed, final)


def validation_events(tables: GraphTables) -> list[AppliedEvent]:
    """Every validation interaction as an interaction event, in time order (ties by user)."""
    rows = _only(tables, ("valid",)).interactions.to_pylist()
    rows.sort(key=lambda r: (r["ts"] or 0, r["user_id"]))
    return [
        AppliedEvent(
            seq,
            schema.InteractionEvent(
                f"valid-{r['user_id']}",
                r["user_id"],
                r["product_id"],
                "purchase",
                int(r["ts"] or 0),
                float(r["weight"] or 1.0),
            ),
            order=r["order"],
        )
        for seq, r in enumerate(rows, start=1)
    ]


def run(args: argparse.Namespace) -> str:
    source = read_amazon(AMAZON, show_progress=False)
    kge_dir = _kge_artifact(source, args.kge_model, args.kge_dim)
    tables = with_roles(source)
    split = leave_one_out(tables)
    text, text_info = text_features(tables, split.item_ids, default_text_cache())
    kge, kge_info = kge_features(KGEmbeddings.load(kge_dir), split.item_ids)
    config = FusionConfig(max_epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr,
                          patience=args.patience)  # fmt: skip
    features, info = {"text": text, "kge": kge}, {"text": text_info, "kge": kge_info}
    run_dir, fit = fitted(Path(args.work) / f"full-s{args.seed}", tables, split, config,
                          features, info, args.seed)  # fmt: skip
    again_dir, again_fit = retrained(Path(args.work) / f"retrained-s{args.seed}", tables,
                                     config, features, info, args.seed, fit)  # fmt: skip

    ids = split.item_ids
    users = [u for u in range(split.n_users) if split.valid[u].size and split.test[u].size]
    user_ids = [split.user_ids[u] for u in users]
    targets = [ids[int(split.test[u][0])] for u in users]
    arrays = FusionArrays.load(run_dir)
    weights = ScoreWeights()

    def tops(rec: Recommender) -> list[list[str]]:
        return [[r.product_id for r in rec.recommend(u, k=10)] for u in user_ids]

    rows: dict[str, dict[str, Any]] = {}
    snapshot = _only(tables, ("train",))
    rec = Recommender(arrays, snapshot, weights=weights)
    rows["before"] = metrics(tops(rec), targets)
    print(f"without the events: {rows['before']}", flush=True)
    events = validation_events(tables)
    t0 = time.perf_counter()
    touched = LiveState(rec).apply(events)
    apply_s = time.perf_counter() - t0
    rows["live"] = metrics(tops(rec), targets)
    print(f"live: {rows['live']} ({touched.applied} applied in {apply_s:.1f} s)", flush=True)
    with_valid = _only(tables, ("train", "valid"))
    reloaded = Recommender(arrays, with_valid, weights=weights)
    rows["reloaded"] = metrics(tops(reloaded), targets)
    print(f"reloaded: {rows['reloaded']}", flush=True)
    again = Recommender(FusionArrays.load(again_dir), with_valid, weights=weights)
    rows["retrained"] = metrics(tops(again), targets)
    print(f"retrained: {rows['retrained']}", flush=True)
    # the same histories through the evaluation's own path (history given as product ids)
    histories = [[ids[i] for i in h] for h in (split.history("test")[u] for u in users)]
    rows["given"] = metrics(recommender_tops(reloaded, histories), targets)

    names = {
        "before": "Without the events (snapshot of the train prefixes)",
        "live": "Live: the validation items sent as events",
        "reloaded": "Reloaded: a snapshot that holds the validation items (no retraining)",
        "retrained": "Retrained: fitted with the validation items as training data",
    }
    lines = [
        f"- Machine: {machine_line()}",
        f"- Data: Amazon 2018 Industrial & Scientific (`{AMAZON}`), leave-one-out; "
        f"{len(users):,} users with a validation and a test item; {len(events):,} validation "
        f"items sent as interaction events in time order ({touched.applied:,} applied in "
        f"{apply_s:.1f} s). Full ranking over all {len(ids):,} products, history excluded.",
        f"- Model: the fusion configuration of the fusion section, seed {args.seed}, fitted on "
        f"the train prefixes (best epoch {fit.get('best_epoch')}); `{run_dir}`; default score "
        "weights. Retrained: the same configuration and seed fitted on the train prefixes plus "
        f"the validation items for {again_fit.get('epochs_run')} epochs (the train-only fit's "
        f"best) with its final-score weights (`{again_fit.get('blend_mode')}`, "
        f"β {again_fit.get('blend')}, similarity {again_fit.get('similarity_weights')}); "
        f"`{again_dir}`.",
        f"- Command: `.venv/bin/python bench/bench_live_replay.py --work {args.work}`",
        "",
        "| state | test NDCG@10 | Recall@10 | users |",
        "|---|---:|---:|---:|",
    ]
    for key, name in names.items():
        r = rows[key]
        lines.append(f"| {name} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['users']:,} |")
    gain = rows["live"]["ndcg@10"] / max(rows["before"]["ndcg@10"], 1e-12)
    versus = rows["live"]["ndcg@10"] / max(rows["retrained"]["ndcg@10"], 1e-12)
    lines += [
        "",
        f"Freshness: the live state's NDCG@10 is {gain:.2f}x that of the same model without "
        f"the events, and {versus:.2f}x that of the model retrained with them. The reloaded "
        "row ranks the same histories as the live one; what differs is that the live co-occurrence counts grew with the validation items, while the "
        f"reloaded model keeps those it was trained with (the evaluation's own path on the "
        f"reloaded model: NDCG@10 {rows['given']['ndcg@10']:.4f}).",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fit_arguments(parser)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    body = run(args)
    print(body)
    if not args.no_write:
        write_section("live-replay", "Live replay: Amazon Industrial & Scientific", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
