"""``kgrec related | recommend | cross-category | search | explain | serve | precompute |
write-back``: the
query layer from the command line. Heavy libraries are imported inside the commands only."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kg.query import GraphPath, Recommendation, Recommender
    from kg.query.answers import AnswerStore
    from kg.query.feed import EventFeed
    from kg.serve_events import EventsConfig

__all__ = ["register"]

#: The approximate search's settings (imported only when used: its module needs scipy).
_APPROXIMATE = "kg.query.candidates:ApproximateSearch"


# ---------------------------------------------------------------------------- helpers
def _recommender(args: argparse.Namespace) -> Recommender:
    from kg.cli_options import config_from_args
    from kg.query import Recommender

    approximate = None
    if getattr(args, "approximate", False):
        try:
            approximate = config_from_args(_APPROXIMATE, args)
        except ValueError as exc:
            raise _fail(f"{exc} (--n-lists, --n-probe, --n-probe-user)") from exc
    if args.tables is not None:
        return Recommender.load(args.model, args.tables, approximate=approximate)
    from kg.cli import resolve_settings

    settings = resolve_settings(argparse.Namespace(home=args.home, port=args.neo4j_port))
    return Recommender.load(
        args.model,
        neo4j=settings,
        show_progress=not args.no_progress,
        approximate=approximate,
    )


def _fail(message: str) -> SystemExit:
    """A one-line error, exit status 1. (SystemExit rather than kg.cli.CommandError, which
    ``python -m kg.cli`` would not catch: there kg.cli runs as ``__main__``.)"""
    return SystemExit(f"kgrec: error: {message}")


def _user(args: argparse.Namespace) -> str | list[str]:
    if (args.user is None) == (args.products is None):
        raise _fail("give either a USER_ID or --products a,b,c (a new user)")
    if args.products is not None:
        return [p.strip() for p in args.products.split(",") if p.strip()]
    return str(args.user)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Unknown ids and bad values (k, level, mismatched tables) become one-line errors."""
    from kg.query import UnknownIdError

    try:
        yield
    except (UnknownIdError, ValueError) as exc:
        raise _fail(str(exc)) from exc


def _run(args: argparse.Namespace, query: Any) -> Any:
    """Load the recommender and run ``query(rec)``."""
    with _one_line_errors():
        return query(_recommender(args))


