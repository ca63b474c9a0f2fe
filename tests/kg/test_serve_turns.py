"""Queries one per event-loop turn (:mod:`kg.serve_turns`): other ready tasks run between
them, results and errors reach their callers, a cancelled caller's query is skipped."""

from __future__ import annotations

import asyncio

import pytest

from kg.serve_turns import QueryTurns


def test_other_tasks_run_between_queries() -> None:
    log: list[str] = []

    async def main() -> list[int]:
        turns = QueryTurns()

        def query(i: int) -> int:
            log.append(f"q{i}")
            return i * i

        async def writer() -> None:  # stands for a POST /events: a step per loop turn
            for step in range(3):
                log.append(f"w{step}")
                await asyncio.sleep(0)

        queries = [asyncio.ensure_future(turns(lambda i=i: query(i))) for i in range(6)]
        await asyncio.sleep(0)  # every query is queued, as under load
        done = await asyncio.gather(writer(), *queries)
        return done[1:]

    assert asyncio.run(main()) == [i * i for i in range(6)]
    assert log.index("w2") < log.index("q5")  # not behind every query
    assert [x for x in log if x.startswith("q")] == [f"q{i}" for i in range(6)]  # in order
    for step in ("w1", "w2"):  # at most one query between two steps of the writer
        before = log.index(step)
        assert sum(x.startswith("q") for x in log[log.index(f"w{int(step[1]) - 1}") : before]) <= 1


def test_errors_reach_the_caller_and_cancelled_queries_are_skipped() -> None:
    ran: list[str] = []

    async def main() -> None:
        turns = QueryTurns()

        def boom() -> None:
            raise KeyError("no such user")

        with pytest.raises(KeyError):
            await turns(boom)
        gone = asyncio.ensure_future(turns(lambda: ran.append("gone")))
        kept = asyncio.ensure_future(turns(lambda: ran.append("kept") or 1))
        await asyncio.sleep(0)
        gone.cancel()
        assert await kept == 1

    asyncio.run(main())
    assert ran == ["kept"]
