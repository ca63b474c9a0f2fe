"""``kgrec cypher`` (Neo4j's own cypher-shell) and ``kgrec browse`` (a local page for analysts).

Both talk to the server that every kgrec command uses: ``NEO4J_URI`` when set, else the local
Neo4j, which they start for the time they run (and stop afterwards) when it is not running.
The password is never typed and never put on a command line or in a URL.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kg.cypher import Recipe
    from kg.neo4j.settings import Neo4jSettings

__all__ = ["register"]

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
DEFAULT_WEB_PORT = 7475


def _say(message: str) -> None:
    print(f"kgrec: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def neo4j_for_command(args: argparse.Namespace) -> Iterator[Neo4jSettings]:
    """The server to use: ``NEO4J_URI``, the running local Neo4j, or the local Neo4j started
    now and stopped again when the block ends."""
    from kg.cli import _local
    from kg.neo4j.settings import settings_from_env

    external = settings_from_env()
    if external is not None:
        yield external
        return
    server = _local(args)
    info = server.status()
    if info is not None:
        yield server.settings(info)
        return
    _say(f"the local Neo4j is not running: starting it (home {server.home}) until this ends")
    info = server.start()
    try:
        yield server.settings(info)
    finally:
        server.stop()
        _say("the local Neo4j started for this command is stopped")


# ------------------------------------------------------------------------------ cypher
def _split_params(values: list[str]) -> tuple[dict[str, str], list[str]]:
    """``-P`` values: ``name=value`` pairs, and Cypher maps ``{...}`` passed on as they are."""
    from kg.cli import CommandError

    named: dict[str, str] = {}
    maps: list[str] = []
    for value in values:
        if value.lstrip().startswith("{"):
            maps.append(value)
            continue
        name, sep, text = value.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"-P takes name=value or a Cypher map such as {{k: 10}}: {value!r}")
        named[name.strip()] = text
    return named, maps


def _untyped(text: str) -> str | int | float:
    """A parameter outside a recipe: a number when it reads as one, else the string."""
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return float(text)
    return text


def _script(file: str) -> tuple[Path, Recipe | None]:
    """The file to run and its recipe header: a path, or the name of a shipped recipe."""
    import kg.cypher
    from kg.cli import CommandError
    from kg.cypher import read_recipe, recipes

    path = Path(file)
    if not path.is_file() and re.fullmatch(r"\w+", file):
        shipped = Path(kg.cypher.__file__).parent / f"{file}.cypher"
        if shipped.is_file():
            path = shipped
    if not path.is_file():
        names = ", ".join(r.name for r in recipes())
        raise CommandError(f"{file}: no such file, nor a shipped recipe ({names})")
    try:
        return path, read_recipe(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CommandError(f"{file}: {exc}") from None


def _list_recipes() -> int:
    from kg.cypher import recipes

    for r in recipes():
        params = " ".join(
            f"{p.name}=<{p.type}>" if p.default is None else f"[{p.name}={p.default}]"
            for p in r.declared
        )
        print(
            f"{r.name} (v{r.version}): kgrec cypher -f {r.name}" + (f" -P {params}" * bool(params))
        )
        print(f"    {r.description}")
    return 0


def cmd_cypher(args: argparse.Namespace) -> int:
    from kg.cli import CommandError
    from kg.neo4j.cypher_shell import cypher_shell_command

    if args.recipes:
        return _list_recipes()
    named, maps = _split_params(args.param)
    path, recipe = _script(args.file) if args.file else (None, None)
    try:
        if recipe is not None:
            params: dict[str, object] = dict(recipe.bind(named))
        else:
            params = {name: _untyped(text) for name, text in named.items()}
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    extra = [arg for m in maps for arg in ("--param", m)]
    with neo4j_for_command(args) as settings:
        try:
            command = cypher_shell_command(
                settings,
                statement=args.command,
                file=path,
                params=params,
                output_format=args.format,
                extra_args=extra,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        # Ctrl-C belongs to the shell (it cancels the running query), not to kgrec.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return subprocess.run(command.argv, env=command.env, check=False).returncode
        finally:
            signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------------------ browse
def _listen(port: int) -> object:
    import socket

    from kg.cli import CommandError

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise CommandError(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another with --web-port"
        ) from None
    sock.listen(128)
    return sock


class _Stopped(Exception):
    """SIGTERM arrived."""


def _stop(signum: int, frame: object) -> None:
    raise _Stopped


def cmd_browse(args: argparse.Namespace) -> int:
    import uvicorn

    from kg.browse import AssetsMissingError, create_app
    from kg.cli import CommandError

    token = secrets.token_urlsafe(24)
    sock = _listen(args.web_port)
    with contextlib.closing(sock), neo4j_for_command(args) as settings:  # type: ignore[arg-type]
        try:
            app = create_app(settings, token)
        except AssetsMissingError as exc:
            raise CommandError(str(exc)) from None
        port = sock.getsockname()[1]  # type: ignore[attr-defined]
        url = f"http://127.0.0.1:{port}/#token={token}"
        print(f"kgrec browse: {url}", flush=True)
        print(
            f"Neo4j: {settings.uri} (user {settings.user}); open the address above, which "
            "holds this run's login token; Ctrl-C stops it",
            flush=True,
        )
        if args.open:
            import webbrowser

            webbrowser.open(url)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        # uvicorn stops on SIGINT/SIGTERM, then raises the signal again: end here cleanly (and
        # stop a Neo4j started for this command) instead of dying of it.
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            server.run(sockets=[sock])  # type: ignore[list-item]
        except (_Stopped, KeyboardInterrupt):
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    print("kgrec browse: stopped", flush=True)
    return 0


# ---------------------------------------------------------------------------- register
def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", help="local Neo4j home, when NEO4J_URI is not set")
    p.add_argument("--port", type=int, help="local Neo4j Bolt port")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``cypher`` and ``browse`` to the ``kgrec`` parser."""
    p = sub.add_parser(
        "cypher",
        help="Neo4j's cypher-shell on kgrec's Neo4j (interactive, -c or -f)",
        description="Run Neo4j's cypher-shell against NEO4J_URI or the local Neo4j, logged in "
        "with the stored password. Without -c or -f the shell is interactive.",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("-c", "--command", help="run one Cypher statement and exit")
    what.add_argument(
        "-f", "--file", help="run a file of Cypher, or a shipped recipe by name, and exit"
    )
    what.add_argument("--recipes", action="store_true", help="list the shipped recipes")
    p.add_argument(
        "-P",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a $parameter (repeat it); typed by a recipe's header, else a number when it "
        "reads as one; a Cypher map such as '{id: \"42\"}' is passed on as it is",
    )
    p.add_argument(
        "--format",
        choices=("auto", "verbose", "plain"),  # kg.neo4j.cypher_shell.FORMATS (no pyarrow here)
        help="cypher-shell's output format",
    )
    _server_options(p)
    p.set_defaults(func=cmd_cypher)

    p = sub.add_parser(
        "browse",
        help="a local page: Cypher editor, table and graph view, recipes",
        description="Serve the analysts' page on 127.0.0.1 and print its address (with this "
        "run's login token). The page connects to Neo4j over Bolt on a WebSocket.",
    )
    p.add_argument(
        "--web-port",
        type=int,
        default=DEFAULT_WEB_PORT,
        help=f"the page's port on 127.0.0.1 (default {DEFAULT_WEB_PORT}; 0 = any free port)",
    )
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    _server_options(p)
    p.set_defaults(func=cmd_browse)
