"""``kgrec ingest amazon|recbole|kgat|csv|synthetic`` and ``kgrec export``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.tables import GraphTables

__all__ = ["register"]


def _read(args: argparse.Namespace) -> GraphTables:
    from ingest.rejects import Rejects

    rejects = Rejects(on_error="skip" if args.rejects else "raise")
    show = not args.no_progress
    if args.source in ("amazon", "recbole"):
        from ingest.sources.amazon import read_amazon
        from ingest.sources.recbole import read_recbole

        reader = read_amazon if args.source == "amazon" else read_recbole
        tables = reader(
            args.folder,
            args.name,
            category_separator=args.category_separator,
            rejects=rejects,
            show_progress=show,
        )
    elif args.source == "kgat":
        from ingest.sources.kgat import read_kgat

        tables = read_kgat(args.folder, rejects=rejects, show_progress=show)
    elif args.source == "tables":
        from ingest.tables import GraphTables

        tables = GraphTables.load(args.folder).validate()
    elif args.source == "csv":
        from ingest.sources.csv import read_csv

        tables = read_csv(
            args.products, args.interactions, args.categories, rejects=rejects, show_progress=show
        )
    else:
        from ingest.sources.synthetic import SyntheticConfig, generate_shop

        if args.config is not None:
            from ingest.sources.synthetic_file import read_synthetic_config

            config = read_synthetic_config(args.config, seed=args.seed)
        else:
            config = SyntheticConfig.preset(args.preset or "demo", seed=args.seed or 0)
        tables = generate_shop(config, show_progress=show)
    if "category_separator" in tables.meta:
        how = "given" if args.category_separator else "the one most category strings use"
        print(f"category separator: {tables.meta['category_separator']!r} ({how})")
    if args.rejects:
        rejects.write(args.rejects)
        print(f"rejected rows: {rejects.count} -> {args.rejects} {json.dumps(rejects.summary())}")
    return tables


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.bulk:
        _check_bulk(args)
    if args.source == "synthetic" and args.config is None:
        from ingest.sources.synthetic import STREAMED_PRESETS

        if args.preset in STREAMED_PRESETS:
            return _ingest_streamed(args)
    tables = _read(args)
    _print_counts(tables.counts())
    if args.out:
        folder = tables.save(args.out)
        print(f"tables written to {folder} (fingerprint {tables.fingerprint()[:16]})")
        return 0
    if args.bulk:
        return _bulk(args, tables)
    return _load(args, tables)


def _print_counts(counts: dict[str, int]) -> None:
    print("tables: " + ", ".join(f"{k}={v:,}" for k, v in counts.items() if v))


def _ingest_streamed(args: argparse.Namespace) -> int:
    """A streamed synthetic preset (``xl``): generated into ``--out`` or a temporary folder in
    bounded memory; a bulk load reads that folder batch by batch too."""
    import tempfile

    from ingest.sources.synthetic import SyntheticConfig
    from ingest.sources.synthetic_stream import write_shop
    from ingest.tables import GraphTables

    config = SyntheticConfig.preset(args.preset, seed=args.seed or 0)
    show = not args.no_progress
    if args.out:
        shop = write_shop(config, args.out, show_progress=show)
        _print_counts(shop.counts)
        print(f"tables written to {shop.folder} in {shop.seconds:.1f} s (streamed)")
        return 0
    with tempfile.TemporaryDirectory(prefix="kgrec-synthetic-") as tmp:
        shop = write_shop(config, Path(tmp) / "tables", show_progress=show)
        _print_counts(shop.counts)
        if args.bulk:
            return _bulk(args, shop.folder)
        return _load(args, GraphTables.load(shop.folder))


def _load(args: argparse.Namespace, tables: GraphTables) -> int:
    """Merge ``tables`` into Neo4j over Bolt."""
    from ingest.neo4j_writer import graph_counts, write_graph
    from kg.cli import resolve_settings
    from kg.neo4j.driver import open_driver

    settings = resolve_settings(args)
    with open_driver(settings) as driver:
        report = write_graph(
            driver,
            tables,
            database=settings.database,
            batch_size=args.batch_size,
            workers=args.workers,
            show_progress=not args.no_progress,
        )
        counts_now = graph_counts(driver, database=settings.database)
    print(
        f"loaded into {settings.uri} in {report.total_seconds:.1f} s: "
        f"{report.node_rows:,} node rows, {report.rel_rows:,} relationship rows"
    )
    print("graph now: " + json.dumps(counts_now))
    return 0


def _check_bulk(args: argparse.Namespace) -> None:
    """Refuse ``--bulk`` before reading anything where it cannot work."""
    from kg.cli import CommandError
    from kg.neo4j.settings import settings_from_env

    if args.out:
        raise CommandError("--bulk loads Neo4j and --out writes tables only: give one of them")
    external = settings_from_env()
    if external is not None:
        raise CommandError(
            f"--bulk writes the local Neo4j's store files, and NEO4J_URI is set ({external.uri}): "
            "load without --bulk to merge over Bolt, or unset NEO4J_URI to bulk-load the local one"
        )


def _bulk(args: argparse.Namespace, tables: GraphTables | Path) -> int:
    """``--bulk``: the offline importer into the local Neo4j's empty database."""
    from kg.cli import CommandError, _local
    from kg.neo4j.bulk import DatabaseNotEmptyError, bulk_load
    from kg.neo4j.importer import BulkImportError

    server = _local(args)
    try:
        report = bulk_load(server, tables, show_progress=not args.no_progress)
    except (DatabaseNotEmptyError, BulkImportError) as exc:
        raise CommandError(str(exc)) from None
    secs = report.seconds
    print(
        f"bulk-loaded into {server.home} in {secs['total']:.1f} s: {report.node_rows:,} node rows, "
        f"{report.relationship_rows:,} relationship rows; importer {secs['import']:.1f} s "
        f"({report.rate('import'):,.0f} relationships/s), CSV {secs['csv']:.1f} s, restart "
        f"{secs['stop'] + secs['start']:.1f} s, constraints {secs['schema']:.1f} s"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ingest.neo4j_export import export_graph
    from kg.cli import resolve_settings
    from kg.neo4j.driver import open_driver

    settings = resolve_settings(args)
    with open_driver(settings) as driver:
        tables = export_graph(
            driver, database=settings.database, show_progress=not args.no_progress
        )
    folder = tables.save(args.out)
    counts = {k: v for k, v in tables.counts().items() if v}
    print(f"exported to {folder}: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, help="write canonical tables (Parquet) here; no database")
    p.add_argument(
        "--rejects",
        type=Path,
        help="skip bad rows and report them to this JSON-lines file (default: stop at the first)",
    )
    p.add_argument("--batch-size", type=int, default=10_000, help="rows per transaction")
    p.add_argument(
        "--workers", type=_positive, default=4, help="write transactions at once (default 4)"
    )
    p.add_argument(
        "--bulk",
        action="store_true",
        help="first load of an EMPTY local database with Neo4j's offline importer "
        "(stops the local Neo4j, imports, starts it again)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--home", help="local Neo4j home, when NEO4J_URI is not set")
    p.add_argument("--port", type=int, help="local Neo4j Bolt port")


def _category_separator(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--category-separator",
        choices=(",", ", ", " > "),  # ingest.sources.category_paths.SEPARATORS (no pyarrow here)
        help="how category paths are joined: ',' (Amazon 2018), ', ' (Amazon 2014) or ' > ' "
        "(default: the one most category strings use; see ingest/sources/category_paths.py)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ingest`` and ``export`` to the ``kgrec`` parser."""
    ingest = sub.add_parser(
        "ingest",
        help="read shop data and load it into Neo4j (or --out tables)",
        description="Read a source into canonical tables, validate, and merge into Neo4j. "
        "Writes go to NEO4J_URI when set, else to the running local Neo4j.",
    )
    src = ingest.add_subparsers(dest="source", required=True, metavar="SOURCE")
    p = src.add_parser("amazon", help="processed Amazon JSON: <Name>.item.json + <Name>.inter.json")
    p.add_argument("folder", type=Path)
    p.add_argument("--name", help="file prefix, e.g. Scientific (default: the only one)")
    _category_separator(p)
    _common(p)
    p = src.add_parser("recbole", help="RecBole atomic files: <name>.inter, optional <name>.item")
    p.add_argument("folder", type=Path)
    p.add_argument("--name", help="dataset name, the file prefix (default: the only *.inter)")
    _category_separator(p)
    _common(p)
    p = src.add_parser("kgat", help="KGAT layout: train.txt, test.txt, kg_final.txt, *_list.txt")
    p.add_argument("folder", type=Path)
    _common(p)
    p = src.add_parser("csv", help="products.csv, interactions.csv, optional categories.csv")
    p.add_argument("--products", type=Path, required=True)
    p.add_argument("--interactions", type=Path, required=True)
    p.add_argument("--categories", type=Path)
    _common(p)
    p = src.add_parser("tables", help="a canonical tables folder (ingest --out, kgrec export)")
    p.add_argument("folder", type=Path)
    _common(p)
    p = src.add_parser("synthetic", help="a seeded synthetic shop")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument(
        "--preset",
        choices=["tiny", "demo", "bench", "large", "xl"],
        help="a named shop (default demo); xl is generated streamed, in bounded memory",
    )
    shape.add_argument(
        "--config", type=Path, help="a TOML file of SyntheticConfig settings (and 'preset =')"
    )
    p.add_argument("--seed", type=int, help="the seed (default 0, or the config file's)")
    _common(p)
    ingest.set_defaults(func=cmd_ingest)

    export = sub.add_parser("export", help="stream the graph from Neo4j into canonical tables")
    export.add_argument("--out", type=Path, required=True, help="output folder")
    export.add_argument("--no-progress", action="store_true")
    export.add_argument("--home")
    export.add_argument("--port", type=int)
    export.set_defaults(func=cmd_export)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: kgrec ingest ...")
