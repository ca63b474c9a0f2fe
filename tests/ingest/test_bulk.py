"""The bulk load (``kgrec ingest ... --bulk``): Neo4j's offline importer gives the graph that a
load over Bolt gives, and refuses what it cannot do in one line.

The import needs a stopped database, so it runs on a second local Neo4j of its own; the load
over Bolt it is compared with runs on the session's Neo4j.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ingest.bulk_csv import write_import_csv
from ingest.neo4j_export import export_graph
from ingest.neo4j_writer import graph_counts, write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from ingest.tables import TABLE_SCHEMAS, GraphTables
from kg.neo4j.driver import open_driver
from kg.neo4j.server import LocalNeo4j, free_port

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


def tricky_tables() -> GraphTables:
    """The tiny shop plus rows whose values a CSV file could get wrong: empty strings and
    nulls, quotes, commas, line breaks, backslashes, non-ASCII text, NaN and infinite prices,
    ``split`` values, and KG triples between products and entities of several relations."""
    shop = generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)
    extra = GraphTables.from_pydict(
        {
            "users": {"id": ["x:1", 'x"2']},
            "products": {
                "id": ["q1", "q,2", "q3", "q4", "q5"],
                "title": ["", 'Say "hi", then\nleave', "back\\slash\\", "Ünïcødé ☃ 𝄞", None],
                "description": [None, "two\r\nlines", "  padded  ", "a;b|c", ""],
                "price": [float("nan"), float("inf"), -0.0, 1e-300, None],
            },
            "categories": {"id": ["Top", 'Top > Sub, "q"'], "name": ["Top", ""], "level": [1, 2]},
            "brands": {"id": ["B\nrand"], "name": [None]},
            "entities": {"id": ["e1", "e 2"], "name": ["Entity, one", None]},
            "interactions": {
                "user_id": ["x:1", "x:1", 'x"2'],
                "product_id": ["q1", "q,2", "q1"],
                "order": [0, 5, 0],
                "ts": [None, 2**62, -5],
                "kind": ["view", None, ""],
                "weight": [0.1, None, 3.5],
                "split": ["train", "test", None],
            },
            "in_category": {"product_id": ["q1", "q,2"], "category_id": ['Top > Sub, "q"'] * 2},
            "subcategory_of": {"child_id": ['Top > Sub, "q"'], "parent_id": ["Top"]},
            "made_by": {"product_id": ["q1"], "brand_id": ["B\nrand"]},
            "triples": {
                "head_label": ["Product", "Product", "Entity", "Entity"],
                "head_id": ["q1", "q3", "e1", "e 2"],
                "relation": ["film.genre", "film.genre", "7up", "related to"],
                "tail_label": ["Entity", "Product", "Entity", "Product"],
                "tail_id": ["e1", "q,2", "e 2", "q4"],
            },
        }
    )
    joined = {
        name: pa.concat_tables([shop.table(name), extra.table(name)]) for name in TABLE_SCHEMAS
    }
    return GraphTables(**joined, meta={"source": "test"}).validate()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def dump(driver: Any) -> dict[str, list[str]]:
    """Every node (labels, properties) and relationship (type, ends, properties), sorted;
    floats compared by their exact text, NaN included."""

    def fix(props: dict[str, Any]) -> dict[str, Any]:
        return {k: repr(v) if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in props.items()}  # fmt: skip

    nodes, _, _ = driver.execute_query("MATCH (n) RETURN labels(n) AS l, properties(n) AS p")
    rels, _, _ = driver.execute_query(
        "MATCH (a)-[r]->(b) RETURN type(r) AS t, labels(a) AS la, a.id AS a, "
        "labels(b) AS lb, b.id AS b, properties(r) AS p"
    )
    return {
        "nodes": sorted(_canonical([sorted(r["l"]), fix(r["p"])]) for r in nodes),
        "relationships": sorted(
            _canonical([r["t"], r["la"], r["a"], r["lb"], r["b"], fix(r["p"])]) for r in rels
        ),
    }


def schema_rules(driver: Any) -> dict[str, list[str]]:
    constraints, _, _ = driver.execute_query(
        "SHOW CONSTRAINTS YIELD name, type, entityType, labelsOrTypes, properties "
        "RETURN name, type, entityType, labelsOrTypes, properties ORDER BY name"
    )
    indexes, _, _ = driver.execute_query(
        "SHOW INDEXES YIELD name, type, entityType, labelsOrTypes, properties, state "
        "RETURN CASE type WHEN 'LOOKUP' THEN '' ELSE name END AS name, type, entityType, "
        "labelsOrTypes, properties, state ORDER BY type, entityType, name"
    )
    return {
        "constraints": [_canonical(r.data()) for r in constraints],
        "indexes": [_canonical(r.data()) for r in indexes],
    }


def test_csv_files_keep_nulls_apart_from_empty_strings(tmp_path: Path) -> None:
    files = write_import_csv(tricky_tables(), tmp_path, show_progress=False)
    products = (tmp_path / "nodes-products.csv").read_text().splitlines()
    assert products[0] == "id:ID(Product),title,description,price:double,seq:long"
    # an empty string is quoted, a null is an empty field; floats as text Java parses back;
    # seq 0 marks batch-loaded rows (ingest.events)
    assert '"q1","",,"NaN",0' in products and '"q5",,"",,0' in products
    interactions = (tmp_path / "rels-interactions.csv").read_text().splitlines()
    assert interactions[0] == (
        ":START_ID(User),:END_ID(Product),user_id,order:long,ts:long,kind,weight:double,split,"
        "seq:long"
    )
    assert files.rows["rels-interactions.csv"] == 3003
    assert {p.name for p in files.multiline} == {
        "nodes-products.csv",
        "nodes-brands.csv",
        "rels-made_by.csv",
    }
    assert "--relationships=" + str(tmp_path / "rels-triples-product-entity.csv") in (
        files.arguments()
    )
    header = (tmp_path / "rels-triples-entity-entity.csv").read_text().splitlines()
    assert header == [
        ":START_ID(Entity),:END_ID(Entity),:TYPE,relation",
        '"e1","e 2","R_7UP","7up"',
    ]


@pytest.fixture(scope="module")
def bulk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNeo4j]:
    """A second local Neo4j of this module's own: the import stops and starts it."""
    home = tmp_path_factory.mktemp("bulk-home")
    server = LocalNeo4j(home, port=free_port(), password=secrets.token_urlsafe(16), heap="512m")
    server.start(timeout=300)
    try:
        yield server
    finally:
        server.stop()


