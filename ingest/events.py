"""Live events: validate a batch, commit it to Neo4j (durable, idempotent), read what came since.

Events are JSON objects with a ``type`` (the classes are in :mod:`ingest.schema`)::

    {"type": "interaction", "event_id": "e1", "user_id": "u1", "product_id": "p1",
     "kind": "view", "ts": 1733500000, "weight": 1.0}
    {"type": "product", "event_id": "e2", "product_id": "p9", "title": "Nitrile gloves",
     "description": "...", "category": "Lab > Safety > Gloves", "brand": "Acme",
     "price": 9.5, "available": true}
    {"type": "retire", "event_id": "e3", "product_id": "p9"}

``category`` is a path from the root, as a string joined with ``" > "`` or a list of names.

**A batch is applied whole or not at all.** :func:`parse_events` checks every event and raises
:class:`EventBatchError` with one :class:`EventError` per bad event (its position, its id and the
field); :func:`write_events` commits the batch in one transaction, which also refuses it whole
when an interaction names a product that neither Neo4j nor an earlier event of the batch has.

**Direct writes.** An ETL job or an analyst may write ``INTERACTED`` edges or ``Product`` nodes
straight into Neo4j. Loads mark what they write ``seq = 0``; :meth:`EventLog.claim_direct_writes`
numbers whatever has no ``seq`` yet, so readers pick it up like an event.

**Durable and idempotent.** :func:`write_events` returns only after the commit. Each batch takes
the next block of numbers of one counter node (``(:KgrecSeq {name: "events"})``) under its write
lock, so an event's ``seq`` orders it by commit; readers follow the graph with
:func:`events_since`. An event whose id is already in Neo4j is skipped (a replay changes
nothing): interactions are logged by their ``INTERACTED`` edge (``event_id``, a relationship
uniqueness constraint), catalogue events by an ``(:Event {id, seq, type})`` node.

* interaction: ``(:User)-[:INTERACTED {event_id, user_id, order, ts, kind, weight, seq}]->
  (:Product)``, ``order`` the next position of the user's history; a new user is created;
* product: the product's properties (``available``, ``retired = false`` and ``seq`` too), its
  category path (every prefix a ``Category``, ``SUBCATEGORY_OF`` up the tree) with
  ``IN_CATEGORY`` to the leaf and ``MADE_BY`` to the brand replacing the old edges;
* retire: ``retired = true``, ``available = false`` and ``seq`` on the product.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest import schema
from ingest.sources.categories import PATH_JOINER
from ingest.sources.text import field_problem

if TYPE_CHECKING:
    import neo4j

__all__ = [
    "AppliedEvent",
    "EventBatchError",
    "EventError",
    "EventLog",
    "EventReceipt",
    "parse_events",
]

_FIELDS: dict[str, dict[str, bool]] = {  # type -> {field: required}
    "interaction": {"event_id": True, "user_id": True, "product_id": True, "kind": True,
                    "ts": True, "weight": False},
    "product": {"event_id": True, "product_id": True, "title": True, "description": False,
                "category": False, "brand": False, "price": False, "available": False},
    "retire": {"event_id": True, "product_id": True},
}  # fmt: skip
_INT64 = (-(2**63), 2**63 - 1)
#: The counter node's name.
_COUNTER = "events"
#: Tries of a batch whose event id a concurrent writer committed first (see _write_batches).
_WRITE_TRIES = 3


@dataclass(frozen=True)
class EventError:
    """What is wrong with one event of a batch.

    Attributes:
        index: its 0-based position in the batch.
        event_id: its id, when it has a usable one.
        field: the field at fault (``""`` for the event as a whole).
        message: what is wrong.
    """

    index: int
    event_id: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"event {self.index}" + (f" ({self.event_id!r})" if self.event_id else "")
        return f"{where}" + (f", field {self.field!r}" if self.field else "") + f": {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "event_id": self.event_id, "field": self.field,
                "message": self.message}  # fmt: skip


class EventBatchError(ValueError):
    """A batch refused whole: ``errors`` holds one :class:`EventError` per bad event."""

    def __init__(self, errors: Sequence[EventError]) -> None:
        self.errors = list(errors)
        first = "; ".join(str(e) for e in self.errors[:3])
        more = f" (and {len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        super().__init__(f"{len(self.errors)} bad event(s), nothing applied: {first}{more}")


@dataclass(frozen=True)
class EventReceipt:
    """What a committed batch did.

    Attributes:
        applied: events written now.
        duplicates: events whose id was already in Neo4j (skipped).
        first_seq, last_seq: the batch's sequence numbers (``None`` for an empty batch).
    """

    applied: int
    duplicates: int
    first_seq: int | None
    last_seq: int | None


@dataclass(frozen=True)
class AppliedEvent:
    """An event as committed to Neo4j, read back by :func:`events_since`.

    ``order`` is set for interactions (the position in the user's history); ``retired`` for
    catalogue events. The other fields are those of the event.
    """

    seq: int
    event: schema.Event
    order: int | None = None
    retired: bool = False


# ------------------------------------------------------------------------------ validation
def _text(value: Any, name: str, *, required: bool) -> tuple[Any, str | None]:
    """``(value, problem)`` of a text field."""
    if value is None:
        return None, ("missing" if required else None)
    if not isinstance(value, str):
        return None, f"must be a string, got {type(value).__name__}"
    if required and not value.strip():
        return None, "must not be empty"
    problem = field_problem(value)
    return (None, problem) if problem else (value.strip() or None, None)


def _parse_one(item: Any) -> tuple[schema.Event | None, str | None, str, str]:
    """``(event, id, field, problem)``: the event, or the first thing wrong with it."""
    if not isinstance(item, dict):
        return None, None, "", f"must be a JSON object, got {type(item).__name__}"
    raw_id = item.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) and raw_id.strip() else None
    kind = item.get("type")
    if kind not in _FIELDS:
        return None, event_id, "type", f"must be one of {sorted(_FIELDS)}, got {kind!r}"
    fields = _FIELDS[kind]
    unknown = sorted(set(item) - set(fields) - {"type"})
    if unknown:
        return None, event_id, unknown[0], f"unknown field for a {kind} event"
    values: dict[str, Any] = {}
    for name in ("event_id", "user_id", "product_id", "title", "description", "brand"):
        if name in fields:
            value, problem = _text(item.get(name), name, required=fields[name])
            if problem:
                return None, event_id, name, problem
            values[name] = value
    if kind == "interaction":
        if item["kind"] not in schema.EVENT_KINDS:
            return None, event_id, "kind", f"must be one of {list(schema.EVENT_KINDS)}"
        ts = item["ts"]
        if isinstance(ts, bool) or not isinstance(ts, int) or not _INT64[0] <= ts <= _INT64[1]:
            return None, event_id, "ts", "must be an integer (Unix seconds)"
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            return None, event_id, "weight", "must be a number"
        if not math.isfinite(weight) or weight < 0:
            return None, event_id, "weight", "must be a finite number >= 0"
        return (
            schema.InteractionEvent(kind=item["kind"], ts=ts, weight=float(weight), **values),
            event_id,
            "",
            "",
        )
    if kind == "retire":
        return schema.RetireEvent(**values), event_id, "", ""
    category = item.get("category")
    if category is None:
        path: tuple[str, ...] = ()
    elif isinstance(category, str):
        path = tuple(n.strip() for n in category.split(PATH_JOINER.strip()) if n.strip())
    elif isinstance(category, list) and all(isinstance(n, str) for n in category):
        path = tuple(n.strip() for n in category if n.strip())
    else:
        return None, event_id, "category", "must be a path string or a list of names"
    if any(field_problem(n) for n in path):
        return None, event_id, "category", "holds a name that cannot be stored"
    price = item.get("price")
    if price is not None and (
        isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price)
    ):
        return None, event_id, "price", "must be a finite number"
    available = item.get("available", True)
    if not isinstance(available, bool):
        return None, event_id, "available", "must be true or false"
    event = schema.ProductEvent(
        category=path, price=None if price is None else float(price), available=available,
        **values,
    )  # fmt: skip
    return event, event_id, "", ""


def parse_events(items: Iterable[Any]) -> list[schema.Event]:
    """Validate a batch of JSON events (module docstring).

    Raises:
        EventBatchError: one or more events are bad (unknown type, missing or badly typed
            field, unknown field, an empty title, a repeated event id); nothing is returned.
    """
    events: list[schema.Event] = []
    errors: list[EventError] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        event, event_id, field, problem = _parse_one(item)
        if event is None:
            errors.append(EventError(index, event_id, field, problem))
            continue
        if event.event_id in seen:
            message = f"repeats the id of event {seen[event.event_id]}"
            errors.append(EventError(index, event.event_id, "event_id", message))
            continue
        seen[event.event_id] = index
        events.append(event)
    if errors:
        raise EventBatchError(errors)
    return events


# ---------------------------------------------------------------------------------- Neo4j
def ensure_event_schema(driver: neo4j.Driver, *, database: str = "neo4j") -> None:
    """The constraints and indexes events rely on (no-op when they exist)."""
    statements = (
        f"CREATE CONSTRAINT kgrec_events_id IF NOT EXISTS FOR (e:{schema.EVENT.label}) "
        "REQUIRE e.id IS UNIQUE",
        "CREATE CONSTRAINT kgrec_interactions_event_id IF NOT EXISTS "
        f"FOR ()-[r:{schema.INTERACTED.rel_type}]-() REQUIRE r.event_id IS UNIQUE",
        "CREATE CONSTRAINT kgrec_seq_name IF NOT EXISTS FOR (c:KgrecSeq) REQUIRE c.name IS UNIQUE",
        "CREATE INDEX kgrec_interactions_seq IF NOT EXISTS "
        f"FOR ()-[r:{schema.INTERACTED.rel_type}]-() ON (r.seq)",
        f"CREATE INDEX kgrec_products_seq IF NOT EXISTS FOR (p:{schema.PRODUCT.label}) ON (p.seq)",
        "CALL db.awaitIndexes(300)",
    )
    for statement in statements:
        driver.execute_query(statement, database_=database)


class EventLog:
    """The events of one Neo4j database: :meth:`write` commits batches, :meth:`since` reads
    them back in sequence order (module docstring).

    Args:
        driver: an open driver.
        database: the database.
    """

    def __init__(self, driver: neo4j.Driver, *, database: str = "neo4j") -> None:
        self.driver = driver
        self.database = database
        self._ready = False

    def ensure_schema(self) -> None:
        """The graph's constraints and those events rely on (once per log)."""
        from ingest.neo4j_writer import ensure_constraints

        if not self._ready:
            ensure_constraints(self.driver, database=self.database)
            ensure_event_schema(self.driver, database=self.database)
            self._ready = True

    def write(self, events: Sequence[schema.Event]) -> EventReceipt:
        """Commit a validated batch in one transaction; return once it is durable.

        Raises:
            EventBatchError: an interaction names a product that is neither in Neo4j nor
                created by an earlier event of the batch (nothing is written).
        """
        return self.write_many([events])[0]

    def write_many(self, batches: Sequence[Sequence[schema.Event]]) -> list[EventReceipt]:
        """Commit several validated batches in one transaction (a group commit: one lock of
        the counter and one round of statements for all); a receipt per batch. Each batch's
        sequence numbers follow the previous batch's; an event whose id an earlier batch of the
        group holds is a duplicate.

        Raises:
            EventBatchError: as :meth:`write`, for the group (the error indices count the
                events of all batches, in order); nothing is written.
        """
        from neo4j.exceptions import ConstraintError

        batches = [list(b) for b in batches]
        if not any(batches):
            return [EventReceipt(0, 0, None, None) for _ in batches]
        self.ensure_schema()
        with self.driver.session(database=self.database) as session:
            for attempt in range(_WRITE_TRIES):
                try:
                    return session.execute_write(_write_batches, batches)
                except ConstraintError:  # a concurrent writer committed one of its event ids
                    if attempt == _WRITE_TRIES - 1:
                        raise
        raise AssertionError("unreachable")

    def last_seq(self) -> int:
        """The highest sequence number handed out so far (0 before the first event)."""
        return last_seq(self.driver, database=self.database)

    def since(self, after: int, *, limit: int = 10_000) -> list[AppliedEvent]:
        """The committed events with a sequence number above ``after``, in sequence order
        (see :func:`events_since`)."""
        return events_since(self.driver, after, limit=limit, database=self.database)

    def snapshot(self) -> tuple[int, int, int]:
        """``(INTERACTED edges, Product nodes, last sequence number)`` at one instant: read
        under the counter's lock, so that no batch commits between them (count store reads:
        constant time)."""
        self.ensure_schema()
        with self.driver.session(database=self.database) as session:
            return session.execute_write(_snapshot)

    def numbered_between(self, after: int, upto: int) -> int:
        """``INTERACTED`` edges whose sequence number is in ``(after, upto]`` (index range)."""
        records, _, _ = self.driver.execute_query(
            f"MATCH ()-[r:{schema.INTERACTED.rel_type}]->() WHERE r.seq > $after "
            "AND r.seq <= $upto RETURN count(r) AS n",
            after=after,
            upto=upto,
            database_=self.database,
        )
        return int(records[0]["n"])

    def claim_direct_writes(
        self, *, limit: int = 10_000, edges: bool = True, products: bool = True
    ) -> int:
        """Number the ``INTERACTED`` edges and ``Product`` nodes that were written straight
        into Neo4j (by an ETL job or an analyst: neither a load, which marks what it writes
        ``seq = 0``, nor an event), so that :meth:`since` hands them on like events. An edge
        without an ``order`` gets the next position of its user's history, and ``user_id`` and
        an ``event_id`` (``"direct:<element id>"``) are set. Scans every edge (and product):
        call it when :meth:`snapshot` shows counts the event log does not explain.

        Args:
            limit: at most this many edges and this many products per call.
            edges: look for edges (a scan of every ``INTERACTED`` edge).
            products: look for products (a scan of every ``Product`` node).

        Returns:
            How many were numbered.
        """
        self.ensure_schema()
        with self.driver.session(database=self.database) as session:
            return session.execute_write(_claim, limit, edges, products)


def _write_batches(
    tx: neo4j.ManagedTransaction, batches: list[list[schema.Event]]
) -> list[EventReceipt]:
    # The reads come first: in Neo4j 5.26 an index read after the transaction's first write is
    # many times slower (100 event ids: 63 ms against 4.6 ms). The counter's lock, taken next,
    # orders the writers; an event id that a concurrent writer commits in between fails the
    # uniqueness constraint and the batch is tried again (EventLog.write_many).
    events = [e for batch in batches for e in batch]
    n = len(events)
    ids = [e.event_id for e in events]
    done = {
        r["id"]
        for r in tx.run(
            f"UNWIND $ids AS id OPTIONAL MATCH ()-[r:{schema.INTERACTED.rel_type} "
            "{event_id: id}]->() WITH id, r WHERE r IS NOT NULL RETURN id "
            f"UNION MATCH (e:{schema.EVENT.label}) WHERE e.id IN $ids RETURN e.id AS id",
            ids=ids,
        )
    }
    new: list[int] = []  # positions written: new ids, each at its first place in the group
    for i, event_id in enumerate(ids):
        if event_id not in done:
            done.add(event_id)
            new.append(i)
    _check_products(tx, events, [events[i] for i in new])
    base = tx.run(
        "MERGE (c:KgrecSeq {name: $name}) ON CREATE SET c.value = 0 "
        "SET c.value = c.value + $n RETURN c.value - $n AS base",
        name=_COUNTER,
        n=n,
    ).single()["base"]
    interactions: list[dict[str, Any]] = []
    for i in new:
        event = events[i]
        if isinstance(event, schema.InteractionEvent):
            interactions.append({"seq": base + 1 + i, **event.__dict__})
        else:
            _write_catalogue(tx, base + 1 + i, event)
    if interactions:
        _write_interactions(tx, interactions)
    receipts = []
    lo = 0
    for batch in batches:
        hi = lo + len(batch)
        applied = sum(lo <= i < hi for i in new)
        span = (base + 1 + lo, base + hi) if batch else (None, None)
        receipts.append(EventReceipt(applied, len(batch) - applied, *span))
        lo = hi
    return receipts


def _check_products(
    tx: neo4j.ManagedTransaction, events: list[schema.Event], fresh: list[schema.Event]
) -> None:
    """Refuse the batch when an interaction names a product nobody has created."""
    wanted = {e.product_id for e in fresh if isinstance(e, schema.InteractionEvent)}
    if not wanted:
        return
    known = {
        r["id"]
        for r in tx.run(
            f"MATCH (p:{schema.PRODUCT.label}) WHERE p.id IN $ids RETURN p.id AS id",
            ids=sorted(wanted),
        )
    }
    errors = []
    created: set[str] = set()
    for index, event in enumerate(events):
        if isinstance(event, schema.ProductEvent):
            created.add(event.product_id)
        elif (
            isinstance(event, schema.InteractionEvent)
            and event.product_id in wanted
            and event.product_id not in known | created
        ):
            message = "names a product that is not in the graph"
            errors.append(EventError(index, event.event_id, "product_id", message))
    if errors:
        raise EventBatchError(errors)


def _last_orders(tx: neo4j.ManagedTransaction, users: set[str]) -> dict[str, int]:
    """Each user's last history position (-1 for none), the user created when missing."""
    return {
        r["id"]: r["last"]
        for r in tx.run(
            f"UNWIND $users AS id MERGE (u:{schema.USER.label} {{id: id}}) "
            f"WITH u OPTIONAL MATCH (u)-[r:{schema.INTERACTED.rel_type}]->() "
            "RETURN u.id AS id, coalesce(max(r.order), -1) AS last",
            users=sorted(users),
        )
    }


def _write_interactions(tx: neo4j.ManagedTransaction, rows: list[dict[str, Any]]) -> None:
    """Create the interaction edges, each at the next position of its user's history (the
    user created when missing), in one statement."""
    by_user: dict[str, list[dict[str, Any]]] = {}
    for row in rows:  # in sequence order: the k-th of a user's goes k after their last
        by_user.setdefault(row["user_id"], []).append(row)
    tx.run(
        f"UNWIND $users AS batch MERGE (u:{schema.USER.label} {{id: batch.id}}) "
        f"WITH u, batch OPTIONAL MATCH (u)-[r:{schema.INTERACTED.rel_type}]->() "
        "WITH u, batch, coalesce(max(r.order), -1) AS last "
        "UNWIND range(0, size(batch.rows) - 1) AS k WITH u, last, k, batch.rows[k] AS e "
        f"MATCH (p:{schema.PRODUCT.label} {{id: e.product_id}}) "
        f"CREATE (u)-[:{schema.INTERACTED.rel_type} {{event_id: e.event_id, user_id: e.user_id, "
        "order: last + 1 + k, ts: e.ts, kind: e.kind, weight: e.weight, seq: e.seq}]->(p)",
        users=[{"id": user, "rows": mine} for user, mine in by_user.items()],
    ).consume()


def _write_catalogue(
    tx: neo4j.ManagedTransaction, seq: int, event: schema.ProductEvent | schema.RetireEvent
) -> None:
    product = schema.PRODUCT.label
    if isinstance(event, schema.RetireEvent):
        tx.run(
            f"MERGE (p:{product} {{id: $id}}) SET p.retired = true, p.available = false, "
            "p.seq = $seq",
            id=event.product_id,
            seq=seq,
        ).consume()
    else:
        tx.run(
            f"MERGE (p:{product} {{id: $id}}) SET p.title = $title, "
            "p.description = $description, p.price = $price, p.available = $available, "
            "p.retired = false, p.seq = $seq",
            id=event.product_id, title=event.title, description=event.description,
            price=event.price, available=event.available, seq=seq,
        ).consume()  # fmt: skip
        _link(tx, event)
    tx.run(
        f"CREATE (:{schema.EVENT.label} {{id: $id, seq: $seq, type: $type, product_id: $pid}})",
        id=event.event_id,
        seq=seq,
        type="retire" if isinstance(event, schema.RetireEvent) else "product",
        pid=event.product_id,
    ).consume()


def _link(tx: neo4j.ManagedTransaction, event: schema.ProductEvent) -> None:
    """The product's category path and brand, replacing its old category and brand edges."""
    p, c, b = schema.PRODUCT.label, schema.CATEGORY.label, schema.BRAND.label
    in_cat, sub, made = (schema.IN_CATEGORY.rel_type, schema.SUBCATEGORY_OF.rel_type,
                         schema.MADE_BY.rel_type)  # fmt: skip
    tx.run(
        f"MATCH (p:{p} {{id: $id}}) OPTIONAL MATCH (p)-[r:{in_cat}|{made}]->() DELETE r",
        id=event.product_id,
    ).consume()
    path = [
        {"id": PATH_JOINER.join(event.category[: d + 1]), "name": name, "level": d + 1,
         "parent": PATH_JOINER.join(event.category[:d]) if d else None}
        for d, name in enumerate(event.category)
    ]  # fmt: skip
    if path:
        tx.run(
            f"UNWIND $path AS n MERGE (c:{c} {{id: n.id}}) "
            "ON CREATE SET c.name = n.name, c.level = n.level "
            f"WITH c, n WHERE n.parent IS NOT NULL MATCH (up:{c} {{id: n.parent}}) "
            f"MERGE (c)-[:{sub}]->(up)",
            path=path,
        ).consume()
        tx.run(
            f"MATCH (p:{p} {{id: $id}}), (c:{c} {{id: $leaf}}) MERGE (p)-[:{in_cat}]->(c)",
            id=event.product_id,
            leaf=path[-1]["id"],
        ).consume()
    if event.brand is not None:
        tx.run(
            f"MATCH (p:{p} {{id: $id}}) MERGE (b:{b} {{id: $brand}}) ON CREATE SET b.name = $brand "
            f"MERGE (p)-[:{made}]->(b)",
            id=event.product_id,
            brand=event.brand,
        ).consume()


def _claim(tx: neo4j.ManagedTransaction, limit: int, edges: bool, products: bool) -> int:
    # the scans first, before the counter's lock: they read every edge (or product) and must
    # not hold up the event batches (nor run after a write: see _write_batches)
    found_edges = (
        [
            r["id"]
            for r in tx.run(
                f"MATCH ()-[r:{schema.INTERACTED.rel_type}]->() WHERE r.seq IS NULL "
                "RETURN elementId(r) AS id LIMIT $limit",
                limit=limit,
            )
        ]
        if edges
        else []
    )
    found_products = (
        [
            r["id"]
            for r in tx.run(
                f"MATCH (p:{schema.PRODUCT.label}) WHERE p.seq IS NULL RETURN elementId(p) AS id "
                "LIMIT $limit",
                limit=limit,
            )
        ]
        if products
        else []
    )
    if not found_edges and not found_products:
        return 0
    # the counter's write lock: numbers in commit order, as for events. Not by
    # ``SET c.value = c.value``, which reads the value before it waits for the lock and, when an
    # event batch committed meanwhile, writes the old value back: the next batch then got the
    # same numbers and workers reading the log by number skipped events (Neo4j's lost update)
    tx.run(
        "MERGE (c:KgrecSeq {name: $name}) ON CREATE SET c.value = 0 SET c.lock = true "
        "REMOVE c.lock",
        name=_COUNTER,
    ).consume()
    # what a concurrent claim numbered meanwhile is left to it
    edges = [
        dict(r)
        for r in tx.run(
            f"UNWIND $ids AS id MATCH (u:{schema.USER.label})-[r:{schema.INTERACTED.rel_type}]->() "
            "WHERE elementId(r) = id AND r.seq IS NULL "
            "RETURN elementId(r) AS id, u.id AS user, r.order AS order",
            ids=found_edges,
        )
    ]
    products = [
        r["id"]
        for r in tx.run(
            "UNWIND $ids AS id MATCH (p) WHERE elementId(p) = id AND p.seq IS NULL "
            "RETURN elementId(p) AS id",
            ids=found_products,
        )
    ]
    n = len(edges) + len(products)
    if not n:
        return 0
    base = tx.run(
        "MATCH (c:KgrecSeq {name: $name}) SET c.value = c.value + $n RETURN c.value - $n AS b",
        name=_COUNTER,
        n=n,
    ).single()["b"]
    last = _last_orders(tx, {e["user"] for e in edges if e["order"] is None})
    for i, edge in enumerate(edges):
        edge["seq"] = base + 1 + i
        if edge["order"] is None:
            last[edge["user"]] += 1
            edge["order"] = last[edge["user"]]
    tx.run(
        "UNWIND $rows AS row MATCH ()-[r]->() WHERE elementId(r) = row.id "
        "SET r.seq = row.seq, r.order = row.order, r.user_id = row.user, "
        "r.event_id = coalesce(r.event_id, 'direct:' + row.id)",
        rows=edges,
    ).consume()
    tx.run(
        "UNWIND $rows AS row MATCH (p) WHERE elementId(p) = row.id SET p.seq = row.seq",
        rows=[{"id": p, "seq": base + 1 + len(edges) + i} for i, p in enumerate(products)],
    ).consume()
    return n


def _snapshot(tx: neo4j.ManagedTransaction) -> tuple[int, int, int]:
    tx.run(
        "MERGE (c:KgrecSeq {name: $name}) ON CREATE SET c.value = 0 SET c.lock = true "
        "REMOVE c.lock",
        name=_COUNTER,
    ).consume()
    r = tx.run(
        f"CALL {{ MATCH ()-[r:{schema.INTERACTED.rel_type}]->() RETURN count(r) AS r }} "
        f"CALL {{ MATCH (p:{schema.PRODUCT.label}) RETURN count(p) AS p }} "
        "MATCH (c:KgrecSeq {name: $name}) RETURN r, p, c.value AS seq",
        name=_COUNTER,
    ).single()
    return int(r["r"]), int(r["p"]), int(r["seq"])


def last_seq(driver: neo4j.Driver, *, database: str = "neo4j") -> int:
    """The highest sequence number handed out so far (0 before the first event)."""
    records, _, _ = driver.execute_query(
        "OPTIONAL MATCH (c:KgrecSeq {name: $name}) RETURN coalesce(c.value, 0) AS v",
        name=_COUNTER,
        database_=database,
    )
    return int(records[0]["v"])


def events_since(
    driver: neo4j.Driver, after: int, *, limit: int = 10_000, database: str = "neo4j"
) -> list[AppliedEvent]:
    """The events committed with a sequence number above ``after``, in sequence order.

    Interactions come as they were written; a product changed by several events since
    ``after`` comes once, as it is now (its latest ``seq``). At most about ``limit`` of each per
    call: when either kind is cut short, so is the other at the same sequence number, so that a
    reader that goes on from the last ``seq`` it got misses nothing.

    Only sequence numbers up to the counter's committed value, read first, are read: a batch
    that commits between the two queries below (a product event read without the interactions
    before it) would otherwise let a reader go on past events it never saw. The counter is
    raised in the writing transaction and commits with it, and batches commit in sequence
    order (they hold the counter's lock), so every sequence number up to its committed value is
    visible once it is.
    """
    ceiling = last_seq(driver, database=database)
    if ceiling <= after:
        return []
    records, _, _ = driver.execute_query(
        f"MATCH (u:{schema.USER.label})-[r:{schema.INTERACTED.rel_type}]->(p:{schema.PRODUCT.label}) "
        "WHERE r.seq > $after AND r.seq <= $ceiling "
        "RETURN r.seq AS seq, r.event_id AS event_id, u.id AS user_id, p.id AS product_id, "
        "r.kind AS kind, r.ts AS ts, r.weight AS weight, r.order AS order "
        "ORDER BY r.seq LIMIT $limit",
        after=after,
        ceiling=ceiling,
        limit=limit,
        database_=database,
    )
    out = [
        AppliedEvent(
            seq=r["seq"],
            event=schema.InteractionEvent(
                r["event_id"], r["user_id"], r["product_id"], r["kind"], r["ts"], r["weight"]
            ),
            order=r["order"],
        )
        for r in records
    ]
    records, _, _ = driver.execute_query(
        f"MATCH (p:{schema.PRODUCT.label}) WHERE p.seq > $after AND p.seq <= $ceiling "
        f"OPTIONAL MATCH (p)-[:{schema.IN_CATEGORY.rel_type}]->(leaf:{schema.CATEGORY.label}) "
        f"OPTIONAL MATCH (p)-[:{schema.MADE_BY.rel_type}]->(b:{schema.BRAND.label}) "
        "RETURN p.seq AS seq, p.id AS id, p.title AS title, p.description AS description, "
        "p.price AS price, coalesce(p.available, true) AS available, "
        "coalesce(p.retired, false) AS retired, leaf.id AS category, b.id AS brand "
        "ORDER BY p.seq LIMIT $limit",
        after=after,
        ceiling=ceiling,
        limit=limit,
        database_=database,
    )
    for r in records:
        path = tuple(r["category"].split(PATH_JOINER)) if r["category"] else ()
        event = schema.ProductEvent(
            event_id="", product_id=r["id"], title=r["title"] or "", description=r["description"],
            category=path, brand=r["brand"], price=r["price"], available=r["available"],
        )  # fmt: skip
        out.append(AppliedEvent(seq=r["seq"], event=event, retired=r["retired"]))
    cut = None
    if len(interactions := [a for a in out if a.order is not None]) == limit:
        cut = interactions[-1].seq
    if len(records) == limit:
        cut = min(cut if cut is not None else records[-1]["seq"], records[-1]["seq"])
    out.sort(key=lambda a: a.seq)
    return out if cut is None else [a for a in out if a.seq <= cut]
