"""Exceptions raised while reading, validating and loading graph data."""

from __future__ import annotations

from pathlib import Path

__all__ = ["IngestError", "SourceError", "ValidationError"]


class IngestError(Exception):
    """Base class for every error the ingest package raises on bad input."""


class SourceError(IngestError):
    """A source file is malformed: names the file, the line (or record) and the offending value.

    Args:
        path: the file that is wrong.
        message: what is wrong.
        line: 1-based line number, when the format has lines.
        record: the record key (e.g. a JSON object key), when the format has no useful lines.
        value: the offending value, shown shortened.
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        record: str | None = None,
        value: object = None,
    ) -> None:
        self.path = str(path)
        self.message = message
        self.line = line
        self.record = record
        self.value = value
        where = self.path
        if line is not None:
            where += f":{line}"
        if record is not None:
            where += f" (record {record!r})"
        text = f"{where}: {message}"
        if value is not None:
            shown = repr(value)
            text += f": {shown[:200]}{'...' if len(shown) > 200 else ''}"
        super().__init__(text)


class ValidationError(IngestError):
    """Canonical tables break a rule (unknown key, duplicate key, null key, bad type).

    Args:
        table: the table name.
        message: what is wrong.
        row: 0-based row index in that table, when one row is to blame.
        value: the offending value.
    """

    def __init__(self, table: str, message: str, *, row: int | None = None, value: object = None):
        self.table = table
        self.row = row
        self.value = value
        where = table if row is None else f"{table} row {row}"
        text = f"{where}: {message}"
        if value is not None:
            text += f": {value!r}"
        super().__init__(text)
