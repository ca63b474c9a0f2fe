"""The one place kgrec opens a Neo4j driver. Everything else receives the driver it returns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kg.neo4j.settings import Neo4jSettings

if TYPE_CHECKING:
    import neo4j

__all__ = ["open_driver"]


def open_driver(settings: Neo4jSettings, *, verify: bool = True) -> neo4j.Driver:
    """Open a driver for ``settings``; use it in a ``with`` block.

    Args:
        settings: where the server is and how to log in.
        verify: check connectivity and credentials now, so a wrong password fails here.

    Returns:
        An open :class:`neo4j.Driver`. The caller closes it.

    Raises:
        neo4j.exceptions.AuthError: wrong user or password.
        neo4j.exceptions.ServiceUnavailable: nothing answers at ``settings.uri``.
    """
    import neo4j

    driver = neo4j.GraphDatabase.driver(
        settings.uri,
        auth=settings.auth,
        user_agent="kgrec",
        notifications_min_severity="OFF",
    )
    if verify:
        try:
            driver.verify_connectivity()
        except Exception:
            driver.close()
            raise
    return driver
