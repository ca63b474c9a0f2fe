"""``kgrec embed``: train TransE/RotatE on the graph, evaluate, save, write back to Neo4j."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]

#: ``kgrec embed``'s options are generated from this dataclass (imported when used).
EMBED_CONFIG = "kg.embeddings.train:EmbedConfig"


def cmd_embed(args: argparse.Namespace) -> int:
    from ingest.tables import GraphTables
    from kg.cli import CommandError
    from kg.cli_options import config_from_args
    from kg.embeddings.pipeline import embed_graph
    from kg.embeddings.train import CheckpointMismatchError

    try:
        config = config_from_args(EMBED_CONFIG, args)
    except ValueError as exc:  # a bad option value, e.g. --dim 0
        raise CommandError(str(exc)) from None
    relations = [r.strip() for r in args.relations.split(",") if r.strip()]
    show = not args.no_progress
    settings = None
    if args.tables:
        tables = GraphTables.load(args.tables)
        print(f"read tables from {args.tables}")
    else:
        from ingest.neo4j_export import export_graph
        from kg.cli import resolve_settings
        from kg.neo4j.driver import open_driver

        settings = resolve_settings(args)
        with open_driver(settings) as driver:
            tables = export_graph(driver, database=settings.database, show_progress=show)
        print(f"exported the graph from {settings.uri}")
    try:
        emb = embed_graph(
            tables,
            config,
            args.out,
            relations=relations,
            restart=args.restart,
            on_resume=lambda epoch: print(
                f"resuming from epoch {epoch} ({args.out / 'checkpoint'})"
            ),
            show_progress=show,
        )
    except CheckpointMismatchError as exc:
        raise CommandError(
            f"{exc}; train into a fresh --out, or pass --restart to discard the checkpoint"
        ) from None
    train = emb.config["training"]
    print(
        f"{config.model} dim {config.dim}: {train['epochs_trained']} epochs (best {train['best_epoch']}), "
        f"{train['train_seconds']:.1f} s, {train['triples_per_second']:,.0f} triples/s on {train['device']}"
    )
    _print_metrics(emb.config["metrics"])
    print(f"artifact: {Path(args.out)}")
    if args.write_back:
        from kg.cli import resolve_settings
        from kg.embeddings.writeback import write_embeddings
        from kg.neo4j.driver import open_driver

        settings = settings or resolve_settings(args)
        with open_driver(settings) as driver:
            written = write_embeddings(driver, emb, database=settings.database, show_progress=show)
        print(f"wrote vectors to Neo4j (property kge, indexes <label>_kge): {json.dumps(written)}")
    return 0


def _print_metrics(metrics: dict) -> None:
    rows = [("all", metrics["test"]), *sorted(metrics["test_per_relation"].items())]
    print(f"{'test triples':<28} {'n':>7} {'MRR':>7} {'H@1':>7} {'H@3':>7} {'H@10':>7}")
    for name, m in rows:
        print(
            f"{name:<28} {m['n']:>7} {m['mrr']:>7.3f} {m['hits_at_1']:>7.3f} "
            f"{m['hits_at_3']:>7.3f} {m['hits_at_10']:>7.3f}"
        )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``embed`` to the ``kgrec`` parser."""
    from kg.cli_options import Opt, add_config_options

    p = sub.add_parser(
        "embed",
        help="train KG embeddings (PyKEEN TransE/RotatE), evaluate, save, write back",
        description="Train on the graph exported from Neo4j (or --tables), evaluate filtered "
        "link prediction on held-out triples, save safetensors + JSON, and write the vectors "
        "back to Neo4j with a vector index per label. Re-running with the same --out resumes.",
    )
    add_config_options(
        p,
        EMBED_CONFIG,
        Opt("model", help="transe or rotate"),
        Opt("dim", help="embedding dimension (RotatE: complex, stored as 2 x dim reals)"),
        Opt("epochs", help="most epochs"),
        Opt("batch_size", help="positive triples per batch"),
        Opt("lr", help="Adam learning rate"),
        Opt("num_negs_per_pos", "--negs", "negatives per positive"),
        Opt("seed", help="seed of initialisation, negative sampling and the triple split"),
        Opt("eval_every", help="validate/checkpoint every N epochs"),
        Opt("patience", help="validations without gain before stopping"),
        Opt("device", help="auto (CUDA when present), cpu or cuda"),
        types_={"model": str, "dim": int, "epochs": int, "batch_size": int, "lr": float,
                "num_negs_per_pos": int, "seed": int, "eval_every": int, "patience": int,
                "device": str},
    )  # fmt: skip
    p.add_argument(
        "--relations",
        default="IN_CATEGORY,SUBCATEGORY_OF,MADE_BY,KG",
        help="comma-separated: IN_CATEGORY, SUBCATEGORY_OF, MADE_BY, KG, INTERACTED, CO_INTERACTED",
    )
    p.add_argument("--tables", type=Path, help="read canonical tables here instead of Neo4j")
    p.add_argument("--out", type=Path, required=True, help="artifact folder")
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard a checkpoint in --out (of other data or settings) and train from scratch",
    )
    p.add_argument(
        "--write-back", action=argparse.BooleanOptionalAction, default=True,
        help="write vectors and indexes to Neo4j (default on)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--home")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_embed)
