"""Live events: validation, a batch applied whole or not at all, durable and idempotent writes to
the real Neo4j, and reading them back in sequence order (issue 21)."""

from __future__ import annotations

import threading

import pytest

from ingest import schema
from ingest.events import EventBatchError, EventLog, parse_events
from ingest.neo4j_export import export_graph
from ingest.neo4j_writer import graph_counts, write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop

VIEW = {"type": "interaction", "event_id": "e1", "user_id": "u0", "product_id": "p1",
        "kind": "view", "ts": 1_733_500_000}  # fmt: skip
NEW = {"type": "product", "event_id": "e2", "product_id": "new-1", "title": "Nitrile gloves",
       "description": "Box of 100.", "category": "Lab > Safety > Gloves", "brand": "Acme",
       "price": 9.5}  # fmt: skip


def _errors(items: list) -> list[tuple[int, str | None, str]]:
    with pytest.raises(EventBatchError) as info:
        parse_events(items)
    return [(e.index, e.event_id, e.field) for e in info.value.errors]


def test_each_bad_event_gets_one_error_naming_it_and_the_field() -> None:
    items = [
        VIEW,
        {**VIEW, "event_id": "b1", "kind": "like"},
        {**VIEW, "event_id": "b2", "user_id": ""},
        {k: v for k, v in VIEW.items() if k != "event_id"},
        {**VIEW, "event_id": "b4", "ts": "yesterday"},
        {**VIEW, "event_id": "b5", "weight": float("nan")},
        {**NEW, "event_id": "b6", "title": "  "},
        {k: v for k, v in NEW.items() if k != "title"} | {"event_id": "b7"},
        {**NEW, "event_id": "b8", "colour": "red"},
        {"type": "refund", "event_id": "b9"},
        "not an object",
        {**VIEW, "event_id": "e1"},
        {**NEW, "event_id": "b12", "price": True},
        {"type": "retire", "event_id": "b13", "product_id": 7},
    ]
    assert _errors(items) == [
        (1, "b1", "kind"), (2, "b2", "user_id"), (3, None, "event_id"), (4, "b4", "ts"),
        (5, "b5", "weight"), (6, "b6", "title"), (7, "b7", "title"), (8, "b8", "colour"),
        (9, "b9", "type"), (10, None, ""), (11, "e1", "event_id"), (12, "b12", "price"),
        (13, "b13", "product_id"),
    ]  # fmt: skip
    with pytest.raises(EventBatchError) as info:
        parse_events(items)
    assert (
        str(info.value.errors[0])
        == "event 1 ('b1'), field 'kind': must be one of ['view', 'cart', 'purchase']"
    )
    events = parse_events([VIEW, NEW, {"type": "retire", "event_id": "e3", "product_id": "p2"}])
    assert [type(e) for e in events] == [
        schema.InteractionEvent,
        schema.ProductEvent,
        schema.RetireEvent,
    ]
    assert events[1].category == ("Lab", "Safety", "Gloves")


@pytest.fixture
def shop_db(neo4j_db):
    shop = generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)
    write_graph(neo4j_db, shop, show_progress=False)
    return neo4j_db, shop