def _kgrec(server: LocalNeo4j, *args: str, env: dict[str, str] | None = None) -> Any:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    base["NEO4J_PASSWORD"] = server.password()
    return subprocess.run(
        [sys.executable, "-m", "kg", "ingest", *args, "--home", str(server.home),
         "--port", str(server.port), "--no-progress"],
        env={**base, **(env or {})}, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_bulk_load_equals_a_load_over_bolt(
    bulk_server: LocalNeo4j, neo4j_db: Any, tmp_path: Path
) -> None:
    tables = tricky_tables()
    write_graph(neo4j_db, tables, show_progress=False)
    folder = tables.save(tmp_path / "tables")
    info = bulk_server.status()
    assert info is not None
    with open_driver(bulk_server.settings(info)) as driver:
        # a schema rule the empty database has survives the import
        driver.execute_query("CREATE INDEX shop_title IF NOT EXISTS FOR (p:Product) ON (p.title)")
    proc = _kgrec(bulk_server, "tables", str(folder), "--bulk")
    assert proc.returncode == 0, proc.stderr
    rels = sum(n for name, n in tables.counts().items() if name not in {"users", "products"}
               and name not in {"categories", "brands", "entities"})  # fmt: skip
    assert "bulk-loaded into" in proc.stdout and f"{rels:,} relationship rows" in proc.stdout

    after = bulk_server.status()
    assert after is not None and after.port == info.port and after.pid != info.pid
    with open_driver(bulk_server.settings(after)) as driver:
        assert dump(driver) == dump(neo4j_db)
        assert export_graph(driver, show_progress=False).fingerprint() == tables.fingerprint()
        bulk_rules = schema_rules(driver)
        neo4j_db.execute_query("CREATE INDEX shop_title IF NOT EXISTS FOR (p:Product) ON (p.title)")
        assert bulk_rules == schema_rules(neo4j_db)
        # the (user, order) key holds in the imported graph
        with pytest.raises(Exception, match="already exists"):
            driver.execute_query(
                "MATCH (u:User {id: 'x:1'}), (p:Product {id: 'q3'}) "
                "CREATE (u)-[:INTERACTED {user_id: 'x:1', order: 0}]->(p)"
            )
        # a load over Bolt on top of the bulk load changes nothing
        before = graph_counts(driver)
        write_graph(driver, tables, show_progress=False)
        assert dump(driver) == dump(neo4j_db) and graph_counts(driver) == before


def test_bulk_refuses_a_database_that_is_not_empty(bulk_server: LocalNeo4j) -> None:
    info = bulk_server.status()
    assert info is not None
    with open_driver(bulk_server.settings(info)) as driver:
        driver.execute_query("MERGE (:User {id: 'someone'})")
        before = graph_counts(driver)
    proc = _kgrec(bulk_server, "synthetic", "--preset", "tiny", "--bulk")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("kgrec: error: database 'neo4j' is not empty (")
    assert "load without --bulk to merge into it, or empty it first" in lines[0]
    after = bulk_server.status()
    assert after is not None and after.pid == info.pid  # never stopped
    with open_driver(bulk_server.settings(after)) as driver:
        assert graph_counts(driver) == before


def test_bulk_refuses_a_remote_server(tmp_path: Path) -> None:
    env = {**os.environ, "NEO4J_URI": "neo4j://127.0.0.1:9", "KGREC_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "kg", "ingest", "synthetic", "--preset", "tiny", "--bulk"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "kgrec: error: --bulk writes the local Neo4j's store files, and NEO4J_URI is set "
        "(neo4j://127.0.0.1:9): load without --bulk to merge over Bolt, or unset NEO4J_URI to "
        "bulk-load the local one"
    ]
    assert not (tmp_path / "neo4j").exists()
