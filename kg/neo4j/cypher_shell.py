"""Neo4j's own ``cypher-shell``, built from Maven Central and pointed at kgrec's Neo4j.

The Maven project in ``kg/neo4j/shell`` copies ``org.neo4j:cypher-shell`` (the same 5.26 LTS as
the server) and its runtime jars into ``kg/neo4j/shell/target/lib``; :func:`cypher_shell_command`
returns the ``java`` command line that runs it and the environment that carries the login. The
password travels in the environment variable ``NEO4J_PASSWORD``, which cypher-shell reads, never
on the command line (which other users of the machine can read in ``ps``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kg.neo4j.maven import JAVA_HINT, MavenBuildError, build_maven_project, require_tool
from kg.neo4j.server import Neo4jServerError
from kg.neo4j.settings import Neo4jSettings

__all__ = [
    "FORMATS",
    "SHELL_DIR",
    "ShellCommand",
    "build_cypher_shell",
    "cypher_literal",
    "cypher_shell_command",
    "parameter_map",
]

SHELL_DIR = Path(__file__).resolve().parent / "shell"
_MAIN_CLASS = "org.neo4j.shell.Main"
#: cypher-shell's ``--format`` choices.
FORMATS = ("auto", "verbose", "plain")
# A short-lived client: start fast rather than run long loops fast.
_JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss1m")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ShellCommand:
    """A cypher-shell run: the command line and the environment to run it with.

    Attributes:
        argv: ``java ... org.neo4j.shell.Main ...``; holds no password.
        env: the environment, with ``NEO4J_USERNAME`` and ``NEO4J_PASSWORD`` when the server
            has authentication.
    """

    argv: list[str]
    env: dict[str, str]


def build_cypher_shell(shell_dir: Path = SHELL_DIR, *, force: bool = False) -> Path:
    """Fetch cypher-shell and its jars with Maven unless an up-to-date copy exists.

    Returns:
        The folder holding every jar (``target/lib``).

    Raises:
        Neo4jServerError: ``mvn`` or ``java`` missing, or the Maven build failed.
    """
    target = shell_dir / "target"
    try:
        build_maven_project(shell_dir, target / ".kgrec-built", what="cypher-shell", force=force)
    except MavenBuildError as exc:
        raise Neo4jServerError(str(exc)) from None
    return target / "lib"


def cypher_literal(value: object) -> str:
    """``value`` (None, bool, int, float, str, list or dict) written as a Cypher literal.

    Strings are double-quoted with JSON's escapes, which Cypher reads the same way.

    Raises:
        TypeError: a value Cypher has no literal for.
    """
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float | str):
        return json.dumps(value, allow_nan=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cypher_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return parameter_map(value)
    raise TypeError(f"no Cypher literal for {type(value).__name__}: {value!r}")


def parameter_map(params: Mapping[str, object]) -> str:
    """Parameters as the Cypher map that cypher-shell's ``-P`` takes: ``{`k`: 10}``."""
    items = (f"`{name.replace('`', '``')}`: {cypher_literal(v)}" for name, v in params.items())
    return "{" + ", ".join(items) + "}"


def cypher_shell_command(
    settings: Neo4jSettings,
    *,
    statement: str | None = None,
    file: str | Path | None = None,
    params: Mapping[str, object] | None = None,
    output_format: str | None = None,
    extra_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    shell_dir: Path = SHELL_DIR,
) -> ShellCommand:
    """The command that runs cypher-shell against ``settings``' server.

    With neither ``statement`` nor ``file`` the shell is interactive.

    Args:
        settings: the server (URI, user, password, database).
        statement: one Cypher statement to run, then exit.
        file: a file of Cypher statements to run, then exit.
        params: ``$parameters`` for the session.
        output_format: one of :data:`FORMATS`; ``None`` leaves cypher-shell's default (``auto``).
        extra_args: more cypher-shell arguments, passed as they are.
        environ: the environment to start from (default: this process's), without any
            ``NEO4J_*`` variable, which the settings replace.
        shell_dir: the Maven project of cypher-shell (built here when needed).

    Returns:
        The command line and environment.

    Raises:
        ValueError: both ``statement`` and ``file``, an unknown format or a bad parameter name.
        Neo4jServerError: ``java``/``mvn`` missing or the build failed.
    """
    if statement is not None and file is not None:
        raise ValueError("give a statement or a file, not both")
    if output_format is not None and output_format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {output_format!r}")
    for name in params or {}:
        if not _NAME.fullmatch(name):
            raise ValueError(f"bad parameter name {name!r}: letters, digits and _ only")
    try:
        java = require_tool("java", JAVA_HINT)
    except MavenBuildError as exc:
        raise Neo4jServerError(str(exc)) from None
    lib = build_cypher_shell(shell_dir)
    argv = [java, *_JVM_FLAGS, "-cp", str(lib / "*"), _MAIN_CLASS]
    argv += ["--address", settings.uri, "--database", settings.database]
    if output_format is not None:
        argv += ["--format", output_format]
    if params:
        argv += ["--param", parameter_map(params)]
    argv += list(extra_args)
    if file is not None:
        argv += ["--file", str(file)]
    if statement is not None:
        argv.append(statement)
    base = os.environ if environ is None else environ
    env = {k: v for k, v in base.items() if not k.startswith("NEO4J_")}
    if settings.user is not None:
        env["NEO4J_USERNAME"] = settings.user
        env["NEO4J_PASSWORD"] = settings.password or ""
    return ShellCommand(argv=argv, env=env)
