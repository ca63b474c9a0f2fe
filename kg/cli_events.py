"""``kgrec events FILE.jsonl | -``: live events into Neo4j (see :mod:`ingest.events`)."""

from __future__ import annotations

import argparse
import json
import select
import sys
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["register"]


def _lines(stream: TextIO, name: str, batch_size: int) -> Iterator[list[tuple[int, Any]]]:
    """Batches of ``(line number, parsed JSON)``; a batch ends at ``batch_size`` events or, on a
    stream, when no more input is waiting (so a slow producer's events go out at once)."""
    from ingest.errors import SourceError

    batch: list[tuple[int, Any]] = []
    for number, line in enumerate(stream, 1):
        if line.strip():
            try:
                batch.append((number, json.loads(line)))
            except (ValueError, RecursionError) as exc:
                raise SourceError(name, f"not a JSON event: {exc}", line=number) from None
        waiting = stream.isatty() or not select.select([stream], [], [], 0)[0]
        if len(batch) >= batch_size or (batch and waiting and not stream.seekable()):
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_events(args: argparse.Namespace) -> int:
    from ingest.events import EventBatchError, EventLog, parse_events
    from kg.cli import CommandError, resolve_settings
    from kg.neo4j.driver import open_driver

    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1, got {args.batch_size}")
    stream = args.file == "-"
    name = "<stdin>" if stream else str(args.file)
    if stream:
        batches: Iterator[list[tuple[int, Any]]] = _lines(sys.stdin, name, args.batch_size)
    else:  # a file is checked whole before anything is written
        with open(args.file, encoding="utf-8-sig") as source:
            whole = [item for batch in _lines(source, name, 1) for item in batch]
        try:
            parse_events([item for _, item in whole])
        except EventBatchError as exc:
            return _report(exc, whole, name)
        size = args.batch_size
        batches = iter([whole[lo : lo + size] for lo in range(0, len(whole), size)])
    settings = resolve_settings(args)
    applied = duplicates = 0
    with open_driver(settings) as driver:
        log = EventLog(driver, database=settings.database)
        for batch in batches:
            try:
                receipt = log.write(parse_events([item for _, item in batch]))
            except EventBatchError as exc:
                return _report(exc, batch, name)
            applied += receipt.applied
            duplicates += receipt.duplicates
            if stream:
                print(f"applied {receipt.applied} (seq {receipt.last_seq})", flush=True)
    print(f"events applied: {applied:,}, already applied (replays): {duplicates:,}")
    return 0


def _report(exc: Any, batch: list[tuple[int, Any]], name: str) -> int:
    """One line per bad event, with its line; exit status 1."""
    for error in exc.errors:
        print(f"kgrec: error: {name}:{batch[error.index][0]}: {error}", file=sys.stderr)
    return 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``events`` to the ``kgrec`` parser."""
    p = sub.add_parser(
        "events",
        help="apply live events (JSON lines) to Neo4j: interactions, new products, retirements",
        description="Each line is one JSON event (see ingest/events.py and the README). Events "
        "are committed to Neo4j in batches, durably and idempotently (a replayed event id "
        "changes nothing); running kgrec serve processes pick them up from there. A batch with "
        "a bad event is refused whole, one error line per bad event; a FILE is checked whole "
        "before anything is written.",
    )
    p.add_argument("file", metavar="FILE", help="a JSON-lines file, or - for a stream on stdin")
    p.add_argument("--batch-size", type=int, default=500, help="events per transaction")
    p.add_argument("--home")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_events)
