"""Loading canonical tables into the real Neo4j and exporting them back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest import ValidationError
from ingest.neo4j_export import export_graph
from ingest.neo4j_writer import graph_counts, write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from ingest.tables import GraphTables

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def shop() -> GraphTables:
    return generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)


def _kg_tables() -> GraphTables:
    """A small graph with every table filled, KG triples included."""
    return GraphTables.from_pydict(
        {
            "users": {"id": ["u1", "u2"]},
            "products": {
                "id": ["p1", "p2", "p3"],
                "title": ["A", "B", None],
                "price": [1.0, None, 3.5],
            },
            "categories": {
                "id": ["root", "root > leaf"],
                "name": ["root", "leaf"],
                "level": [1, 2],
            },
            "brands": {"id": ["acme"], "name": ["Acme"]},
            "entities": {"id": ["e1", "e2"], "name": ["genre:rock", None]},
            "interactions": {
                "user_id": ["u1", "u1", "u2"],
                "product_id": ["p1", "p2", "p1"],
                "order": [0, 1, 0],
                "ts": [10, 20, None],
                "kind": ["purchase", "view", "purchase"],
                "weight": [1.0, 0.5, 1.0],
                "split": ["train", "test", None],
            },
            "in_category": {"product_id": ["p1", "p2"], "category_id": ["root > leaf"] * 2},
            "subcategory_of": {"child_id": ["root > leaf"], "parent_id": ["root"]},
            "made_by": {"product_id": ["p1"], "brand_id": ["acme"]},
            "triples": {
                "head_label": ["Product", "Product", "Entity"],
                "head_id": ["p1", "p3", "e1"],
                "relation": ["film.genre", "film.genre", "related to"],
                "tail_label": ["Entity", "Entity", "Entity"],
                "tail_id": ["e1", "e1", "e2"],
            },
        }
    )


def test_round_trip_every_table(neo4j_db) -> None:
    tables = _kg_tables()
    write_graph(neo4j_db, tables, show_progress=False)
    back = export_graph(neo4j_db, show_progress=False)
    assert back.equals(tables)
    counts = graph_counts(neo4j_db)
    assert counts["relationships"]["FILM_GENRE"] == 2
    assert counts["relationships"]["RELATED_TO"] == 1


def test_synthetic_round_trip_and_idempotent(neo4j_db, shop: GraphTables) -> None:
    first = write_graph(neo4j_db, shop, batch_size=500, show_progress=False)
    assert first.rows["interactions"] == shop.interactions.num_rows
    counts = graph_counts(neo4j_db)
    assert counts["nodes"]["Product"] == shop.products.num_rows
    assert counts["relationships"]["INTERACTED"] == shop.interactions.num_rows
    write_graph(neo4j_db, shop, batch_size=500, show_progress=False)
    assert graph_counts(neo4j_db) == counts
    back = export_graph(neo4j_db, chunk_size=333, show_progress=False)
    assert back.fingerprint() == shop.fingerprint()


def test_constraints_exist_before_load(neo4j_db) -> None:
    write_graph(neo4j_db, _kg_tables(), show_progress=False)
    records, _, _ = neo4j_db.execute_query(
        "SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type RETURN labelsOrTypes[0] AS label, "
        "properties AS props, type ORDER BY label"
    )
    assert [(r["label"], r["props"], r["type"]) for r in records] == [
        *((label, ["id"], "UNIQUENESS") for label in ("Brand", "Category", "Entity")),
        ("INTERACTED", ["user_id", "order"], "RELATIONSHIP_UNIQUENESS"),
        ("KgrecLock", ["name"], "UNIQUENESS"),
        *((label, ["id"], "UNIQUENESS") for label in ("Product", "User")),
    ]


def test_invalid_tables_write_nothing(neo4j_db) -> None:
    bad = GraphTables.from_pydict(
        {
            "users": {"id": ["u1"]},
            "products": {"id": ["p1"]},
            "interactions": {
                "user_id": ["u1", "u1"],
                "product_id": ["p1", "p404"],
                "order": [0, 1],
            },
        }
    )
    with pytest.raises(ValidationError, match=r"interactions row 1: .*unknown Product: 'p404'"):
        write_graph(neo4j_db, bad, show_progress=False)
    records, _, _ = neo4j_db.execute_query("MATCH (n) RETURN count(n) AS n")
    assert records[0]["n"] == 0


_LOADER = """
import sys
from ingest.neo4j_writer import write_graph
from ingest.tables import GraphTables
from kg.neo4j.driver import open_driver
from kg.neo4j.settings import Neo4jSettings
tables = GraphTables.load(sys.argv[1])
settings = Neo4jSettings(uri=sys.argv[2], user="neo4j", password=sys.argv[3])
with open_driver(settings) as driver:
    write_graph(driver, tables, batch_size=200, show_progress=False)
"""


def test_resume_after_killed_load(neo4j_db, neo4j_server, tmp_path: Path) -> None:
    config = SyntheticConfig.preset("tiny", n_users=600, n_interactions=12_000, seed=3)
    shop = generate_shop(config, show_progress=False)
    folder = shop.save(tmp_path / "shop")
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOADER, str(folder), neo4j_server.uri, neo4j_server.password],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    # Kill the loader once it is part-way through the interactions (a condition, not a sleep).
    deadline = time.time() + 240
    seen = 0
    while time.time() < deadline and proc.poll() is None:
        records, _, _ = neo4j_db.execute_query("MATCH ()-[r:INTERACTED]->() RETURN count(r) AS n")
        seen = records[0]["n"]
        if seen >= 1000:
            break
        time.sleep(0.05)  # poll interval
    assert proc.poll() is None, "the loader finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    partial = graph_counts(neo4j_db)["relationships"].get("INTERACTED", 0)
    assert 0 < partial < shop.interactions.num_rows
    write_graph(neo4j_db, shop, batch_size=5000, show_progress=False)
    back = export_graph(neo4j_db, show_progress=False)
    assert back.fingerprint() == shop.fingerprint()
