"""Write batches over several driver sessions at once, scheduled so that concurrent
transactions do not lock the same nodes.

Creating or deleting a relationship locks both of its nodes, so two transactions that write
edges of one product wait for each other, and two that wait in a cycle deadlock. The rows of an
edge table are therefore cut into a grid of ``lanes x lanes`` blocks by a partition of the start
nodes and a partition of the end nodes (:func:`edge_rounds`), and the blocks run in ``lanes``
rounds: in round ``s`` lane ``w`` writes block ``(w, (w + s) mod lanes)``. The blocks of one
round share no start node and no end node, so their transactions never touch the same node;
a round ends when all of its lanes have. Where start and end nodes come from one set (a node
can be both), the parts are paired as in a round-robin tournament instead. Node tables and tables keyed by one side only need a
single round (:func:`row_rounds`).

Each batch is one transaction run with ``session.execute_write``, which retries transient
errors with back-off. Deadlocks remain possible, though rarer: a new relationship is put at the
head of both of its nodes' relationship chains, which locks the relationship that headed each
chain before, and that one may link a node of this lane to a node of another lane (it was
written in an earlier round). Such a deadlock is a transient error, and the transaction that
Neo4j rolled back is run again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import neo4j

__all__ = ["Batches", "edge_rounds", "prefetch", "row_rounds", "run_rounds"]

#: One lane's work: batches of ``$parameters``, each run as one transaction.
Batches = Iterable[dict[str, Any]]


def _part(column: pa.ChunkedArray, keys: pa.Array, lanes: int) -> np.ndarray:
    """The part (``0 .. lanes - 1``) of each row's key: its position in ``keys``, modulo
    ``lanes``, so a key has one part in every column coded against the same ``keys``."""
    codes = pc.index_in(column, value_set=keys).to_numpy(zero_copy_only=False)
    return (codes % lanes).astype(np.int64)


def _keys(*columns: pa.ChunkedArray) -> pa.Array:
    return pc.unique(pa.chunked_array([c for col in columns for c in col.chunks], pa.string()))


def edge_rounds(
    table: pa.Table, src: str, dst: str, lanes: int, *, same_nodes: bool = False
) -> list[list[pa.Table]]:
    """The rows of ``table`` as rounds of at most ``lanes`` blocks that share no node.

    Args:
        table: an edge table.
        src / dst: the columns of the start and end nodes' keys.
        lanes: concurrent transactions.
        same_nodes: start and end nodes come from one set (``SUBCATEGORY_OF``, triples from
            entities to entities): a node may then be the start of one edge and the end of
            another, and the rounds pair the parts as in a round-robin tournament instead.

    Returns:
        ``rounds[s][w]``: the rows lane ``w`` writes in round ``s``; no two blocks of a round
        share a start or end key.
    """
    if lanes == 1 or table.num_rows == 0:
        return [[table]]
    parts = 2 * lanes if same_nodes else lanes
    keys = _keys(table.column(src), table.column(dst))  # one code per key, on both sides
    block = _part(table.column(src), keys, parts) * parts + _part(table.column(dst), keys, parts)
    order = np.argsort(block, kind="stable")
    starts = np.searchsorted(block[order], np.arange(parts * parts + 1))
    rows = table.take(pa.array(order))

    def rows_of(blocks: list[int]) -> pa.Table:
        return pa.concat_tables([rows.slice(starts[b], starts[b + 1] - starts[b]) for b in blocks])

    if not same_nodes:  # round s: lane w takes block (w, w + s): a Latin square
        return [
            [rows_of([w * parts + (w + s) % parts]) for w in range(lanes)] for s in range(lanes)
        ]
    return [
        [rows_of(_pair_blocks(a, b, parts, first=r == 0)) for a, b in _matching(r, parts)]
        for r in range(parts - 1)
    ]


def _matching(r: int, players: int) -> list[tuple[int, int]]:
    """Round ``r`` of a round-robin tournament of an even number of players (circle method):
    every player plays once, and over ``players - 1`` rounds every pair meets once."""
    m = players - 1
    pairs = [(m, r)]
    pairs += [((r + i) % m, (r - i) % m) for i in range(1, players // 2)]
    return pairs


def _pair_blocks(a: int, b: int, parts: int, *, first: bool) -> list[int]:
    """The blocks of parts ``a`` and ``b`` (both directions); in the first round, where every
    part plays once, also each part's block with itself."""
    blocks = [a * parts + b, b * parts + a]
    return [*blocks, a * parts + a, b * parts + b] if first else blocks


def row_rounds(table: pa.Table, key: str, lanes: int) -> list[list[pa.Table]]:
    """The rows of ``table`` as one round of ``lanes`` blocks with disjoint ``key`` values."""
    if lanes == 1 or table.num_rows == 0:
        return [[table]]
    part = _part(table.column(key), _keys(table.column(key)), lanes)
    return [[table.filter(pa.array(part == w)) for w in range(lanes)]]


def run_rounds(
    driver: neo4j.Driver,
    query: str,
    rounds: Iterable[Iterable[Batches]],
    *,
    database: str,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Run ``query`` once per batch: the lanes of a round at once, one session each; the next
    round starts when every lane of this one has finished.

    Args:
        driver: an open driver.
        query: the write query, taking a batch's parameters.
        rounds: per round, the lanes; per lane, its batches in order.
        database: the target database.
        on_batch: called (from a lane's thread) after each committed batch.

    Raises:
        The first error of any lane, once the round's other lanes have stopped.
    """

    failed = threading.Event()

    def lane(batches: Batches) -> None:
        with driver.session(database=database) as session:
            for params in prefetch(batches):
                if failed.is_set():  # another lane failed: stop at a batch boundary
                    return
                try:
                    session.execute_write(lambda tx, p=params: tx.run(query, p).consume())
                except BaseException:
                    failed.set()
                    raise
                if on_batch is not None:
                    on_batch(params)

    for lanes in rounds:
        work = list(lanes)
        if len(work) == 1:
            lane(work[0])
            continue
        with ThreadPoolExecutor(len(work)) as pool:
            futures = [pool.submit(lane, batches) for batches in work]
            for future in futures:
                future.result()


def prefetch(batches: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``batches``, with the next one built on a helper thread while the current one runs."""
    it = iter(batches)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(next, it, None)
        while (params := pending.result()) is not None:
            pending = pool.submit(next, it, None)
            yield params
