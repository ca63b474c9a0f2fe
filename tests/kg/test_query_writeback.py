"""Write-back of RELATED edges and fused vectors to the real Neo4j."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ingest.neo4j_writer import write_graph
from ingest.tables import GraphTables
from kg.query import Recommender
from kg.query.writeback import FUSED_INDEX, write_fused_vectors, write_related

pytestmark = pytest.mark.neo4j


def _related(driver: Any) -> dict[tuple[str, int], tuple[str, float]]:
    records, _, _ = driver.execute_query(
        "MATCH (a:Product)-[r:RELATED]->(b:Product) "
        "RETURN a.id AS a, b.id AS b, r.score AS score, r.rank AS rank"
    )
    out = {(r["a"], r["rank"]): (r["b"], r["score"]) for r in records}
    assert len(out) == len(records)  # one edge per (product, rank)
    return out


def test_related_edges_replace_and_never_duplicate(
    neo4j_db: Any, tables: GraphTables, rec: Recommender
) -> None:
    write_graph(neo4j_db, tables, show_progress=False)
    n = rec.n_products
    assert write_related(neo4j_db, rec, k=4, batch_size=128, show_progress=False) == 4 * n
    first = _related(neo4j_db)
    assert len(first) == 4 * n
    for pid in ("p0", "p123"):
        expected = rec.related(pid, k=4)
        for r in expected:
            b, score = first[(pid, r.rank)]
            assert b == r.product_id and score == pytest.approx(r.score, abs=1e-5)
    assert write_related(neo4j_db, rec, k=4, show_progress=False) == 4 * n  # re-run
    assert _related(neo4j_db) == first  # the same edges, computed again
    # A partial re-run with a smaller k replaces the edges of those products only.
    write_related(neo4j_db, rec, k=2, product_ids=["p0", "p1"], show_progress=False)
    after = _related(neo4j_db)
    assert len(after) == 4 * n - 4
    assert {rank for (a, rank) in after if a in ("p0", "p1")} == {1, 2}
    assert after[("p2", 4)] == first[("p2", 4)]


def test_fused_vectors_and_index(neo4j_db: Any, tables: GraphTables, rec: Recommender) -> None:
    write_graph(neo4j_db, tables, show_progress=False)
    assert write_fused_vectors(neo4j_db, rec, show_progress=False) == rec.n_products
    assert write_fused_vectors(neo4j_db, rec, show_progress=False) == rec.n_products
    records, _, _ = neo4j_db.execute_query(
        "SHOW VECTOR INDEXES YIELD name, state, labelsOrTypes, properties, options "
        "RETURN name, state, labelsOrTypes, properties, "
        "options.indexConfig.`vector.dimensions` AS dim"
    )
    assert [r["name"] for r in records] == [FUSED_INDEX] == ["product_fused"]
    (index,) = records
    assert index["state"] == "ONLINE" and index["labelsOrTypes"] == ["Product"]
    assert index["properties"] == ["fused"] and index["dim"] == rec.scorer.vectors.shape[1]
    records, _, _ = neo4j_db.execute_query("MATCH (p:Product {id: 'p7'}) RETURN p.fused AS v")
    i = rec.index.product_index["p7"]
    np.testing.assert_allclose(records[0]["v"], rec.scorer.vectors[i], rtol=1e-6)
    records, _, _ = neo4j_db.execute_query(
        "MATCH (p:Product) WHERE p.fused IS NULL RETURN count(p) AS n"
    )
    assert records[0]["n"] == 0
    with pytest.raises(ValueError, match="identifier"):
        write_fused_vectors(neo4j_db, rec, prop="fused) DETACH DELETE n //")


def test_a_quantized_vector_index_is_made_again(
    neo4j_db: Any, tables: GraphTables, rec: Recommender
) -> None:
    """An index that an earlier kgrec made with Neo4j's default (quantized vectors) is
    replaced by one that ranks by the float vectors."""
    write_graph(neo4j_db, tables, show_progress=False)
    neo4j_db.execute_query("DROP INDEX product_fused IF EXISTS")
    neo4j_db.execute_query(
        "CREATE VECTOR INDEX product_fused FOR (n:Product) ON n.fused OPTIONS {indexConfig: "
        "{`vector.dimensions`: $dim, `vector.similarity_function`: 'cosine'}}",
        dim=int(rec.scorer.vectors.shape[1]),
    )

    def quantized() -> list[Any]:
        records, _, _ = neo4j_db.execute_query(
            "SHOW VECTOR INDEXES YIELD name, options WHERE name = 'product_fused' "
            "RETURN options.indexConfig.`vector.quantization.enabled` AS q"
        )
        return [r["q"] for r in records]

    assert quantized() == [True]  # Neo4j's default
    write_fused_vectors(neo4j_db, rec, show_progress=False)
    assert quantized() == [False]
