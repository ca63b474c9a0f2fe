"""Skip-and-report mode: collect the records a source had to drop instead of failing on the first.

Every source function takes ``rejects: Rejects | None``. ``None`` (or ``Rejects("raise")``) makes
the first bad record raise its :class:`~ingest.errors.SourceError`; ``Rejects("skip")`` drops the
bad record, remembers why, and lets the source go on. Problems that concern a whole file (an
empty file, malformed JSON, a missing header column) always raise, whatever the mode.

Example::

    rejects = Rejects("skip")
    tables = read_amazon(folder, rejects=rejects)
    if rejects.count:
        rejects.write(out / "rejects.jsonl")
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ingest.errors import SourceError

__all__ = ["OnError", "Reject", "Rejects"]

OnError = Literal["raise", "skip"]


@dataclass(frozen=True)
class Reject:
    """One dropped record.

    Attributes:
        path: the file the record came from.
        line: its 1-based line, when the format has lines.
        record: its record key (e.g. a JSON object key), when known.
        reason: a short, fixed description used to count rejects (e.g. ``"unknown product"``).
        message: the full error text.
        value: the offending value.
    """

    path: str
    line: int | None
    record: str | None
    reason: str
    message: str
    value: Any


class Rejects:
    """Collects rejected records, or raises them, depending on ``on_error``.

    Args:
        on_error: ``"raise"`` re-raises every reported error; ``"skip"`` records it.
    """

    def __init__(self, on_error: OnError = "skip") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        self.on_error: OnError = on_error
        self._items: list[Reject] = []
        self._reasons: Counter[str] = Counter()

    def report(self, error: SourceError, reason: str | None = None) -> None:
        """Raise ``error`` (mode ``"raise"``) or record it (mode ``"skip"``).

        Args:
            error: the problem with one record.
            reason: a short fixed label to count this reject under; defaults to the error's
                message without its location and value.

        Raises:
            SourceError: ``error`` itself, in mode ``"raise"``.
        """
        if self.on_error == "raise":
            raise error
        label = reason if reason is not None else error.message
        self._items.append(
            Reject(
                path=error.path,
                line=error.line,
                record=error.record,
                reason=label,
                message=str(error),
                value=error.value,
            )
        )
        self._reasons[label] += 1

    @property
    def count(self) -> int:
        """How many records were rejected."""
        return len(self._items)

    @property
    def items(self) -> list[Reject]:
        """The rejected records, in the order they were reported."""
        return list(self._items)

    def summary(self) -> dict[str, int]:
        """Number of rejects per reason, most frequent first."""
        return dict(self._reasons.most_common())

    def write(self, path: str | Path) -> Path:
        """Write one JSON object per reject (JSON lines); values JSON cannot hold are repr'd.

        Args:
            path: the file to write; its parent folders are created.

        Returns:
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for item in self._items:
                out.write(json.dumps(asdict(item), ensure_ascii=False, default=repr) + "\n")
        return path

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"Rejects(on_error={self.on_error!r}, count={self.count})"