def _cut(text: str | None, width: int) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_results(results: list[Recommendation], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return
    if not results:
        print("no results")
        return
    width = max(len(r.product_id) for r in results)
    print(f"{'rank':>4}  {'product':<{width}}  {'score':>7}  {'title':<40}  reason")
    for r in results:
        print(
            f"{r.rank:>4}  {r.product_id:<{width}}  {r.score:>7.4f}  {_cut(r.title, 40):<40}  "
            f"{r.reason}"
        )
        if r.path is not None:
            print(f"{'':>4}  path: {r.path}")


def _print_paths(paths: list[GraphPath], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps([p.to_dict() for p in paths], indent=2))
        return
    if not paths:
        print("no path of at most 5 relationships links them")
    for p in paths:
        print(f"{p.weight:.4f}  {p.kind:<20}  {p}")


# --------------------------------------------------------------------------- commands
def cmd_related(args: argparse.Namespace) -> int:
    exclude = [p for p in (args.exclude or "").split(",") if p]
    results = _run(
        args,
        lambda rec: rec.related(
            args.product,
            args.k,
            same_category=args.same_category,
            exclude=exclude,
            paths=args.paths,
        ),
    )
    _print_results(results, args)
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    user = _user(args)
    results = _run(
        args,
        lambda rec: rec.recommend(
            user,
            args.k,
            exclude_seen=args.exclude_seen,
            categories=args.category,
            paths=args.paths,
        ),
    )
    _print_results(results, args)
    return 0


def cmd_cross_category(args: argparse.Namespace) -> int:
    user = _user(args)
    results = _run(args, lambda rec: rec.cross_category(user, args.k, level=args.level))
    _print_results(results, args)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    user: str | list[str] | None = None
    if args.user is not None and args.products is not None:
        raise _fail("give either --user USER_ID or --products a,b,c (a new user), not both")
    if args.products is not None:
        user = [p.strip() for p in args.products.split(",") if p.strip()]
    elif args.user is not None:
        user = str(args.user)
    exclude = [p for p in (args.exclude or "").split(",") if p]
    results = _run(
        args,
        lambda rec: rec.search(
            args.query,
            user,
            args.k,
            category=args.category,
            brand=args.brand,
            exclude=exclude,
        ),
    )
    _print_results(results, args)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    paths = _run(args, lambda rec: rec.explain(args.user, args.product, max_paths=args.max_paths))
    _print_paths(paths, args)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from kg.cli_options import config_from_args
    from kg.serve import HttpLimits, create_app
    from kg.serve_run import ServeConfig, blas_threads_per_worker, run_server

    try:
        config = config_from_args(ServeConfig, args)
        limits = config_from_args(HttpLimits, args)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    blas = blas_threads_per_worker(config)
    with _one_line_errors():
        rec = _recommender(args)
        events_on = _events_config(args).events
        if not args.lazy_text_encoder:
            # with every core (the catalogue's text vectors, once, before the fork); each
            # worker then runs torch on one thread (kg.serve_run.one_torch_thread_after_fork)
            try:
                rec.new_products.preload()
                rec.product_search.vectors.load()  # search: built once, before the fork
                if events_on:  # new products come as events: their neighbours' vectors now,
                    # not in a worker's event loop, where encoding the catalogue would stall it
                    rec.new_products.text_vectors(show_progress=not args.no_progress)
            except OSError as exc:
                raise _fail(f"{exc} (--lazy-text-encoder starts without it)") from exc
        answers = _answers(args, rec)
        events = _events(args, rec, answers)
        app = create_app(rec, answers, limits, events)
    if events is not None:
        print(
            f"POST /events on, bearer token in {events[2].events_token_file}; live state at "
            f"event {events[0].seq}",
            flush=True,
        )
    threads = "as OMP_NUM_THREADS etc. say" if blas is None else str(blas)
    stored = "none" if answers is None else f"k up to {answers.k}, default parameters"
    print(
        f"kgrec serving on http://{config.host}:{config.port} with {config.workers} worker(s), "
        f"BLAS threads per worker: {threads}; search: {rec.search_mode}; precomputed answers: "
        f"{stored} (docs: /docs, schema: /openapi.json)",
        flush=True,
    )
    try:
        return run_server(app, config)
    except OSError as exc:
        raise _fail(f"cannot listen on {config.host}:{config.port}: {exc}") from exc


def _events_config(args: argparse.Namespace) -> EventsConfig:
    from kg.cli_options import config_from_args
    from kg.serve_events import EventsConfig

    try:
        return config_from_args(EventsConfig, args)
    except ValueError as exc:
        raise _fail(str(exc)) from exc


def _events(
    args: argparse.Namespace, rec: Recommender, answers: AnswerStore | None
) -> tuple[EventFeed, str, EventsConfig] | None:
    """``kgrec serve --events``: the feed, caught up with Neo4j's event log, and the token."""
    import dataclasses

    from kg.serve_events import event_token, token_file

    config = _events_config(args)
    if not config.events:
        return None
    if args.tables is None:
        raise _fail(
            "--events needs --tables, the tables the model was trained on: the live state is "
            "that snapshot plus Neo4j's event log, replayed"
        )
    from kg.cli import resolve_settings
    from kg.query.feed import EventFeed

    path = token_file(config)
    try:
        token = event_token(path)
    except (OSError, ValueError) as exc:
        raise _fail(f"events token {path}: {exc}") from exc
    settings = resolve_settings(argparse.Namespace(home=args.home, port=args.neo4j_port))
    feed = EventFeed(rec, settings, answers)
    feed.log.ensure_schema()
    feed.claim()
    feed.catch_up()
    feed.close()  # the workers open their own drivers after the fork
    return feed, token, dataclasses.replace(config, events_token_file=str(path))


def _answers(args: argparse.Namespace, rec: Recommender) -> AnswerStore | None:
    """The run's precomputed answers (``kgrec precompute``), unless ``--no-precomputed``."""
    from kg.query.answers import AnswerStore, StaleAnswersError

    if args.no_precomputed:
        return None
    try:
        return AnswerStore.open(args.model, rec)
    except StaleAnswersError as exc:
        raise _fail(
            f"{exc}: recompute them with 'kgrec precompute --model {args.model} --force' (with "
            "this server's --tables), or serve without them: --no-precomputed"
        ) from exc


def cmd_precompute(args: argparse.Namespace) -> int:
    import time

    from kg.query.answers import ANSWERS_FILE, precompute_answers
    from kg.serve_run import usable_cores

    workers = args.workers if args.workers is not None else usable_cores()
    start = time.perf_counter()
    folder = args.model / ANSWERS_FILE
    with _one_line_errors():
        rec = _recommender(args)
        try:
            manifest = precompute_answers(
                rec,
                args.model,
                k=args.k,
                workers=workers,
                force=args.force,
                show_progress=not args.no_progress,
            )
        except OSError as exc:
            raise _fail(f"cannot write {folder}: {exc}") from exc
    if manifest["reused"]:
        print(
            f"{folder} is up to date (k up to {manifest['k']}, made {manifest['created']}); "
            "--force recomputes it"
        )
        return 0
    counts = manifest["counts"]
    print(
        f"precomputed {sum(counts.values()):,} answers (related of {counts['related']:,} "
        f"products, recommend and cross-category of {counts['recommend']:,} users; k up to "
        f"{manifest['k']}) in {manifest['seconds']:.1f} s with {workers} worker(s), "
        f"{time.perf_counter() - start:.1f} s in all: {folder}, "
        f"{manifest['bytes'] / 2**20:,.1f} MB"
    )
    return 0


def cmd_write_back(args: argparse.Namespace) -> int:
    from kg.cli import resolve_settings
    from kg.neo4j.driver import open_driver
    from kg.query.writeback import FUSED_INDEX, write_fused_vectors, write_related

    settings = resolve_settings(argparse.Namespace(home=args.home, port=args.neo4j_port))
    progress = not args.no_progress
    with _one_line_errors(), open_driver(settings) as driver:
        rec = _recommender(args)
        edges = write_related(
            driver, rec, k=args.k, database=settings.database, show_progress=progress
        )
        print(f"wrote {edges:,} RELATED edges ({args.k} per product) to {settings.uri}")
        if args.vectors:
            n = write_fused_vectors(driver, rec, database=settings.database, show_progress=progress)
            print(f"wrote fused vectors of {n:,} products, vector index {FUSED_INDEX}")
    return 0


# ----------------------------------------------------------------------------- parser
def _common(p: argparse.ArgumentParser, *, k: bool = True) -> None:
    p.add_argument("--model", type=Path, required=True, help="run folder of kgrec train")
    p.add_argument(
        "--tables", type=Path, help="canonical tables folder (default: export from Neo4j)"
    )
    if k:
        p.add_argument("-k", "--k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _source(p)


def _source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--home", help="local Neo4j home (when reading the graph from Neo4j)")
    p.add_argument(
        "--neo4j-port", type=int, help="local Neo4j Bolt port (default 7687 or $KGREC_NEO4J_PORT)"
    )


def _user_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("user", nargs="?", metavar="USER_ID", help="a user id")
    p.add_argument(
        "--products", help="a new user instead: comma-separated product ids, oldest first"
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the query commands to the ``kgrec`` parser."""
    from kg.cli_options import Opt, add_config_options
    from kg.serve_run import ServeConfig

    p = sub.add_parser(
        "related",
        help="products related to a product (graph-aware score)",
        description="Rank products by cosine of the fused GNN vectors, co-interaction, shared "
        "brand and category-tree proximity (see kg.query.scoring).",
    )
    p.add_argument("product", metavar="PRODUCT_ID")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--same-category", dest="same_category", action="store_const", const=True,
        help="only products of the same leaf category",
    )  # fmt: skip
    group.add_argument(
        "--other-categories", dest="same_category", action="store_const", const=False,
        help="only products of other leaf categories",
    )  # fmt: skip
    p.add_argument("--exclude", help="comma-separated product ids to leave out")
    p.add_argument("--paths", action="store_true", help="show a graph path to each result")
    _common(p)
    p.set_defaults(func=cmd_related, same_category=None)

    p = sub.add_parser("recommend", help="personalised products for a user (or a new user)")
    _user_args(p)
    p.add_argument(
        "--category", action="append",
        help="keep only products under this category id (any level; repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--exclude-seen", action=argparse.BooleanOptionalAction, default=True,
        help="leave out the user's own products (default: on)",
    )  # fmt: skip
    p.add_argument("--paths", action="store_true", help="show a graph path to each result")
    _common(p)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser(
        "cross-category",
        help="products from categories the user has not bought in, with the linking path",
    )
    _user_args(p)
    p.add_argument(
        "--level",
        type=int,
        help="category tree level, 1 = top (default: the first level with two categories or "
        "more: 2 for a catalogue under one root category)",
    )
    _common(p)
    p.set_defaults(func=cmd_cross_category)

    p = sub.add_parser(
        "search",
        help="products for a text query, ranked for a user (personalised product search)",
        description="Rank products by BM25 over title, description, brand and category names, "
        "the MiniLM text vector of the query, the categories and brands the query names and, "
        "with --user or --products, the personalised score of 'recommend' (kg.query.search).",
    )
    p.add_argument("query", metavar="QUERY", help="the query text (at most 512 characters)")
    p.add_argument("--user", metavar="USER_ID", help="rank for this user")
    p.add_argument(
        "--products", help="rank for a new user instead: comma-separated product ids, oldest first"
    )
    p.add_argument("--category", help="keep only products under this category id (any level)")
    p.add_argument("--brand", help="keep only products of this brand id")
    p.add_argument("--exclude", help="comma-separated product ids to leave out")
    _common(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("explain", help="graph paths from a user's history to a product")
    p.add_argument("user", metavar="USER_ID")
    p.add_argument("product", metavar="PRODUCT_ID")
    p.add_argument("--max-paths", type=int, default=3, help="most paths (default 3)")
    _common(p, k=False)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "serve",
        help="HTTP API of the query layer (FastAPI under gunicorn with uvicorn workers)",
        description="Load the model once, then serve the HTTP API from --workers processes "
        "forked from it (gunicorn; a worker that dies is replaced). SIGTERM or Ctrl-C stops "
        "them all.",
    )
    p.add_argument("--model", type=Path, required=True, help="run folder of kgrec train")
    p.add_argument("--tables", type=Path, help="tables folder (default: export from Neo4j)")
    add_config_options(
        p,
        ServeConfig,
        Opt("host", help="listen address"),
        Opt("port", help="HTTP port"),
        Opt("workers", help="worker processes forked after the model is loaded (about one per "
            "core)"),
        Opt("blas_threads", help="numpy BLAS threads per worker (none: cores / workers, at "
            "least 1, unless OMP_NUM_THREADS, OPENBLAS_NUM_THREADS or MKL_NUM_THREADS is set)"),
        Opt("log_level", extra={"choices": ["critical", "error", "warning", "info", "debug"]}),
        Opt("keepalive", help="seconds an idle keep-alive connection stays open"),
        Opt("graceful_timeout", help="seconds workers get to finish their requests on SIGTERM"),
        Opt("reuse_port", help="each worker listens on its own SO_REUSEPORT socket (Linux) "
            "instead of sharing one (a killed worker then resets what was queued for it)"),
    )  # fmt: skip
    add_config_options(
        p,
        "kg.serve_events:EventsConfig",
        Opt(
            "events",
            help="serve POST /events (bearer token) and apply Neo4j's event log "
            "live; needs --tables, the snapshot the model was trained on",
        ),
        Opt(
            "events_token_file",
            help="the bearer token's file, made once with mode 0600 "
            "(none: $KGREC_HOME/events-token)",
        ),
        Opt("events_poll", help="seconds between a worker's reads of the event log"),
        Opt("events_claim", help="seconds between checks for direct writes into Neo4j"),
        types_={
            "events": bool,
            "events_token_file": str,
            "events_poll": float,
            "events_claim": float,
        },
    )
    add_config_options(
        p,
        "kg.serve_limits:HttpLimits",
        Opt("max_body_bytes", help="largest request body (413 above)"),
        Opt("max_url_bytes", help="longest path and query string (414 above)"),
        Opt("body_timeout", help="seconds a request body may take to arrive (408 after)"),
        types_={"max_body_bytes": int, "max_url_bytes": int, "body_timeout": float},
    )
    p.add_argument(
        "--approximate",
        action="store_true",
        help="score only candidates from k-means inverted files: related products, and "
        "recommendations above 4,096 products with the log blend (faster on large catalogues; "
        "results can differ from the exact ranking: see BENCHMARKS.md)",
    )
    add_config_options(
        p,
        _APPROXIMATE,
        Opt("n_lists", help="clusters of --approximate (none: sqrt(products))"),
        Opt("n_probe", help="clusters probed by --approximate for related products"),
        Opt("n_probe_user", help="clusters probed by --approximate for recommendations"),
        types_={"n_lists": int, "n_probe": int, "n_probe_user": int},
    )
    p.add_argument(
        "--lazy-text-encoder",
        action="store_true",
        help="load the text encoder of POST /related-products (new products) and the search "
        "index of GET /search on the first such request, in each worker, instead of at "
        "start-up: a start without torch, several seconds faster and a few hundred MB smaller "
        "per worker, but that request waits ~10 s; with --events, the first product event "
        "waits too, in the worker's event loop (for a model without text features: while the "
        "whole catalogue's text is encoded), so use it with --events only where products do "
        "not come as events",
    )
    p.add_argument(
        "--no-precomputed",
        action="store_true",
        help="compute every answer live, even when the run holds precomputed answers (kgrec "
        "precompute; used by default for requests with default parameters)",
    )
    _source(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "precompute",
        help="store the default answers of every product and user for kgrec serve",
        description="Compute related (each product), recommend and cross-category (each user) "
        "with default parameters and k results, exact search, into MODEL/answers.sqlite; "
        "kgrec serve then sends them for requests with default parameters and k up to that, "
        "and computes the others live. Skipped when the stored answers are up to date.",
    )
    p.add_argument("--model", type=Path, required=True, help="run folder of kgrec train")
    p.add_argument("--tables", type=Path, help="tables folder (default: export from Neo4j)")
    p.add_argument("-k", "--k", type=int, default=10, help="results stored per answer (default 10)")
    p.add_argument(
        "--workers", type=int, help="processes (default: the cores this process may use)"
    )
    p.add_argument("--force", action="store_true", help="recompute even when up to date")
    _source(p)
    p.set_defaults(func=cmd_precompute)

    p = sub.add_parser(
        "write-back",
        help="write RELATED edges and fused vectors (vector index product_fused) to Neo4j",
    )
    p.add_argument("--model", type=Path, required=True, help="run folder of kgrec train")
    p.add_argument("--tables", type=Path, help="tables folder (default: export from Neo4j)")
    p.add_argument("-k", "--k", type=int, default=10, help="RELATED edges per product (default 10)")
    p.add_argument(
        "--vectors", action=argparse.BooleanOptionalAction, default=True,
        help="also write the fused vectors and their index (default on)",
    )  # fmt: skip
    _source(p)
    p.set_defaults(func=cmd_write_back)
