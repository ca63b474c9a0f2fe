"""The first load of an empty local database through Neo4j's offline importer.

:func:`bulk_load` checks over Bolt that the running local Neo4j's database is empty, writes the
importer's CSV files from the canonical tables while the server still runs, stops the server,
runs ``neo4j-admin database import full`` on its home (:mod:`kg.neo4j.importer`), starts the
server again with the settings it ran with, and then creates what a load over Bolt creates:
kgrec's constraints (:func:`ingest.neo4j_writer.ensure_constraints`) and the load lock's node.
Indexes and constraints the empty database had are created again, so its schema survives.

The result is the graph :func:`ingest.neo4j_writer.write_graph` writes from the same tables.
Only the local server can be bulk-loaded: the importer writes the store files themselves.
"""

from __future__ import annotations

import copy
import fcntl
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.bulk_csv import write_import_csv
from ingest.neo4j_writer import LOCK_LABEL, ensure_constraints
from ingest.search_index import index_product_text
from ingest.tables import GraphTables
from kg.neo4j.driver import open_driver
from kg.neo4j.importer import run_import

if TYPE_CHECKING:
    import neo4j

    from kg.neo4j.server import LocalNeo4j

__all__ = ["BulkReport", "DatabaseNotEmptyError", "bulk_load", "count_nodes"]


class DatabaseNotEmptyError(ValueError):
    """The database holds nodes: a bulk import would replace them, so it is refused."""


@dataclass
class BulkReport:
    """What a bulk load wrote and where its time went (seconds).

    Attributes:
        rows: rows written per CSV file.
        node_rows / relationship_rows: totals.
        seconds: ``csv`` (writing the files), ``stop``, ``import`` (the tool), ``start``,
            ``schema`` (constraints and indexes) and ``total``.
    """

    rows: dict[str, int] = field(default_factory=dict)
    node_rows: int = 0
    relationship_rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def rate(self, step: str = "import") -> float:
        """Relationships per second over ``step`` (``"total"`` for the whole load)."""
        secs = self.seconds.get(step, 0.0)
        return self.relationship_rows / secs if secs else 0.0


def count_nodes(driver: neo4j.Driver, *, database: str = "neo4j") -> int:
    """The number of nodes in ``database``, the load lock's node not counted (0: empty)."""
    records, _, _ = driver.execute_query(
        f"MATCH (n) WHERE NOT n:{LOCK_LABEL} RETURN count(n) AS n", database_=database
    )
    return int(records[0]["n"])


def _user_schema(driver: neo4j.Driver, database: str) -> list[str]:
    """Create statements of the constraints and indexes that kgrec does not make itself."""
    constraints, _, _ = driver.execute_query(
        "SHOW CONSTRAINTS YIELD name, createStatement "
        "WHERE NOT name STARTS WITH 'kgrec_' RETURN createStatement",
        database_=database,
    )
    indexes, _, _ = driver.execute_query(
        "SHOW INDEXES YIELD type, owningConstraint, createStatement "
        "WHERE type <> 'LOOKUP' AND owningConstraint IS NULL RETURN createStatement",
        database_=database,
    )
    return [r["createStatement"] for r in (*constraints, *indexes)]


def _refuse_unless_empty(driver: neo4j.Driver, database: str) -> None:
    nodes = count_nodes(driver, database=database)
    if nodes:
        raise DatabaseNotEmptyError(
            f"database {database!r} is not empty ({nodes:,} nodes): --bulk only loads an empty "
            "database; load without --bulk to merge into it, or empty it first"
        )


def bulk_load(
    server: LocalNeo4j,
    source: GraphTables | str | Path,
    *,
    database: str = "neo4j",
    work_dir: str | Path | None = None,
    import_heap: str = "1g",
    import_memory: str = "2g",
    show_progress: bool = True,
) -> BulkReport:
    """Bulk-load ``source`` into the empty database of the running local ``server``.

    Args:
        server: the local Neo4j; it must be running, and is running again on return (also
            when the import fails).
        source: tables (validated here), or a tables folder, read batch by batch (validate it
            first: the importer assumes fault-free data).
        database: the database to load.
        work_dir: where the CSV files are written (removed afterwards); default a temporary
            folder in the server's home, which only its owner can read.
        import_heap / import_memory: the importer's JVM heap and off-heap memory.
        show_progress: a progress bar while the CSV files are written.

    Returns:
        Rows and seconds per step.

    Raises:
        DatabaseNotEmptyError: the database holds nodes (nothing was changed).
        kg.neo4j.server.Neo4jServerError: the server is not running or did not restart.
        kg.neo4j.importer.BulkImportError: the importer failed.
    """
    from kg.neo4j.server import Neo4jServerError

    if isinstance(source, GraphTables):
        source.validate()
    info = server.status()
    if info is None:
        raise Neo4jServerError(
            f"the local Neo4j is not running (home {server.home}); start it with "
            "'kgrec neo4j start'"
        )
    # restart with the settings it runs with now
    again = copy.copy(server)
    again.port = info.port
    again.heap = info.heap or server.heap
    again.pagecache = info.pagecache or server.pagecache
    report = BulkReport()
    start = time.perf_counter()
    with open(server.home / "bulk.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one bulk load per home at a time
        with open_driver(server.settings(info)) as driver:
            _refuse_unless_empty(driver, database)
            schema_statements = _user_schema(driver, database)
            folder = Path(tempfile.mkdtemp(prefix="bulk-csv-", dir=work_dir or server.home))
            try:
                t0 = time.perf_counter()
                files = write_import_csv(source, folder, show_progress=show_progress)
                report.seconds["csv"] = time.perf_counter() - t0
                # checked again right before the stop: nothing may have arrived meanwhile
                _refuse_unless_empty(driver, database)
                t0 = time.perf_counter()
                server.stop()
                report.seconds["stop"] = time.perf_counter() - t0
                try:
                    result = run_import(
                        server.home, files, database=database, heap=import_heap,
                        max_off_heap=import_memory,
                    )  # fmt: skip
                    report.seconds["import"] = result.seconds
                finally:
                    t0 = time.perf_counter()
                    info = again.start()
                    report.seconds["start"] = time.perf_counter() - t0
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        with open_driver(again.settings(info)) as driver:
            _create_schema(driver, database, schema_statements)
        report.seconds["schema"] = time.perf_counter() - t0
    report.rows = dict(files.rows)
    report.node_rows = files.node_rows
    report.relationship_rows = files.relationship_rows
    report.seconds["total"] = time.perf_counter() - start
    return report


def _create_schema(driver: neo4j.Driver, database: str, statements: list[str]) -> None:
    """kgrec's constraints and lock node, then the empty database's own schema again, and
    the derived search fields and full-text index a load over Bolt ends with."""
    ensure_constraints(driver, database=database, repair=False)
    driver.execute_query(f"MERGE (:{LOCK_LABEL} {{name: 'load'}})", database_=database)
    for statement in statements:
        # Neo4j's own text of a schema rule the database held before the import.
        driver.execute_query(statement, database_=database)
    driver.execute_query("CALL db.awaitIndexes(3600)", database_=database)
    index_product_text(driver, database=database)  # as a load over Bolt ends (product search)
