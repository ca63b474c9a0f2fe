"""Load :class:`GraphTables` into Neo4j: constraints first, then ``UNWIND $rows`` batches.

Every write merges on keys, so a second load changes nothing and a load killed part-way is
finished by running it again. Tables are validated before the first write, so bad input never
leaves a half-written graph. Labels and relationship types come from :mod:`ingest.schema`
(code constants); every value travels as a ``$parameter``.

What a re-load does to what is stored:

* a node's properties are set from the tables; a value the tables leave null (not given by
  the source) keeps the stored one;
* the outgoing ``INTERACTED``, ``IN_CATEGORY``, ``MADE_BY`` and ``SUBCATEGORY_OF`` edges of every
  node in the tables become exactly the tables' rows: a user's history that changed replaces the
  stored one (edges at positions it no longer has, or to other products, are deleted; edges
  written by live events, :mod:`ingest.events`, are kept), a product
  that moved to another brand or category loses the old edge. Nodes the tables do not list keep
  their edges. KG triples are only ever added.
* ``INTERACTED`` is keyed by ``(user, order)``: a relationship property uniqueness constraint on
  ``(r.user_id, r.order)`` (``user_id`` repeats the user's key on the edge for it) enforces it in
  Neo4j. On the first load of ``INTERACTED`` the constraint is created right after its edges
  (one index build instead of an update per edge), still under the load lock.

Loads are serialised by a lock held in Neo4j (:func:`load_lock`): two loads started together
run one after the other instead of both finding the graph empty and both creating its edges.
Within a load, several transactions write at once, on rows scheduled so that they do not lock
the same nodes (:mod:`ingest.neo4j_parallel`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ingest import schema
from ingest.neo4j_parallel import edge_rounds, row_rounds, run_rounds
from ingest.search_index import index_product_text
from ingest.tables import GraphTables

if TYPE_CHECKING:
    import neo4j

__all__ = ["LoadReport", "ensure_constraints", "graph_counts", "load_lock", "write_graph"]

DEFAULT_BATCH_SIZE = 10_000
#: Write transactions run at once (:mod:`ingest.neo4j_parallel`).
DEFAULT_WORKERS = 4

_log = logging.getLogger(__name__)

#: The label of the node whose write lock serialises loads (one node, ``name: "load"``).
LOCK_LABEL = "KgrecLock"
#: Seconds a load waits for the lock before it logs that another load holds it.
_WAIT_NOTICE = 1.0
#: The relationship types whose outgoing edges a load replaces per source node, with the node
#: table that lists those source nodes (module docstring).
_REPLACED: dict[str, str] = {
    "interactions": "users",
    "in_category": "products",
    "made_by": "products",
    "subcategory_of": "categories",
}

_NODE_PROPS: dict[str, tuple[str, ...]] = {
    "users": (),
    "products": ("title", "description", "price"),
    "categories": ("name", "level"),
    "brands": ("name",),
    "entities": ("name",),
}
_EDGE_PROPS: dict[str, tuple[str, ...]] = {
    "interactions": ("ts", "kind", "weight", "split"),
    "in_category": (),
    "subcategory_of": (),
    "made_by": (),
}


@dataclass
class LoadReport:
    """What a load wrote and how fast.

    Attributes:
        rows: rows sent per table.
        seconds: wall time per table.
        node_rows / rel_rows: totals over node and relationship tables.
        total_seconds: wall time of the whole load, constraints included.
    """

    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0

    @property
    def node_rows(self) -> int:
        return sum(self.rows.get(n.table, 0) for n in schema.NODE_TYPES)

    @property
    def rel_rows(self) -> int:
        return sum(v for k, v in self.rows.items() if k not in {n.table for n in schema.NODE_TYPES})

    def rate(self, tables: tuple[str, ...]) -> float:
        """Rows per second over the given tables."""
        secs = sum(self.seconds.get(t, 0.0) for t in tables)
        return sum(self.rows.get(t, 0) for t in tables) / secs if secs else 0.0


#: The uniqueness constraint on the ``(user, order)`` key of ``INTERACTED``.
INTERACTED_KEY = "kgrec_interactions_user_order"


def ensure_constraints(
    driver: neo4j.Driver,
    *,
    database: str = "neo4j",
    repair: bool = True,
    interaction_key: bool = True,
) -> None:
    """Create a uniqueness constraint on every node key and, with ``interaction_key``, on the
    ``(user_id, order)`` key of ``INTERACTED`` (no-op when they exist).

    A graph loaded by an earlier kgrec may hold the same edge twice (concurrent loads doubled
    them); with ``repair`` those copies are removed before the ``INTERACTED`` constraint is
    created. A graph known to hold each edge once (a bulk import of validated tables) skips
    that scan with ``repair=False``.
    """
    for node in (*schema.NODE_TYPES, schema.NodeType(LOCK_LABEL, "lock", "name")):
        name = f"kgrec_{node.table}_{node.key}"
        # Identifiers cannot be parameters in Cypher; these come from ingest.schema constants.
        query = (
            f"CREATE CONSTRAINT {name} IF NOT EXISTS "
            f"FOR (n:{node.label}) REQUIRE n.{node.key} IS UNIQUE"
        )
        driver.execute_query(query, database_=database)
    if interaction_key and not _has_constraint(driver, INTERACTED_KEY, database):
        if repair:
            _remove_duplicate_edges(driver, database)
        driver.execute_query(
            f"CREATE CONSTRAINT {INTERACTED_KEY} IF NOT EXISTS "
            f"FOR ()-[r:{schema.INTERACTED.rel_type}]-() REQUIRE (r.user_id, r.order) IS UNIQUE",
            database_=database,
        )
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)


def _has_constraint(driver: neo4j.Driver, name: str, database: str) -> bool:
    records, _, _ = driver.execute_query(
        "SHOW CONSTRAINTS YIELD name WHERE name = $name RETURN name", name=name, database_=database
    )
    return bool(records)


def _remove_duplicate_edges(driver: neo4j.Driver, database: str) -> None:
    """Keep one ``INTERACTED`` edge per (user, order) and one edge of each other fixed type per
    pair of nodes (a one-off repair of graphs from before the key was enforced)."""
    interacted = schema.INTERACTED.rel_type
    with driver.session(database=database) as session:
        session.run(
            f"MATCH (a:{schema.USER.label})-[r:{interacted}]->() "
            "WITH a, r.order AS o, collect(r) AS rs WHERE size(rs) > 1 "
            "CALL { WITH rs FOREACH (x IN tail(rs) | DELETE x) } IN TRANSACTIONS OF 1000 ROWS"
        ).consume()
        for edge in schema.EDGE_TYPES:
            if edge is schema.INTERACTED:
                continue
            session.run(
                f"MATCH (a)-[r:{edge.rel_type}]->(b) WITH a, b, collect(r) AS rs "
                "WHERE size(rs) > 1 "
                "CALL { WITH rs FOREACH (x IN tail(rs) | DELETE x) } IN TRANSACTIONS OF 1000 ROWS"
            ).consume()


@contextlib.contextmanager
def load_lock(driver: neo4j.Driver, *, database: str = "neo4j") -> Iterator[None]:
    """Hold the graph's load lock while the block runs.

    The lock is the write lock of one ``(:KgrecLock {name: "load"})`` node, taken by a
    transaction that stays open for the whole block and is rolled back at its end. Neo4j
    releases it when that transaction ends, also when this process dies (its connection
    closes) or Neo4j restarts, so a crashed load never leaves the graph locked. A second load
    waits for the first, logging a warning after a second of waiting.
    """
    holder = f"{socket.gethostname()}:{os.getpid()}"
    with driver.session(database=database) as session:
        session.run(f"MERGE (:{LOCK_LABEL} {{name: 'load'}})").consume()
        tx = session.begin_transaction()
        try:
            notice = threading.Timer(
                _WAIT_NOTICE, _log.warning, ("waiting for another kgrec load to finish",)
            )
            notice.start()
            try:
                tx.run(
                    f"MATCH (l:{LOCK_LABEL} {{name: 'load'}}) SET l.holder = $holder",
                    holder=holder,
                ).consume()
            finally:
                notice.cancel()
            yield
        finally:
            tx.rollback()


def _batches(
    table: pa.Table, columns: tuple[str, ...], size: int
) -> Iterator[dict[str, list[Any]]]:
    """Column-wise batches ``{"p_<column>": [values]}``: far cheaper to send than row maps."""
    for batch in table.select(list(columns)).to_batches(max_chunksize=size):
        yield {f"p_{c}": batch.column(c).to_pylist() for c in columns}


def _rel_count(driver: neo4j.Driver, rel_type: str, database: str) -> int:
    records, _, _ = driver.execute_query(
        f"MATCH ()-[r:{rel_type}]->() RETURN count(r) AS n", database_=database
    )
    return int(records[0]["n"])


# Queries index into parallel parameter lists: UNWIND range(...) AS i ... $p_col[i].
_ROWS = "UNWIND range(0, size($p_{first}) - 1) AS i "


def _node_query(node: schema.NodeType, props: tuple[str, ...]) -> str:
    # a value not given (null) keeps the stored one
    sets = ", ".join(f"n.{p} = coalesce($p_{p}[i], n.{p})" for p in props)
    if node is schema.PRODUCT:  # sequenced: batch-loaded (ingest.events.DirectWrites)
        sets += ", n.seq = coalesce(n.seq, 0)"
    return (
        _ROWS.format(first=node.key)
        + f"MERGE (n:{node.label} {{{node.key}: $p_{node.key}[i]}})"
        + (f" SET {sets}" if sets else "")
    )


def _edge_query(edge: schema.EdgeType, props: tuple[str, ...], create: bool) -> str:
    head = (
        _ROWS.format(first=edge.src_col)
        + f"MATCH (a:{edge.src.label} {{{edge.src.key}: $p_{edge.src_col}[i]}}) "
        + f"MATCH (b:{edge.dst.label} {{{edge.dst.key}: $p_{edge.dst_col}[i]}}) "
    )
    # INTERACTED is keyed by (user, order): a user has one event per position in the history,
    # and the edge repeats the user's key for the uniqueness constraint on (user_id, order).
    key = ("order",) if edge is schema.INTERACTED else ()
    if edge is schema.INTERACTED:
        props = (edge.src_col, *props)
    # seq 0: batch-loaded, not a direct write for ingest.events.DirectWrites to claim
    seq = ("seq: 0",) if edge is schema.INTERACTED else ()
    if create:  # first load of this type: properties in the pattern (nulls are skipped)
        allp = ", ".join((*(f"{p}: $p_{p}[i]" for p in (*key, *props)), *seq))
        return head + f"CREATE (a)-[:{edge.rel_type}" + (f" {{{allp}}}" if allp else "") + "]->(b)"
    keys = ", ".join(f"{p}: $p_{p}[i]" for p in key)
    sets = ", ".join(f"r.{p} = $p_{p}[i]" for p in props)
    if seq:
        sets += ", r.seq = coalesce(r.seq, 0)"
    return (
        head
        + f"MERGE (a)-[r:{edge.rel_type}"
        + (f" {{{keys}}}" if keys else "")
        + "]->(b)"
        + (f" SET {sets}" if sets else "")
    )


def _prune_query(edge: schema.EdgeType) -> str:
    """Delete the outgoing ``edge`` edges of each listed node that the load does not hold:
    ``$p_keep[i]`` lists the keys kept (the target's key, and for ``INTERACTED`` its order)."""
    kept = "b.id + $sep + toString(r.order)" if edge is schema.INTERACTED else "b.id"
    # an interaction a live event wrote (ingest.events) is not the source's to delete
    live = "r.event_id IS NULL AND " if edge is schema.INTERACTED else ""
    return (
        _ROWS.format(first="id")
        + f"MATCH (a:{edge.src.label} {{{edge.src.key}: $p_id[i]}})-[r:{edge.rel_type}]->(b) "
        + f"WHERE {live}NOT {kept} IN $p_keep[i] DELETE r"
    )


#: Joins a target key and an order in the keys of :func:`_prune_query`.
_SEP = "\x1f"


def _kept(
    tables: GraphTables, edge: schema.EdgeType, batch_size: int, lanes: int
) -> list[Iterator[dict[str, Any]]]:
    """Per lane, batches ``{"p_id": [source key], "p_keep": [[kept key, ...]], "sep": ...}``
    over an equal share of the nodes of the edge's source table, with the edges the load keeps
    for each."""
    table = tables.table(edge.table)
    target = table.column(edge.dst_col)
    if edge is schema.INTERACTED:
        order = pc.cast(table.column("order"), pa.string())
        target = pc.binary_join_element_wise(target, order, _SEP)
    grouped = (
        pa.table({"id": table.column(edge.src_col), "keep": target})
        .group_by("id")
        .aggregate([("keep", "list")])
    )
    keep = dict(zip(grouped["id"].to_pylist(), grouped["keep_list"].to_pylist(), strict=True))
    ids = tables.table(_REPLACED[edge.table]).column("id").to_pylist()

    def lane(part: list[str]) -> Iterator[dict[str, Any]]:
        for lo in range(0, len(part), batch_size):
            chunk = part[lo : lo + batch_size]
            yield {"p_id": chunk, "p_keep": [keep.get(v, []) for v in chunk], "sep": _SEP}

    n = len(ids)
    return [lane(ids[w * n // lanes : (w + 1) * n // lanes]) for w in range(lanes)]


def _triple_query(head: str, rel_type: str, tail: str, create: bool) -> str:
    verb = "CREATE" if create else "MERGE"
    return (
        _ROWS.format(first="head_id")
        + f"MATCH (a:{head} {{id: $p_head_id[i]}}) MATCH (b:{tail} {{id: $p_tail_id[i]}}) "
        + f"{verb} (a)-[r:{rel_type}]->(b) SET r.relation = $p_relation[i]"
    )


def _run_tables(
    driver: neo4j.Driver,
    query: str,
    rounds: list[list[pa.Table]],
    columns: tuple[str, ...],
    database: str,
    batch_size: int,
    bar: Any,
) -> None:
    """Run ``query`` over the rows of each lane's table, ``batch_size`` rows per transaction
    (:func:`ingest.neo4j_parallel.run_rounds`)."""
    lanes = [[_batches(t, columns, batch_size) for t in lanes] for lanes in rounds]
    run_rounds(driver, query, lanes, database=database, on_batch=_counter(bar))


def _counter(bar: Any) -> Any:
    if bar is None:
        return None
    return lambda params: bar.update(len(next(iter(params.values()))))


def write_graph(
    driver: neo4j.Driver,
    tables: GraphTables,
    *,
    database: str = "neo4j",
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = DEFAULT_WORKERS,
    show_progress: bool = True,
) -> LoadReport:
    """Validate ``tables`` and merge them into Neo4j (what a re-load changes: module docstring).

    Relationship tables whose type has no relationship in the database yet are written with
    ``CREATE`` (fast first load); otherwise with ``MERGE`` (re-runs and resumed loads), after
    the edges the tables no longer hold are deleted. Either way a finished load holds each row
    exactly once. The whole load holds the graph's load lock (:func:`load_lock`).

    ``workers`` transactions run at once, each in its own session, on rows partitioned so that
    concurrent transactions write disjoint nodes (:mod:`ingest.neo4j_parallel`); each
    transaction is retried on transient errors such as deadlocks.

    Args:
        driver: an open driver (see :func:`kg.neo4j.driver.open_driver`).
        tables: the graph; validated here before anything is written.
        database: target database.
        batch_size: rows per transaction.
        workers: concurrent write transactions (1: one after the other).
        show_progress: show a tqdm bar over all rows.

    Returns:
        A :class:`LoadReport` with rows and seconds per table.
    """
    from tqdm.auto import tqdm

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    tables.validate()
    report = LoadReport()
    start = time.perf_counter()
    # The first INTERACTED edges are written before their key constraint exists, which is then
    # built over them in one pass: cheaper than keeping its index up to date edge by edge.
    # The tables were validated (each key once) and the load holds the lock, so nothing can
    # break the key meanwhile; a load that dies before the constraint exists is a re-run that
    # finds edges and creates it first (after removing any duplicates).
    defer_key = _rel_count(driver, schema.INTERACTED.rel_type, database) == 0 and not (
        _has_constraint(driver, INTERACTED_KEY, database)
    )
    ensure_constraints(driver, database=database, interaction_key=not defer_key)
    total = sum(tables.counts().values())
    with (
        load_lock(driver, database=database),
        tqdm(total=total, desc="load", unit="row", disable=not show_progress) as bar,
    ):
        for node in schema.NODE_TYPES:
            table = tables.table(node.table)
            props = _NODE_PROPS[node.table]
            t0 = time.perf_counter()
            if table.num_rows:
                cols = (node.key, *props)
                rounds = row_rounds(table.select(list(cols)), node.key, workers)
                query = _node_query(node, props)
                _run_tables(driver, query, rounds, cols, database, batch_size, bar)
            report.rows[node.table] = table.num_rows
            report.seconds[node.table] = time.perf_counter() - t0
        for edge in schema.EDGE_TYPES:
            table = tables.table(edge.table)
            props = _EDGE_PROPS[edge.table]
            extra = ("order",) if edge is schema.INTERACTED else ()
            cols = (edge.src_col, edge.dst_col, *extra, *props)
            t0 = time.perf_counter()
            create = _rel_count(driver, edge.rel_type, database) == 0
            if not create:
                prune = _kept(tables, edge, batch_size, workers)
                run_rounds(driver, _prune_query(edge), [prune], database=database)
            if table.num_rows:
                query = _edge_query(edge, props, create)
                same = edge.src.label == edge.dst.label
                rounds = edge_rounds(
                    table.select(list(cols)), edge.src_col, edge.dst_col, workers, same_nodes=same
                )
                _run_tables(driver, query, rounds, cols, database, batch_size, bar)
            if edge is schema.INTERACTED and defer_key:
                ensure_constraints(driver, database=database)
            report.rows[edge.table] = table.num_rows
            report.seconds[edge.table] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _write_triples(driver, tables.triples, database, batch_size, workers, bar)
        report.rows["triples"] = tables.triples.num_rows
        report.seconds["triples"] = time.perf_counter() - t0
        index_product_text(driver, database=database, batch_size=batch_size)
    report.total_seconds = time.perf_counter() - start
    return report


def _write_triples(
    driver: neo4j.Driver, triples: pa.Table, database: str, batch_size: int, workers: int, bar: Any
) -> None:
    if triples.num_rows == 0:
        return
    groups = (
        triples.select(["head_label", "relation", "tail_label"])
        .group_by(["head_label", "relation", "tail_label"])
        .aggregate([])
    )
    for group in groups.to_pylist():
        mask = pc.and_(
            pc.and_(
                pc.equal(triples.column("head_label"), group["head_label"]),
                pc.equal(triples.column("relation"), group["relation"]),
            ),
            pc.equal(triples.column("tail_label"), group["tail_label"]),
        )
        part = triples.filter(mask)
        rel_type = schema.relation_type_name(group["relation"])
        create = _rel_count(driver, rel_type, database) == 0
        query = _triple_query(group["head_label"], rel_type, group["tail_label"], create)
        cols = ("head_id", "relation", "tail_id")
        same = group["head_label"] == group["tail_label"]
        rounds = edge_rounds(
            part.select(list(cols)), "head_id", "tail_id", workers, same_nodes=same
        )
        _run_tables(driver, query, rounds, cols, database, batch_size, bar)


def graph_counts(driver: neo4j.Driver, *, database: str = "neo4j") -> dict[str, dict[str, int]]:
    """Node count per label and relationship count per type (one scan each); the load lock's
    node (:func:`load_lock`) is not part of the graph and not counted."""
    labels, _, _ = driver.execute_query(
        "MATCH (n) UNWIND labels(n) AS label WITH label WHERE label <> $lock "
        "RETURN label, count(*) AS n ORDER BY label",
        lock=LOCK_LABEL,
        database_=database,
    )
    rels, _, _ = driver.execute_query(
        "MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n ORDER BY type",
        database_=database,
    )
    return {
        "nodes": {r["label"]: int(r["n"]) for r in labels if r["n"]},
        "relationships": {r["type"]: int(r["n"]) for r in rels if r["n"]},
    }
