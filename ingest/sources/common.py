"""Small pieces the file sources share: finding a dataset's name, reading an optional number,
and building an edge table."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa

from ingest.errors import SourceError
from ingest.rejects import Rejects

__all__ = ["edges_table", "find_dataset_name", "finite_number"]


def find_dataset_name(folder: Path, suffix: str) -> str:
    """The name ``N`` of the single ``N<suffix>`` file in ``folder``.

    Raises:
        SourceError: ``folder`` is not a folder, or holds no such file or several.
    """
    if not folder.is_dir():
        raise SourceError(folder, "not a folder")
    found = sorted(folder.glob(f"*{suffix}"))
    if len(found) != 1:
        what = f"no *{suffix} file" if not found else f"several *{suffix} files; pass name="
        raise SourceError(folder, what, value=[p.name for p in found] or None)
    return found[0].name.removesuffix(suffix)


def finite_number(
    path: Path, line: int, column: str, text: str, rejects: Rejects
) -> tuple[bool, float | None]:
    """Parse an optional finite number; ``(False, None)`` when it was reported as bad."""
    if not text:
        return True, None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        reason = f"{column} is not a finite number"
        rejects.report(SourceError(path, reason, line=line, value=text), reason)
        return False, None
    return True, value


def edges_table(pairs: dict[str, str], src: str, dst: str) -> pa.Table:
    """A two-column string table from ``{source key: target key}``."""
    return pa.Table.from_pydict(
        {src: pa.array(list(pairs), pa.string()), dst: pa.array(list(pairs.values()), pa.string())}
    )
