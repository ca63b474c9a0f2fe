"""Queries computed one per event-loop turn, so that event writes are not queued behind them.

A ``kgrec serve`` worker computes its queries on its event loop (``kg.serve``): a query is a
few milliseconds of numpy work that holds the GIL. Under load each worker has many requests
ready at once, and asyncio runs ready tasks in arrival order. Before this, a query task ran to
completion in its first step, so every await of a ``POST /events`` (its body, the hand-off of
its commit to a thread, the commit's return, the answer) waited behind every query ready at
that moment: with 32 clients on 2 workers about 16 queries, hundreds of milliseconds per
await.

:class:`QueryTurns` queues the queries instead: a request's handler parks its query and
awaits the result, and one task computes the queued queries in arrival order, one per loop
turn. Between two queries the loop runs everything else that is ready: the event POSTs'
steps, the event feed's applies, the handlers of new requests (which only queue their query).
A POST's await then waits for one query, not for all of them; the queries' own order and
total work are unchanged. Each query still runs whole within one step of the loop, between
applies of live events, so none sees half an update.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["QueryTurns"]

T = TypeVar("T")


class QueryTurns:
    """The queries of one event loop, computed in arrival order, one per loop turn."""

    def __init__(self) -> None:
        self._queue: deque[tuple[Callable[[], Any], asyncio.Future[Any]]] = deque()
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, compute: Callable[[], T]) -> T:
        """``compute()``, run in its turn; its exception is raised here."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((compute, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            compute, future = self._queue.popleft()
            if not future.done():  # not cancelled: its client is still there
                try:
                    future.set_result(compute())
                except Exception as exc:  # the handler raises it (404, 422, 500)
                    future.set_exception(exc)
            await asyncio.sleep(0)  # what else is ready runs before the next query