@pytest.mark.neo4j
def test_events_are_written_once_and_a_replay_changes_nothing(shop_db) -> None:
    driver, shop = shop_db
    log = EventLog(driver)
    before = graph_counts(driver)
    last = max(r["order"] for r in shop.interactions.to_pylist() if r["user_id"] == "u0")
    batch = parse_events([
        NEW,
        {**VIEW, "product_id": "new-1"},
        {**VIEW, "event_id": "e4", "user_id": "brand-new-user", "kind": "purchase"},
        {"type": "retire", "event_id": "e5", "product_id": "p2"},
    ])  # fmt: skip
    receipt = log.write(batch)
    assert (receipt.applied, receipt.duplicates) == (4, 0)
    assert receipt.last_seq - receipt.first_seq == 3
    after = graph_counts(driver)
    assert after["relationships"]["INTERACTED"] == before["relationships"]["INTERACTED"] + 2
    assert after["nodes"]["Product"] == before["nodes"]["Product"] + 1
    assert after["nodes"]["User"] == before["nodes"]["User"] + 1
    records, _, _ = driver.execute_query(
        "MATCH (u:User {id: 'u0'})-[r:INTERACTED {event_id: 'e1'}]->(p) "
        "RETURN r.order AS o, p.id AS p, r.kind AS k"
    )
    assert [dict(r) for r in records] == [{"o": last + 1, "p": "new-1", "k": "view"}]
    records, _, _ = driver.execute_query(
        "MATCH (p:Product {id: 'new-1'})-[:IN_CATEGORY]->(c)-[:SUBCATEGORY_OF]->(up)"
        "-[:SUBCATEGORY_OF]->(root), (p)-[:MADE_BY]->(b) "
        "RETURN c.id AS c, c.level AS level, root.id AS root, b.id AS b, p.title AS t"
    )
    assert [dict(r) for r in records] == [{"c": "Lab > Safety > Gloves", "level": 3,
                                           "root": "Lab", "b": "Acme", "t": "Nitrile gloves"}]  # fmt: skip
    again = log.write(batch)
    assert (again.applied, again.duplicates) == (0, 4)
    assert graph_counts(driver) == after
    applied = log.since(receipt.first_seq - 1)
    assert [a.seq for a in applied] == sorted(a.seq for a in applied)
    kinds = [(type(a.event).__name__, a.event.product_id, a.retired) for a in applied]
    assert kinds == [
        ("ProductEvent", "new-1", False), ("InteractionEvent", "new-1", False),
        ("InteractionEvent", "p1", False), ("ProductEvent", "p2", True),
    ]  # fmt: skip
    assert log.since(receipt.last_seq) == []
    # the export (and so training) sees the events' edges and products
    exported = export_graph(driver, show_progress=False)
    assert "new-1" in exported.products["id"].to_pylist()


@pytest.mark.neo4j
def test_a_batch_with_an_unknown_product_is_refused_whole(shop_db) -> None:
    driver, _ = shop_db
    log = EventLog(driver)
    before = graph_counts(driver)
    seq = log.last_seq()
    batch = parse_events([VIEW, {**VIEW, "event_id": "e9", "product_id": "nowhere"}])
    with pytest.raises(EventBatchError, match=r"event 1 \('e9'\), field 'product_id'"):
        log.write(batch)
    assert graph_counts(driver) == before
    assert log.last_seq() == seq  # the transaction rolled back, counter included


@pytest.mark.neo4j
def test_concurrent_writers_keep_every_key(shop_db) -> None:
    driver, _ = shop_db
    log = EventLog(driver)
    log.ensure_schema()

    def writer(w: int) -> None:
        for b in range(5):
            log.write(parse_events([
                {**VIEW, "event_id": f"w{w}-{b}-{i}", "user_id": f"u{i % 3}"} for i in range(20)
            ]))  # fmt: skip

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records, _, _ = driver.execute_query(
        "MATCH (u:User)-[r:INTERACTED]->() WHERE r.event_id STARTS WITH 'w' "
        "RETURN count(r) AS n, count(DISTINCT r.seq) AS seqs, "
        "count(DISTINCT u.id + '|' + toString(r.order)) AS keys"
    )
    assert dict(records[0]) == {"n": 300, "seqs": 300, "keys": 300}


@pytest.mark.neo4j
def test_a_group_of_batches_is_one_commit_with_a_receipt_each(shop_db) -> None:
    driver, _ = shop_db
    log = EventLog(driver)
    before = log.last_seq()
    first = parse_events([{**VIEW, "event_id": f"g{i}", "user_id": "u5"} for i in range(3)])
    second = parse_events([{**VIEW, "event_id": f"g{i}", "user_id": "u5"} for i in (2, 3)])
    a, b = log.write_many([first, second])  # g2 twice: the second is a duplicate
    assert (a.applied, a.duplicates, a.first_seq, a.last_seq) == (3, 0, before + 1, before + 3)
    assert (b.applied, b.duplicates, b.first_seq, b.last_seq) == (1, 1, before + 4, before + 5)
    got = log.since(before)
    assert [(x.seq, x.event.event_id) for x in got] == [
        (before + 1, "g0"), (before + 2, "g1"), (before + 3, "g2"), (before + 5, "g3")
    ]  # fmt: skip
    assert [x.order for x in got] == sorted({x.order for x in got})  # u5's history, in order
    with pytest.raises(EventBatchError) as refused:
        log.write_many([parse_events([{**VIEW, "event_id": "g9"}]),
                        parse_events([{**VIEW, "event_id": "g8", "product_id": "nope"}])])  # fmt: skip
    assert [e.index for e in refused.value.errors] == [1]  # counted over the group
    assert log.since(before + 5) == []  # nothing of the refused group


