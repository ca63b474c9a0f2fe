"""Writing files and folders so that no reader, and no crash, ever sees them half-written.

Every file kgrec writes (tables, embeddings, checkpoints, models, caches, state files) goes
through :func:`write_atomic` or :func:`atomic_folder`: the data is written to a temporary
sibling, flushed to disk, and then moved onto the final name with :func:`os.replace`, which is
atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_folder", "write_atomic"]


def write_atomic(path: str | Path, data: bytes | str, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it.

    Args:
        path: the file to create or replace; its parent folder must exist.
        data: bytes, or text (written as UTF-8).
        mode: permission bits of the new file (e.g. ``0o600``); ``None`` keeps the default
            of :func:`tempfile.mkstemp` (``0o600``) widened by the process umask as for a
            plain ``open`` (``0o666 & ~umask``).

    Returns:
        ``path``.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """Build a folder in a temporary sibling that replaces ``folder`` only when the block ends
    without an exception (an exception removes the temporary folder and leaves ``folder`` as it
    was).

    Example::

        with atomic_folder("runs/tables") as tmp:
            (tmp / "a.parquet").write_bytes(...)

    Yields:
        The temporary folder to fill.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o777 & ~_umask())
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
        os.replace(folder, old / folder.name)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)


def _umask() -> int:
    """The process umask: from ``/proc/self/status`` on Linux, else by setting it and putting
    it straight back (not thread-safe, hence the last resort)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
