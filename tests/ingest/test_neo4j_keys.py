"""The keys of the graph hold on re-ingest and concurrent loads (issue 19, items 2-4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from ingest.neo4j_export import export_graph
from ingest.neo4j_writer import INTERACTED_KEY, graph_counts, write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from ingest.tables import GraphTables

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def shop() -> GraphTables:
    return generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)


def _with(tables: GraphTables, **changed: pa.Table) -> GraphTables:
    return GraphTables(**{**{n: tables.table(n) for n in tables.counts()}, **changed})


def _triples(driver) -> list[tuple[str, int, str]]:
    """Every ``(user, order, product)`` of the stored INTERACTED edges, sorted."""
    records, _, _ = driver.execute_query(
        "MATCH (u:User)-[r:INTERACTED]->(p:Product) RETURN u.id AS u, r.order AS o, p.id AS p"
    )
    return sorted((r["u"], r["o"], r["p"]) for r in records)


def test_a_changed_history_replaces_the_stored_one(neo4j_db, shop: GraphTables) -> None:
    write_graph(neo4j_db, shop, show_progress=False)
    user = shop.interactions["user_id"][0].as_py()
    rows = shop.interactions.to_pylist()
    mine = [r for r in rows if r["user_id"] == user]
    products = sorted({r["product_id"] for r in rows})
    # the user's history changes: other products at every position, and two positions fewer
    changed = [
        {**r, "product_id": products[(products.index(r["product_id"]) + 7) % len(products)]}
        for r in mine[:-2]
    ]
    others = [r for r in rows if r["user_id"] != user]
    new = _with(shop, interactions=pa.Table.from_pylist(others + changed, shop.interactions.schema))
    write_graph(neo4j_db, new, show_progress=False)
    assert graph_counts(neo4j_db)["relationships"]["INTERACTED"] == new.interactions.num_rows
    assert export_graph(neo4j_db, show_progress=False).fingerprint() == new.fingerprint()
    stored = [t for t in _triples(neo4j_db) if t[0] == user]
    assert stored == sorted((user, r["order"], r["product_id"]) for r in changed)


def test_the_user_order_key_is_enforced_in_neo4j(neo4j_db, shop: GraphTables) -> None:
    from neo4j.exceptions import ConstraintError

    write_graph(neo4j_db, shop, show_progress=False)
    records, _, _ = neo4j_db.execute_query(
        "SHOW CONSTRAINTS YIELD name, type, entityType, properties WHERE name = $name "
        "RETURN type, entityType, properties",
        name=INTERACTED_KEY,
    )
    assert [dict(r) for r in records] == [
        {"type": "RELATIONSHIP_UNIQUENESS", "entityType": "RELATIONSHIP",
         "properties": ["user_id", "order"]}
    ]  # fmt: skip
    first = shop.interactions.to_pylist()[0]
    with pytest.raises(ConstraintError):
        neo4j_db.execute_query(
            "MATCH (u:User {id: $u}), (p:Product {id: 'p1'}) "
            "CREATE (u)-[:INTERACTED {user_id: $u, order: $o}]->(p)",
            u=first["user_id"],
            o=first["order"],
        )


def test_a_product_that_moved_brand_loses_the_old_edge(neo4j_db, shop: GraphTables) -> None:
    write_graph(neo4j_db, shop, show_progress=False)
    brands = shop.brands["id"].to_pylist()
    moved = [
        brands[(brands.index(b) + 1) % len(brands)] for b in shop.made_by["brand_id"].to_pylist()
    ]
    new = _with(shop, made_by=shop.made_by.set_column(1, "brand_id", pa.array(moved)))
    write_graph(neo4j_db, new, show_progress=False)
    assert graph_counts(neo4j_db)["relationships"]["MADE_BY"] == shop.made_by.num_rows
    assert export_graph(neo4j_db, show_progress=False).fingerprint() == new.fingerprint()


_LOADER = """
import sys
from ingest.neo4j_writer import write_graph
from ingest.tables import GraphTables
from kg.neo4j.driver import open_driver
from kg.neo4j.settings import Neo4jSettings
tables = GraphTables.load(sys.argv[1])
settings = Neo4jSettings(uri=sys.argv[2], user="neo4j", password=sys.argv[3])
with open_driver(settings) as driver:
    write_graph(driver, tables, batch_size=500, show_progress=False)
"""


def test_two_loads_started_together_write_each_edge_once(
    neo4j_db, neo4j_server, shop: GraphTables, tmp_path: Path
) -> None:
    folder = shop.save(tmp_path / "shop")
    args = [sys.executable, "-c", _LOADER, str(folder), neo4j_server.uri, neo4j_server.password]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    loads = [subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in loads:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    counts = graph_counts(neo4j_db)["relationships"]
    assert counts["INTERACTED"] == shop.interactions.num_rows == 3000
    assert counts["MADE_BY"] == shop.made_by.num_rows
    assert counts["IN_CATEGORY"] == shop.in_category.num_rows
    assert export_graph(neo4j_db, show_progress=False).fingerprint() == shop.fingerprint()


def test_a_load_repairs_edges_doubled_by_an_older_kgrec(neo4j_db, shop: GraphTables) -> None:
    write_graph(neo4j_db, shop, show_progress=False)
    # what two concurrent loads of an older kgrec left: every edge twice, no (user, order) key
    neo4j_db.execute_query(f"DROP CONSTRAINT {INTERACTED_KEY}")
    for rel in ("INTERACTED", "MADE_BY", "IN_CATEGORY", "SUBCATEGORY_OF"):
        neo4j_db.execute_query(
            f"MATCH (a)-[r:{rel}]->(b) CREATE (a)-[c:{rel}]->(b) SET c = properties(r)"
        )
    assert graph_counts(neo4j_db)["relationships"]["INTERACTED"] == 6000
    write_graph(neo4j_db, shop, show_progress=False)
    counts = graph_counts(neo4j_db)["relationships"]
    assert counts["INTERACTED"] == 3000 and counts["MADE_BY"] == shop.made_by.num_rows
    assert export_graph(neo4j_db, show_progress=False).fingerprint() == shop.fingerprint()


def test_a_value_the_source_does_not_give_keeps_the_stored_one(neo4j_db, shop: GraphTables) -> None:
    write_graph(neo4j_db, shop, show_progress=False)
    titles = shop.products["title"].to_pylist()
    blank = shop.products.set_column(1, "title", pa.array([None, *titles[1:]], pa.string()))
    write_graph(neo4j_db, _with(shop, products=blank), show_progress=False)
    records, _, _ = neo4j_db.execute_query(
        "MATCH (p:Product {id: $id}) RETURN p.title AS t", id=shop.products["id"][0].as_py()
    )
    assert records[0]["t"] == titles[0]
