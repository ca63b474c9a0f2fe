"""Build a small Maven project of kgrec's (the Neo4j launcher, the bulk importer, cypher-shell)
on first use.

The build is skipped while its output is newer than every source; concurrent callers wait on a
file lock in the project folder, so two processes never run Maven on the same folder.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "JAVA_HINT",
    "MavenBuildError",
    "build_maven_project",
    "is_up_to_date",
    "require_tool",
]

JAVA_HINT = "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jdk-headless)"


class MavenBuildError(RuntimeError):
    """Maven or Java is missing, or the build failed; the message says why."""


def require_tool(tool: str, hint: str) -> str:
    """The path of ``tool`` on PATH, or a :class:`MavenBuildError` with ``hint``."""
    path = shutil.which(tool)
    if path is None:
        raise MavenBuildError(f"'{tool}' was not found on PATH: {hint}")
    return path


def is_up_to_date(project_dir: Path, output: Path) -> bool:
    """True when ``output`` and ``target/lib`` (the runtime jars) exist and ``output`` is newer
    than the pom and every Java source."""
    if not output.exists() or not (project_dir / "target" / "lib").is_dir():
        return False
    sources = [project_dir / "pom.xml", *project_dir.glob("src/main/java/**/*.java")]
    built = output.stat().st_mtime
    return all(src.stat().st_mtime <= built for src in sources)


def build_maven_project(project_dir: Path, output: Path, *, what: str, force: bool = False) -> None:
    """Run ``mvn -B -q package`` in ``project_dir`` unless ``output`` is up to date.

    Args:
        project_dir: the folder with ``pom.xml``.
        output: the file whose modification time marks a finished build (touched after it).
        what: the project in words, for error messages (``"the Neo4j launcher"``).
        force: build even when up to date.

    Raises:
        MavenBuildError: ``mvn`` or ``java`` missing, or the build failed (its last lines).
    """
    if not force and is_up_to_date(project_dir, output):
        return
    mvn = require_tool(
        "mvn", f"install Apache Maven (Debian: apt-get install maven) to build {what}"
    )
    require_tool("java", JAVA_HINT)
    with open(project_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and is_up_to_date(project_dir, output):
            return
        proc = subprocess.run(
            [mvn, "-B", "-q", "package"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            raise MavenBuildError(f"building {what} with Maven failed:\n" + "\n".join(tail))
        output.touch()
