"""``POST /events``: the HTTP API's only write endpoint, and the event feed of each worker.

Off unless ``kgrec serve --events``. Then:

* ``POST /events`` takes a JSON list of events (or ``{"events": [...]}``; the schema of
  :mod:`ingest.events`), with ``Authorization: Bearer <token>``. The token is generated once
  and kept in a file readable only by its owner (``$KGREC_HOME/events-token``, mode 0600; or
  ``--events-token-file``), like the local Neo4j's password. No token or a wrong one: 401,
  nothing applied. A batch with a bad event is refused whole: 422 with one error per bad event
  (its index, id and field). A good batch is committed to Neo4j before the answer (200 with the
  receipt), and this worker answers from it at once. Batches that arrive while the worker
  commits others are committed together next (a group commit: one transaction for them all).
* Each worker polls Neo4j's event log every ``events_poll`` seconds
  (:class:`~kg.query.feed.EventFeed`), so it sees what the other workers and ``kgrec events``
  committed within about that delay; and every ``events_claim`` seconds it numbers direct
  writes into Neo4j (an ETL job's new edges and products) so that they follow the same path.
  The Neo4j reads run in a thread; events are applied on the event loop, between queries (the
  query endpoints run there too, so a query never sees half an update).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kg.query.feed import EventFeed

__all__ = ["EventsConfig", "add_event_routes", "event_token"]

log = logging.getLogger("kgrec.events")


@dataclass(frozen=True)
class EventsConfig:
    """The write endpoint of ``kgrec serve`` (its options are generated from this).

    Attributes:
        events: serve ``POST /events`` and tail Neo4j's event log (needs the Neo4j the events
            go to, and the tables the model was trained on: ``--tables``).
        events_token_file: the bearer token's file (default ``$KGREC_HOME/events-token``,
            created once, mode 0600).
        events_poll: seconds between a worker's reads of the event log.
        events_claim: seconds between checks for direct writes into Neo4j.
    """

    events: bool = False
    events_token_file: str | None = None
    events_poll: float = 0.05
    events_claim: float = 1.0

    def __post_init__(self) -> None:
        if self.events_poll <= 0 or self.events_claim <= 0:
            raise ValueError("events_poll and events_claim must be > 0 seconds")


def token_file(config: EventsConfig, environ: dict[str, str] | None = None) -> Path:
    """Where the token is kept (:attr:`EventsConfig.events_token_file`)."""
    if config.events_token_file:
        return Path(config.events_token_file)
    env = os.environ if environ is None else environ
    return Path(env.get("KGREC_HOME") or Path.home() / ".kgrec") / "events-token"


def event_token(path: Path) -> str:
    """The bearer token in ``path``, generated (and the file created, mode 0600) the first
    time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):  # another process made it first
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"{path} is empty: delete it and a new token is made")
    return token


def _unauthorised() -> JSONResponse:
    return JSONResponse(
        {"detail": "POST /events needs 'Authorization: Bearer <token>' (kgrec serve --events)"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


class _GroupCommit:
    """The batches POSTed to one worker, committed together: while one transaction runs, the
    batches that come in wait, and the next transaction takes all of them (one lock of the
    event counter, one round of statements, one read-back for the group). A group with a bad
    batch is written batch by batch, so that only the bad ones are refused."""

    def __init__(self, feed: EventFeed) -> None:
        self.feed = feed
        self.pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self.writing = False
        self._task: asyncio.Task[None] | None = None

    async def commit(self, batch: Any) -> tuple[Any, Any]:
        """``(receipt, touched)`` once ``batch`` is committed and applied here.

        Raises:
            ingest.events.EventBatchError: the batch names an unknown product.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((batch, future))
        if not self.writing:
            self.writing = True
            self._task = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        try:
            while self.pending:
                group, self.pending = self.pending, []
                try:
                    # one hand-off to a thread for the commit and the read-back: each return to
                    # the event loop waits behind the queries queued there
                    outcomes, fetched = await asyncio.to_thread(self._commit, [b for b, _ in group])
                    touched = self.feed.apply(fetched)
                except Exception as exc:  # Neo4j away: every waiting POST fails
                    outcomes, touched = [exc] * len(group), None
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():  # its client went away (the POST was cancelled)
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result((outcome, touched))
        finally:
            self.writing = False

    def _commit(self, batches: list[Any]) -> tuple[list[Any], list[Any]]:
        from ingest.events import EventBatchError

        log = self.feed.log
        outcomes: list[Any]
        try:
            outcomes = log.write_many(batches)
        except EventBatchError:
            if len(batches) == 1:
                raise
            outcomes = []
            for batch in batches:
                try:
                    outcomes.append(log.write(batch))
                except EventBatchError as exc:
                    outcomes.append(exc)
        return outcomes, self.feed.fetch()


def add_event_routes(app: FastAPI, feed: EventFeed, token: str, config: EventsConfig) -> None:
    """Add ``POST /events`` and the worker's polling task to ``app`` (module docstring)."""
    from ingest.events import EventBatchError, parse_events

    expected = f"Bearer {token}".encode()
    group = _GroupCommit(feed)

    @app.post("/events", responses={401: {}, 422: {}})
    async def events(request: Request) -> JSONResponse:
        """Commit a batch of events to Neo4j, then answer from them (module docstring)."""
        given = request.headers.get("authorization", "").encode()
        if not secrets.compare_digest(given, expected):
            return _unauthorised()
        try:
            body: Any = await request.json()
        except ValueError:
            return JSONResponse({"detail": "the body is not JSON"}, status_code=422)
        items = body.get("events") if isinstance(body, dict) else body
        if not isinstance(items, list):
            return JSONResponse(
                {"detail": 'send a JSON list of events, or {"events": [...]}'}, status_code=422
            )

        try:
            batch = parse_events(items)
            receipt, touched = await group.commit(batch)
        except EventBatchError as exc:
            return JSONResponse(
                {"detail": str(exc), "errors": [e.to_dict() for e in exc.errors]},
                status_code=422,
            )
        return JSONResponse({
            "applied": receipt.applied,
            "duplicates": receipt.duplicates,
            "first_seq": receipt.first_seq,
            "last_seq": receipt.last_seq,
            "seq": feed.seq,
            "users": len(touched.users),
            "catalogue": touched.catalogue,
        })  # fmt: skip

    stopping = asyncio.Event()

    async def poll() -> None:
        loop = asyncio.get_running_loop()
        next_claim = loop.time() + config.events_claim
        while not stopping.is_set():
            try:
                if loop.time() >= next_claim:
                    await asyncio.to_thread(feed.claim)
                    next_claim = loop.time() + config.events_claim
                fetched = await asyncio.to_thread(feed.fetch)
                if fetched:
                    feed.apply(fetched)
            except asyncio.CancelledError:
                raise
            except Exception:  # Neo4j away: keep serving what is loaded, try again
                log.exception("reading the event log failed; retrying")
                await asyncio.sleep(min(1.0, 10 * config.events_poll))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), config.events_poll)

    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        # the first claim scans the graph for what was written straight into it while no
        # worker watched: before this worker serves, not under its first requests
        try:
            await asyncio.to_thread(feed.claim)
        except Exception:  # Neo4j away: the poll tries again
            log.exception("numbering direct writes at start failed; retrying")
        task = asyncio.create_task(poll())
        try:
            async with previous(app) as state:
                yield state
        finally:
            # the poll ends after the Neo4j read in flight (a thread a cancel would not stop),
            # so the driver is closed under nobody
            stopping.set()
            await task
            feed.close()

    app.router.lifespan_context = lifespan
