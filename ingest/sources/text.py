"""Text rules every source applies: UTF-8 with the real line of a bad byte, one field-size
limit, no lone surrogates.

* Files are UTF-8; a UTF-8 byte-order mark at the start is allowed (CSV and JSON alike). A byte
  that is not UTF-8 is reported with its 1-based line.
* A text field (a title, a description, an id...) holds at most :data:`MAX_FIELD_CHARS`
  characters, in every format. That is the size Python's CSV reader accepts by default, so
  CSV and JSON refuse the same fields.
* A JSON string may spell a lone UTF-16 surrogate (``"\\ud800"``), which is no Unicode
  character: such a value cannot be stored (Arrow, Neo4j) and is a bad record.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from ingest.errors import SourceError

__all__ = ["MAX_FIELD_CHARS", "decode_utf8", "field_problem", "read_utf8", "utf8_error"]

#: Most characters of one text field (128 KiB, the csv module's default field limit).
MAX_FIELD_CHARS = 131_072


def field_problem(value: str) -> str | None:
    """Why a text value cannot be stored, or ``None`` when it can."""
    if len(value) > MAX_FIELD_CHARS:
        return f"longer than the {MAX_FIELD_CHARS:,}-character limit ({len(value):,})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode (a lone surrogate such as \\ud800)"
    return None


def utf8_error(path: str | Path, data: bytes, exc: UnicodeDecodeError) -> SourceError:
    """The error for a byte of ``data`` (a file's content) that is not UTF-8: its 1-based line
    and the line's bytes up to the bad one."""
    line = data.count(b"\n", 0, exc.start) + 1
    start = data.rfind(b"\n", 0, exc.start) + 1
    bad = data[exc.start : exc.end]
    return SourceError(
        path,
        f"not UTF-8 text ({exc.reason}: byte {bad.hex(' ')} at column {exc.start - start + 1})",
        line=line,
        value=data[start : exc.start + 1],
    )


def read_utf8(path: str | Path, *, shown: str | Path | None = None) -> str:
    """The text of a UTF-8 file (a leading byte-order mark dropped).

    Args:
        path: the file.
        shown: the name to report instead of ``path`` (e.g. ``archive.zip!member``).

    Raises:
        SourceError: the file is missing, or not UTF-8 (with the line of the first bad byte).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SourceError(shown or path, "file not found") from None
    return decode_utf8(data, shown or path)


def decode_utf8(data: bytes, path: str | Path) -> str:
    """``data`` decoded as UTF-8 (a leading byte-order mark dropped); see :func:`read_utf8`."""
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        exc.start += bom
        exc.end += bom
        raise utf8_error(path, data, exc) from None
