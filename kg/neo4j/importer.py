"""Neo4j's offline bulk importer (``neo4j-admin database import full``), run on a local home.

The Maven project ``kg/neo4j/importer`` copies ``org.neo4j:neo4j-import-tool`` (the launcher's
Neo4j version) and its runtime jars into ``target/lib``, built on first use like the launcher.
:func:`run_import` runs Neo4j's own ``org.neo4j.cli.AdminTool`` on that classpath with
``NEO4J_HOME`` set to the home, so the store lands where the launcher opens it. The database
must not be running (the tool takes the store's lock and refuses a store in use).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ingest.bulk_csv import ImportFiles
from kg.neo4j.maven import MavenBuildError, build_maven_project, require_tool

__all__ = ["IMPORTER_DIR", "BulkImportError", "ImportResult", "build_importer", "run_import"]

IMPORTER_DIR = Path(__file__).resolve().parent / "importer"
_STAMP = "kgrec-importer.stamp"
_MAIN_CLASS = "org.neo4j.cli.AdminTool"


class BulkImportError(RuntimeError):
    """The importer could not be built or the import failed; the message says why."""


@dataclass(frozen=True)
class ImportResult:
    """A finished import: its wall time and the tool's log file."""

    seconds: float
    log_file: Path


def build_importer(importer_dir: Path = IMPORTER_DIR, *, force: bool = False) -> Path:
    """Build the importer's classpath with Maven unless it is up to date.

    Returns:
        The folder of jars (``target/lib``).
    """
    target = importer_dir / "target"
    try:
        build_maven_project(
            importer_dir, target / _STAMP, what="the Neo4j bulk importer", force=force
        )
    except MavenBuildError as exc:
        raise BulkImportError(str(exc)) from None
    return target / "lib"


def run_import(
    home: str | Path,
    files: ImportFiles,
    *,
    database: str = "neo4j",
    heap: str = "1g",
    max_off_heap: str = "2g",
    threads: int | None = None,
    log_file: str | Path | None = None,
) -> ImportResult:
    """Import ``files`` into ``database`` of the stopped local Neo4j in ``home``, replacing it.

    The database's store is overwritten (``--overwrite-destination``): callers check that it is
    empty first. Files the tool creates are readable by their owner only (umask 077).

    Args:
        home: the local Neo4j's home (its store is ``home/data/databases/<database>``).
        files: the CSV files (:func:`ingest.bulk_csv.write_import_csv`).
        database: the database to create.
        heap: the tool's JVM heap.
        max_off_heap: memory the tool may use off the heap (its default, 90% of free memory,
            is unkind to a shared machine).
        threads: worker threads; ``None`` for the tool's default (one per core).
        log_file: where the tool's output goes (default ``home/logs/import.log``).

    Returns:
        The import's wall time and log file.

    Raises:
        BulkImportError: ``java`` missing, or the tool failed (the log's last lines are included).
    """
    from kg.neo4j.server import JVM_FLAGS

    home = Path(home).resolve()
    lib = build_importer()
    try:
        java = require_tool("java", "install a Java 17+ runtime")
    except MavenBuildError as exc:
        raise BulkImportError(str(exc)) from None
    log = Path(log_file) if log_file else home / "logs" / "import.log"
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cmd = [
        java, f"-Xmx{heap}", *JVM_FLAGS, "-cp", str(lib / "*"), _MAIN_CLASS,
        "database", "import", "full", database,
        "--overwrite-destination=true",
        f"--max-off-heap-memory={max_off_heap}",
        f"--report-file={log.with_suffix('.report')}",
        *([f"--threads={threads}"] if threads else []),
        *files.arguments(),
    ]  # fmt: skip
    env = {**os.environ, "NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf")}
    t0 = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, umask=0o077, check=False,
        )  # fmt: skip
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-12:]
        raise BulkImportError(
            f"neo4j-admin database import failed (exit {proc.returncode}); see {log}:\n"
            + "\n".join(tail)
        )
    return ImportResult(seconds=seconds, log_file=log)
