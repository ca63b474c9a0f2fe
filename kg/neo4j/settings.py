"""Where kgrec's Neo4j is: an external server named by environment variables, or the local one.

Only entry points (the CLI, notebooks, test fixtures) call :func:`settings_from_env`; library
code receives a :class:`Neo4jSettings` or an open driver.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_PORT",
    "Neo4jSettings",
    "default_home",
    "settings_from_env",
]

DEFAULT_PORT = 7687


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """The local Neo4j's home: ``$KGREC_HOME/neo4j``, with ``KGREC_HOME`` defaulting to ``~/.kgrec``."""
    env = os.environ if environ is None else environ
    base = env.get("KGREC_HOME") or str(Path.home() / ".kgrec")
    return Path(base).expanduser() / "neo4j"


@dataclass(frozen=True)
class Neo4jSettings:
    """How to reach a Neo4j server.

    Args:
        uri: Bolt URI, e.g. ``bolt://127.0.0.1:7687`` or ``neo4j+s://host``.
        user: user name; ``None`` when the server runs without authentication.
        password: the user's password.
        database: the database to use.
        external: True when the server was named by ``NEO4J_URI`` (kgrec never starts or stops it).
    """

    uri: str
    user: str | None = "neo4j"
    password: str | None = field(default=None, repr=False)
    database: str = "neo4j"
    external: bool = False

    @property
    def auth(self) -> tuple[str, str] | None:
        """The ``(user, password)`` pair for the driver, or ``None`` without authentication."""
        if self.user is None:
            return None
        return (self.user, self.password or "")


def settings_from_env(environ: Mapping[str, str] | None = None) -> Neo4jSettings | None:
    """Settings for an external server from ``NEO4J_URI``/``NEO4J_USERNAME``/``NEO4J_PASSWORD``.

    ``NEO4J_DATABASE`` picks the database (default ``neo4j``).

    Returns:
        The settings, or ``None`` when ``NEO4J_URI`` is not set (then the local server is used).
    """
    env = os.environ if environ is None else environ
    uri = env.get("NEO4J_URI")
    if not uri:
        return None
    return Neo4jSettings(
        uri=uri,
        user=env.get("NEO4J_USERNAME") or env.get("NEO4J_USER") or "neo4j",
        password=env.get("NEO4J_PASSWORD"),
        database=env.get("NEO4J_DATABASE") or "neo4j",
        external=True,
    )
