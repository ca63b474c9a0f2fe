"""The ``kgrec`` command line. It owns all output; heavy libraries are imported per command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kg.neo4j.server import LocalNeo4j
    from kg.neo4j.settings import Neo4jSettings

__all__ = ["main"]


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


# ---------------------------------------------------------------- neo4j helpers
def _local(args: argparse.Namespace) -> LocalNeo4j:
    from kg.neo4j.server import LocalNeo4j
    from kg.neo4j.settings import default_home

    home = Path(args.home) if getattr(args, "home", None) else default_home()
    return LocalNeo4j(
        home,
        port=getattr(args, "port", None) or _default_port(),
        heap=getattr(args, "heap", "1g"),
        pagecache=getattr(args, "pagecache", "512m"),
        auth=not getattr(args, "no_auth", False),
        password=os.environ.get("NEO4J_PASSWORD") or None,
    )


def _default_port() -> int:
    from kg.neo4j.settings import DEFAULT_PORT

    return int(os.environ.get("KGREC_NEO4J_PORT", DEFAULT_PORT))


def resolve_settings(args: argparse.Namespace) -> Neo4jSettings:
    """The server a command talks to: ``NEO4J_URI`` when set, else the running local server."""
    from kg.neo4j.settings import settings_from_env

    external = settings_from_env()
    if external is not None:
        return external
    server = _local(args)
    info = server.status()
    if info is None:
        raise CommandError(
            f"the local Neo4j is not running (home {server.home}); start it with "
            "'kgrec neo4j start', or set NEO4J_URI to use your own server"
        )
    return server.settings(info)


def _external_notice() -> str | None:
    from kg.neo4j.settings import settings_from_env

    ext = settings_from_env()
    if ext is None:
        return None
    return f"NEO4J_URI is set: kgrec uses {ext.uri} and does not start or stop a local Neo4j"


# --------------------------------------------------------------------- commands
def cmd_neo4j_start(args: argparse.Namespace) -> int:
    notice = _external_notice()
    if notice:
        print(notice)
        return 0
    server = _local(args)
    info = server.start(timeout=args.timeout)
    print(f"Neo4j is ready at {info.uri} (pid {info.pid}, {info.ready_seconds:.1f} s)")
    if server.auth:
        print(f"user: neo4j; password: in {server.password_file} (show it: kgrec neo4j password)")
    else:
        print("authentication is OFF: use this only for throwaway databases")
    return 0


def cmd_neo4j_stop(args: argparse.Namespace) -> int:
    notice = _external_notice()
    if notice:
        print(notice)
        return 0
    server = _local(args)
    if server.stop():
        print(f"Neo4j on home {server.home} stopped")
    else:
        print(f"no Neo4j was running on home {server.home}")
    return 0


def cmd_neo4j_status(args: argparse.Namespace) -> int:
    notice = _external_notice()
    settings = resolve_settings(args) if notice else None
    if settings is None:
        server = _local(args)
        info = server.status()
        if info is None:
            print(f"not running (home {server.home})")
            return 3
        settings = server.settings(info)
        print(f"running at {info.uri} (pid {info.pid}, home {info.home})")
    else:
        print(notice)
    from kg.neo4j.driver import open_driver

    with open_driver(settings) as driver:
        records, _, _ = driver.execute_query(
            "CALL dbms.components() YIELD name, versions, edition "
            "RETURN name, versions[0] AS version, edition",
            database_=settings.database,
        )
        for r in records:
            print(f"{r['name']} {r['version']} ({r['edition']})")
        records, _, _ = driver.execute_query(
            "MATCH (n) RETURN count(n) AS nodes", database_=settings.database
        )
        print(f"nodes: {records[0]['nodes']}")
    return 0


def cmd_neo4j_password(args: argparse.Namespace) -> int:
    server = _local(args)
    if not server.auth:
        raise CommandError("authentication is off for this server")
    if not server.password_file.exists() and not os.environ.get("NEO4J_PASSWORD"):
        raise CommandError(
            f"no password yet: {server.password_file} is made by 'kgrec neo4j start'"
        )
    print(server.password())
    return 0


def cmd_neo4j_build(args: argparse.Namespace) -> int:
    from kg.neo4j.cypher_shell import build_cypher_shell
    from kg.neo4j.importer import BulkImportError, build_importer
    from kg.neo4j.server import build_launcher

    target = build_launcher(force=args.force)
    print(f"launcher built in {target}")
    print(f"cypher-shell built in {build_cypher_shell(force=args.force)}")
    try:
        lib = build_importer(force=args.force)
    except BulkImportError as exc:
        raise CommandError(str(exc)) from None
    print(f"bulk importer (neo4j-admin database import) built in {lib}")
    return 0


# ----------------------------------------------------------------------- parser
def _add_server_options(p: argparse.ArgumentParser, *, start: bool = False) -> None:
    p.add_argument("--home", help="local Neo4j home (default: $KGREC_HOME/neo4j, ~/.kgrec/neo4j)")
    p.add_argument("--port", type=int, help="Bolt port (default 7687 or $KGREC_NEO4J_PORT)")
    if start:
        p.add_argument("--heap", default="1g", help="JVM heap, e.g. 2g (default 1g)")
        p.add_argument("--pagecache", default="512m", help="page cache, e.g. 1g (default 512m)")
        p.add_argument(
            "--no-auth", action="store_true", help="no password (throwaway databases only)"
        )
        p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Bolt")


def build_parser() -> argparse.ArgumentParser:
    """The full ``kgrec`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="kgrec",
        description="Knowledge-graph recommender: Neo4j graph, KG embeddings, fusion GNN.",
    )
    from kg import __version__

    parser.add_argument("--version", action="version", version=f"kgrec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    neo = sub.add_parser("neo4j", help="start, stop and inspect the local Neo4j server")
    neo_sub = neo.add_subparsers(dest="neo4j_command", required=True, metavar="ACTION")
    p = neo_sub.add_parser("start", help="build the launcher if needed and start Neo4j")
    _add_server_options(p, start=True)
    p.set_defaults(func=cmd_neo4j_start)
    p = neo_sub.add_parser("stop", help="stop the local Neo4j cleanly")
    _add_server_options(p)
    p.set_defaults(func=cmd_neo4j_stop)
    p = neo_sub.add_parser("status", help="is it running; version and node count")
    _add_server_options(p)
    p.set_defaults(func=cmd_neo4j_status)
    p = neo_sub.add_parser("password", help="print the neo4j user's password")
    _add_server_options(p)
    p.set_defaults(func=cmd_neo4j_password)
    p = neo_sub.add_parser(
        "build", help="build the Java launcher, cypher-shell and the bulk importer with Maven"
    )
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.set_defaults(func=cmd_neo4j_build)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


#: Other modules' commands: each callable adds its subparser(s) to the sub-parsers action.
_EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def _register_extras() -> None:
    from kg import cli_analyst, cli_demo, cli_embed, cli_events, cli_ingest, cli_query, cli_train

    _EXTRA_COMMANDS[:] = [
        cli_ingest.register,
        cli_analyst.register,
        cli_embed.register,
        cli_events.register,
        cli_train.register,
        cli_query.register,
        cli_demo.register,
    ]


class _QuietLibraries:
    """Drops records below ERROR from chatty libraries (their loggers set own levels), and
    every record of the Neo4j driver: its notes on transactions it retries (a deadlock between
    parallel writes is retried) and its connection errors, which reach the user as the one
    line of the exception they end in (a killed server gave one line per open connection)."""

    _NAMES = ("pykeen", "torch_max_mem")

    def filter(self, record: object) -> bool:
        import logging

        name = getattr(record, "name", "")
        if name == "neo4j" or name.startswith("neo4j."):
            return False
        level = getattr(record, "levelno", logging.ERROR)
        return level >= logging.ERROR or not name.startswith(self._NAMES)


def _configure_logging() -> None:
    """The CLI owns output: warnings to stderr, without the chatter of training libraries."""
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING, format="kgrec: %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietLibraries())
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    warnings.filterwarnings("ignore", module="pykeen")
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kgrec``; returns the exit status."""
    from kg.neo4j.server import Neo4jServerError

    _register_extras()
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a relaunch passes on
    _configure_logging()
    try:
        return int(args.func(args) or 0)
    except (CommandError, Neo4jServerError) as exc:
        print(f"kgrec: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kgrec: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from ingest.errors import IngestError

        if isinstance(exc, IngestError | FileNotFoundError):
            print(f"kgrec: error: {exc}", file=sys.stderr)
            return 1
        neo4j_error = _neo4j_error_line(exc)
        if neo4j_error:
            print(f"kgrec: error: {neo4j_error}", file=sys.stderr)
            return 1
        raise


def _neo4j_error_line(exc: Exception) -> str | None:
    module = type(exc).__module__
    if not module.startswith("neo4j"):
        return None
    from neo4j.exceptions import AuthError, ServiceUnavailable

    if isinstance(exc, AuthError):
        return "Neo4j rejected the user name or password (check NEO4J_USERNAME/NEO4J_PASSWORD)"
    if isinstance(exc, ServiceUnavailable):
        return f"Neo4j is not reachable: {exc}"
    return f"Neo4j: {exc}"


if __name__ == "__main__":
    raise SystemExit(main())
