"""``kgrec train`` and ``kgrec evaluate``: the fusion GNN from the command line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnn.distributed import Ranks
    from gnn.model import FusionConfig

__all__ = ["register"]

#: ``kgrec train``'s options are generated from this dataclass (imported when used: torch).
FUSION_CONFIG = "gnn.model:FusionConfig"


def _tables(args: argparse.Namespace) -> Any:
    from ingest.tables import GraphTables

    if args.tables:
        return GraphTables.load(args.tables)
    from ingest.neo4j_export import export_graph
    from kg.cli import resolve_settings
    from kg.neo4j.driver import open_driver

    settings = resolve_settings(args)
    with open_driver(settings) as driver:
        return export_graph(driver, database=settings.database, show_progress=not args.no_progress)


def _config(args: argparse.Namespace) -> FusionConfig:
    """The fusion model's configuration from ``kgrec train``'s options (those not given keep
    :class:`~gnn.model.FusionConfig`'s defaults)."""
    from kg.cli_options import config_from_args

    extra: dict[str, Any] = {"use_kge": args.kge is not None}
    if not args.similarity:
        extra["similarity_grid"] = (0.0,)
    return config_from_args(FUSION_CONFIG, args, **extra)


def cmd_train(args: argparse.Namespace) -> int:
    from kg.cli import CommandError

    try:
        config = _config(args)
    except ValueError as exc:  # a bad option value, e.g. --dim 0
        raise CommandError(str(exc)) from None
    if args.warm_start is not None and not (args.warm_start / "config.json").is_file():
        raise CommandError(f"--warm-start {args.warm_start}: not a run folder of kgrec train")
    if args.nproc < 1:
        raise CommandError(f"--nproc must be at least 1, got {args.nproc}")
    from gnn.distributed import join, leave, torchrun_command

    if "WORLD_SIZE" not in os.environ:  # not started by torchrun
        if args.nproc == 1:
            return _train(args, config, None)  # one process: no torch.distributed at all
        return subprocess.run(torchrun_command(args.nproc, args.argv), check=False).returncode
    ranks = join(os.environ, config.device)  # None when torchrun started one process
    try:
        return _train(args, config, ranks)
    finally:
        leave()


def _train(args: argparse.Namespace, config: FusionConfig, ranks: Ranks | None) -> int:
    """Train in this process (rank 0 or alone prints; the other ranks are silent)."""
    from gnn.pipeline import make_split, train_fusion
    from gnn.warm_start import WarmStartError
    from kg.cli import CommandError
    from kg.embeddings.artifact import KGEmbeddings

    quiet = ranks is not None and not ranks.main
    tables = _tables(args)
    split = make_split(tables, args.protocol)
    stats = split.stats()
    if not quiet:
        print(
            f"split {split.meta['protocol']}: {stats['users']:,} users, {stats['items']:,} items, "
            f"{stats['train_interactions']:,} train interactions, {stats['valid_users']:,} valid "
            f"users, {stats['test_users']:,} test users"
        )
    try:
        result = train_fusion(
            tables,
            args.out,
            config,
            split=split,
            kge=None if args.kge is None else KGEmbeddings.load(args.kge),
            text_cache=args.text_cache,
            text_model=args.text_model,
            seed=args.seed,
            show_progress=not (args.no_progress or quiet),
            ranks=ranks,
            warm_start=args.warm_start,
        )
    except WarmStartError as exc:
        raise CommandError(f"--warm-start: {exc}") from None
    if quiet:
        return 0
    fit = result.model.fit_info
    if fit.get("warm_start"):
        w = fit["warm_start"]
        print(
            f"warm start from {w['from']}: {w['tensors']} shared weights and {w['rows']:,} "
            f"node rows copied, {w['new_rows']:,} new node rows"
        )
    on = fit["device"] if ranks is None else f"{ranks.world} processes on {fit['device']}"
    print(
        f"trained {fit['epochs_run']} epochs (best {fit['best_epoch']}) in {fit['seconds']:.1f} s "
        f"on {on}, {fit['epoch_seconds_mean']:.2f} s/epoch; co-occurrence blend "
        f"{fit['blend_mode']} {fit['blend']}, similarity weights "
        f"{fit.get('similarity_weights') or 'none'} (chosen on validation)"
    )
    _print_metrics(result.metrics)
    print(f"model: {result.folder} (training curve: {result.folder / 'training_curve.png'})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gnn.evaluate import evaluate
    from gnn.pipeline import make_split
    from gnn.scoring import FusionScorer

    model = FusionScorer.load(args.model)
    tables = _tables(args)
    split = make_split(tables, args.protocol)
    if not model.matches(split):
        from kg.cli import CommandError

        raise CommandError(f"{args.model} was trained on other users/products than these tables")
    ks = tuple(int(k) for k in args.ks.split(","))
    out = {}
    for on in ("valid", "test"):
        if split.eval_users(on).size:
            r = evaluate(model, split, on=on, ks=ks, show_progress=not args.no_progress)
            out[on] = r.metrics
            out.setdefault("n_users", {})[on] = r.n_users
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        _print_metrics(out)
    return 0


def _print_metrics(metrics: dict[str, Any]) -> None:
    for on in ("valid", "test"):
        if on not in metrics:
            continue
        m = metrics[on]
        cells = "  ".join(f"{k} {v:.4f}" for k, v in sorted(m.items()))
        print(f"{on} ({metrics['n_users'][on]:,} users): {cells}")


def _source_args(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    p.add_argument("--tables", type=Path, help="read canonical tables here instead of Neo4j")
    p.add_argument(
        "--protocol", default="auto", choices=["auto", "leave_one_out", "given"],
        help="auto: the interactions' split column when filled, else leave-one-out",
    )  # fmt: skip
    if device:
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--home")
    p.add_argument("--port", type=int)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``evaluate`` to the ``kgrec`` parser."""
    from kg.cli_options import Opt, add_config_options

    p = sub.add_parser(
        "train",
        help="train the fusion GNN (text + KG embeddings + interactions) and evaluate it",
        description="Train on the graph exported from Neo4j (or --tables): BERT text vectors "
        "(cached) and KG embeddings (--kge, from kgrec embed) feed a heterogeneous GNN trained "
        "on the interactions, with early stopping on validation NDCG@10. Saves config.json, "
        "model.safetensors, id_maps.json, metrics.json and training_curve.png in --out.",
    )
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--kge", type=Path, help="KG-embedding artifact folder (omit: no KGE input)")
    p.add_argument("--text-model", type=Path, help="local BERT folder (default all-MiniLM-L6-v2)")
    p.add_argument(
        "--text-cache", type=Path, help="text vector cache (default ~/.kgrec/cache/text)"
    )
    add_config_options(
        p,
        FUSION_CONFIG,
        Opt("use_text", "--text", "BERT text features"),
        Opt("use_kg_edges", "--kg-edges", "propagate over category, brand and KG edges"),
        Opt("dim", help="hidden and output size"),
        Opt("num_layers", "--layers", "message-passing rounds"),
        Opt("history_len", help="last history items the user vector pools over"),
        Opt("lr", help="Adam learning rate"),
        Opt("batch_size", help="training examples per step"),
        Opt("max_epochs", "--epochs", "most epochs"),
        Opt("patience", help="validations without improvement before stopping"),
        Opt("eval_every", help="epochs between validations"),
        Opt("similarity_dim", help="PCA size of each feature's similarity vectors (smaller: "
            "faster queries)"),
        Opt("device", help="auto (CUDA when present), cpu or cuda"),
        Opt("fanout", help="mini-batch training over sampled neighbourhoods, for graphs whose "
            "full propagation does not fit: neighbours per node and edge type at each layer, "
            "e.g. 10,5; empty: the full graph"),
        Opt("negatives", help="with --fanout, products drawn per step as the softmax's "
            "negatives"),
        types_={"fanout": str, "negatives": int, "use_text": bool, "use_kg_edges": bool, "dim": int, "num_layers": int,
                "history_len": int, "lr": float, "batch_size": int, "max_epochs": int,
                "patience": int, "eval_every": int, "similarity_dim": int, "device": str},
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument(
        "--warm-start", type=Path, metavar="RUN",
        help="start from the weights of this run folder (same settings; new products and "
        "nodes get fresh rows) instead of random ones, then train and choose the final-score "
        "weights on validation as usual",
    )  # fmt: skip
    p.add_argument(
        "--nproc", type=int, default=1,
        help="data-parallel processes on this machine, started through torchrun (gloo on "
        "CPU, NCCL on GPU); each steps on --batch-size of its share of the examples "
        "(default 1: no torch.distributed)",
    )  # fmt: skip
    p.add_argument(
        "--similarity", action=argparse.BooleanOptionalAction, default=True,
        help="text / KGE similarity terms in the final score, weights chosen on validation "
        "(default on; off: faster queries, lower quality)",
    )  # fmt: skip
    _source_args(p, device=False)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained fusion model (full ranking, Recall/NDCG/Hit@K, MRR, coverage)",
    )
    p.add_argument("--model", type=Path, required=True, help="run folder of kgrec train")
    p.add_argument("--ks", default="10,20", help="comma-separated cutoffs")
    p.add_argument("--json", action="store_true", help="print JSON")
    _source_args(p)
    p.set_defaults(func=cmd_evaluate)
