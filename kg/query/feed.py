"""The event feed of a served recommender: Neo4j's event log, tailed into the query layer.

Every process that answers queries (each ``kgrec serve`` worker) holds an :class:`EventFeed`.
Events reach it only through Neo4j, so all workers see the same sequence:

* :meth:`EventFeed.submit` (``POST /events``) commits a validated batch to Neo4j
  (:meth:`ingest.events.EventLog.write`, durable before it returns) and then catches up, so the
  worker that took the batch answers from it at once;
* :meth:`EventFeed.fetch` and :meth:`EventFeed.apply` catch up with what other writers
  committed (the other workers' batches, ``kgrec events``): ``kgrec serve`` polls every
  ``poll_interval`` seconds (:class:`~kg.serve.EventsConfig`);
* every ``claim_interval`` seconds, :meth:`EventFeed.claim` numbers what an ETL job or an
  analyst wrote straight into Neo4j (:meth:`~ingest.events.EventLog.claim_direct_writes`),
  after which it comes through :meth:`fetch` like an event. It checks the graph's counts first
  (a constant-time read), so an idle claim costs one query.

What an applied batch changed (:class:`~kg.query.live.Touched`) is invalidated in the
precomputed answers: the answers of the users and products it touched, or the whole store when
the catalogue changed (a new product can enter any answer).

A feed started on a snapshot (the tables the model was trained on) replays the whole log from
sequence 0: an interaction the snapshot already holds is skipped, so a restarted server ends in
the state it had, and nothing acknowledged is lost.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kg.query.live import LiveState, Touched

if TYPE_CHECKING:
    import neo4j

    from ingest import schema
    from ingest.events import AppliedEvent, EventLog, EventReceipt
    from kg.neo4j.settings import Neo4jSettings
    from kg.query.answers import AnswerStore
    from kg.query.recommender import Recommender

__all__ = ["EventFeed"]


class EventFeed:
    """Neo4j's event log applied to one recommender (module docstring).

    Args:
        rec: the recommender, changed in place.
        neo4j: the database the events are in; each process opens its own driver on first use
            (a driver does not survive a fork).
        answers: the precomputed answers to invalidate, or ``None``.
        batch: events read per query while catching up.
    """

    def __init__(
        self,
        rec: Recommender,
        neo4j: Neo4jSettings,
        answers: AnswerStore | None = None,
        *,
        batch: int = 10_000,
    ) -> None:
        self.rec = rec
        self.live = rec.live if rec.live is not None else LiveState(rec)
        self.settings = neo4j
        self.answers = answers
        self.batch = batch
        self.dropped = False  # the store was dropped (a catalogue change)
        self._driver: neo4j.Driver | None = None
        self._log: EventLog | None = None
        self._pid = -1
        self._snapshot: tuple[int, int, int] | None = None  # see claim
        self._lock = threading.Lock()  # one apply at a time in this process

    @property
    def log(self) -> EventLog:
        """This process's event log (a driver opened after any fork)."""
        if self._log is None or self._pid != os.getpid():
            from ingest.events import EventLog
            from kg.neo4j.driver import open_driver

            self._driver = open_driver(self.settings)
            self._log = EventLog(self._driver, database=self.settings.database)
            self._pid = os.getpid()
        return self._log

    @property
    def seq(self) -> int:
        """The last sequence number applied."""
        return self.live.seq

    def fetch(self) -> list[AppliedEvent]:
        """Committed events not applied yet, in sequence order (every one of them: read in
        batches). Neo4j work only: callers may run it off the thread that answers queries."""
        out: list[AppliedEvent] = []
        after = self.live.seq
        while True:
            got = self.log.since(after, limit=self.batch)
            if not got:
                return out
            out += got
            after = got[-1].seq

    def apply(self, events: Sequence[AppliedEvent]) -> Touched:
        """Apply fetched events to the recommender and invalidate what they touched."""
        with self._lock:
            touched = self.live.apply(events)
        self._invalidate(touched)
        return touched

    def catch_up(self) -> Touched:
        """:meth:`fetch` then :meth:`apply`."""
        return self.apply(self.fetch())

    def submit(self, events: Sequence[schema.Event]) -> tuple[EventReceipt, Touched]:
        """Commit a validated batch to Neo4j, then catch up (so it is answered from at once).

        Raises:
            ingest.events.EventBatchError: an interaction names an unknown product (nothing
                written).
        """
        receipt = self.log.write(events)
        return receipt, self.catch_up()

    def claim(self) -> int:
        """Number direct writes into the event sequence; how many were numbered.

        The first call scans the graph. After that a scan runs only when the graph's counts
        moved by more than the event log explains: ``INTERACTED`` edges grown by other than
        the edges numbered since the last call, or ``Product`` nodes grown at all (events add
        products too, but rarely). Under a stream of events nothing is scanned.
        """
        log = self.log
        now = log.snapshot()
        last, self._snapshot = self._snapshot, now
        if last is None:
            edges = products = True
        else:
            numbered = log.numbered_between(last[2], now[2])
            edges, products = now[0] - last[0] != numbered, now[1] != last[1]
        if not (edges or products):
            return 0
        claimed = log.claim_direct_writes(edges=edges, products=products)
        if claimed:  # they are numbered now: not to be counted again by the next call
            self._snapshot = log.snapshot()
        return claimed

    def _invalidate(self, touched: Touched) -> None:
        if self.answers is None or self.dropped or not touched.applied:
            return
        if touched.catalogue:
            self.dropped = True  # any answer may hold a product that changed, or miss a new one
            return
        self.answers.invalidate_users(touched.users)
        self.answers.invalidate_products(touched.products)

    def close(self) -> None:
        """Close this process's driver."""
        if self._driver is not None and self._pid == os.getpid():
            self._driver.close()
        self._driver = self._log = None
