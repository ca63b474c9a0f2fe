"""The full-text index of product search: created by ingest, its texts, and the in-process BM25
(:mod:`kg.query.lexical`) against Neo4j's scores and Lucene's own analyser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.neo4j_writer import write_graph
from ingest.search_index import (
    ANALYZER,
    PRODUCT_TEXT_INDEX,
    SEARCH_FIELDS,
    index_product_text,
    search_fields,
)
from ingest.tables import GraphTables
from kg.query import Recommender
from kg.query.analyzer import analyze, escape_query
from tests.conftest import clear_database

ROOT = Path(__file__).resolve().parents[2]
LUCENE_LIB = ROOT / "kg" / "neo4j" / "launcher" / "target" / "lib"
QUERIES = ["machine screws", "steel", "Brass hex BOLTS", "erlenmeyer flasks 500 ml", "3/8 in"]

#: Hard cases of the analyser: joiners, numbers, apostrophes, non-Latin scripts, case.
HARD = [
    "M8x1.25 hex-head bolts, 1,000.50 mm; e.g. don't",
    "3D printer PLA 1.75mm (1kg) — black/white & grey",
    "ÉTAGÈRE İstanbul ΣΊΣΥΦΟΣ straße",
    "日本語のテキスト 中文 한국어 text",
    "a_b c.d e:f 1;2 3,4,5 x'y v2.0.1 user@example.com http://x.org/a",
]


@pytest.fixture(scope="module")
def graph(neo4j_driver: Any, tables: GraphTables) -> Any:
    """The session's Neo4j holding the tiny shop, as ``write_graph`` leaves it."""
    clear_database(neo4j_driver)
    write_graph(neo4j_driver, tables, show_progress=False)
    return neo4j_driver


@pytest.mark.neo4j
def test_ingest_creates_the_index(graph: Any, tables: GraphTables) -> None:
    records, _, _ = graph.execute_query(
        "SHOW FULLTEXT INDEXES YIELD name, state, labelsOrTypes, properties, options "
        "WHERE name = $name RETURN state, labelsOrTypes, properties, "
        "options.indexConfig.`fulltext.analyzer` AS analyzer",
        name=PRODUCT_TEXT_INDEX,
    )
    assert len(records) == 1
    r = records[0]
    assert r["state"] == "ONLINE" and r["labelsOrTypes"] == ["Product"]
    assert r["properties"] == list(SEARCH_FIELDS) and r["analyzer"] == ANALYZER
    fields = search_fields(tables)
    records, _, _ = graph.execute_query(
        "MATCH (p:Product) RETURN p.id AS id, p.brand_names AS b, p.category_names AS c"
    )
    assert len(records) == tables.products.num_rows
    for rec in records:
        assert rec["b"] == fields["brand_names"].get(rec["id"])
        assert rec["c"] == fields["category_names"].get(rec["id"])
    assert index_product_text(graph) == 0  # a re-run changes nothing


@pytest.mark.neo4j
def test_in_process_bm25_equals_neo4j(graph: Any, rec: Recommender) -> None:
    lexical = rec.product_search.lexical
    for query in QUERIES:
        records, _, _ = graph.execute_query(
            "CALL db.index.fulltext.queryNodes($index, $query, {limit: 1000}) "
            "YIELD node, score RETURN node.id AS id, score",
            index=PRODUCT_TEXT_INDEX,
            query=escape_query(query),
        )
        neo4j = {r["id"]: r["score"] for r in records}
        mine = lexical.scores(analyze(query))
        hit = np.flatnonzero(mine > 0)
        assert {rec.index.product_ids[j] for j in hit} == set(neo4j), query
        for j in hit.tolist():
            assert mine[j] == pytest.approx(neo4j[rec.index.product_ids[j]], rel=1e-4), query


@pytest.mark.skipif(shutil.which("java") is None, reason="needs java (scripts/setup.sh)")
def test_analyzer_equals_lucene(tables: GraphTables) -> None:
    """Lucene's StandardAnalyzer (the jars of the local Neo4j) on every text of the shop and
    on hard cases gives the terms :func:`kg.query.analyzer.analyze` gives."""
    assert LUCENE_LIB.is_dir(), "build the Neo4j launcher first (scripts/setup.sh)"
    texts = [t for field in search_fields(tables).values() for t in field.values()] + HARD
    texts = [" ".join(t.splitlines()) for t in texts]
    out = subprocess.run(
        ["java", "-cp", f"{LUCENE_LIB}/*", str(ROOT / "tests/kg/lucene/LuceneTokens.java")],
        input="\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
        timeout=300,
    ).stdout.split("\n")
    for text, line in zip(texts, out, strict=False):
        lucene = line.split("\t") if line else []
        assert analyze(text) == lucene, text