@pytest.mark.neo4j
def test_concurrent_replays_of_one_batch_write_it_once(shop_db) -> None:
    """Writers racing with the same event ids: each event is written once (a writer that
    loses the race on an id tries its batch again and counts it a duplicate)."""
    driver, _ = shop_db
    log = EventLog(driver)
    log.ensure_schema()
    batch = parse_events([
        {**VIEW, "event_id": f"race-{i}", "user_id": f"r{i % 4}"} for i in range(30)
    ])  # fmt: skip
    receipts = []

    def writer() -> None:
        for _ in range(3):
            receipts.append(log.write(batch))

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.applied for r in receipts) == 30
    assert sum(r.duplicates for r in receipts) == 9 * 30 - 30
    records, _, _ = driver.execute_query(
        "MATCH (u:User)-[r:INTERACTED]->() WHERE r.event_id STARTS WITH 'race-' "
        "RETURN count(r) AS n, count(DISTINCT u.id + '|' + toString(r.order)) AS keys"
    )
    assert dict(records[0]) == {"n": 30, "keys": 30}


@pytest.mark.neo4j
def test_writes_made_straight_in_neo4j_are_numbered_and_read_back(shop_db) -> None:
    driver, shop = shop_db
    log = EventLog(driver)
    assert log.claim_direct_writes() == 0  # everything a load wrote is marked
    seq = log.last_seq()
    counts = log.snapshot()
    driver.execute_query(  # an analyst, by hand: no seq, no order, no user_id
        "MATCH (u:User {id: 'u3'}), (p:Product {id: 'p7'}) CREATE (u)-[:INTERACTED {kind: 'view'}]->(p) "
        "CREATE (:Product {id: 'etl-1', title: 'From the ETL job'})"
    )
    assert log.snapshot() == (counts[0] + 1, counts[1] + 1, seq)
    assert log.claim_direct_writes() == 2
    assert log.claim_direct_writes() == 0
    got = log.since(seq)
    assert [(type(a.event).__name__, a.event.product_id) for a in got] == [
        ("InteractionEvent", "p7"),
        ("ProductEvent", "etl-1"),
    ]
    last = max(r["order"] for r in shop.interactions.to_pylist() if r["user_id"] == "u3")
    assert got[0].order == last + 1 and got[0].event.user_id == "u3"


@pytest.mark.neo4j
def test_a_claim_waiting_on_a_batch_keeps_its_numbers(shop_db) -> None:
    """A claim (of an analyst's edge) that starts while an event batch holds the counter
    waits for it and numbers after the batch (it once wrote back the value it read before the
    wait: the next batch got the same numbers)."""
    from ingest.events import _write_batches

    driver, _ = shop_db
    log = EventLog(driver)
    log.write(parse_events([{**VIEW, "event_id": "c-first"}]))  # the counter exists
    before = log.last_seq()
    driver.execute_query(
        "MATCH (u:User {id: 'u4'}), (p:Product {id: 'p2'}) CREATE (u)-[:INTERACTED {kind: 'view'}]->(p)"
    )
    batch = parse_events([{**VIEW, "event_id": f"c{i}"} for i in range(5)])
    with driver.session() as session, session.begin_transaction() as tx:
        _write_batches(tx, [batch])  # holds the counter's lock until the commit
        claim = threading.Thread(target=log.claim_direct_writes)
        claim.start()
        blocked = False
        while claim.is_alive() and not blocked:  # until the claim waits for the lock
            records, _, _ = driver.execute_query(
                "SHOW TRANSACTIONS YIELD status WHERE status STARTS WITH 'Blocked' "
                "RETURN count(*) AS n"
            )
            blocked = records[0]["n"] > 0
        tx.commit()
    claim.join()
    assert blocked
    assert log.last_seq() == before + 6  # the batch's 5, then the claimed edge
    (claimed,) = [a for a in log.since(before) if a.event.event_id.startswith("direct:")]
    assert claimed.seq == before + 6
    again = log.write(parse_events([{**VIEW, "event_id": "c5"}]))
    assert again.first_seq == before + 7
