"""Stream the graph from Neo4j back into :class:`GraphTables`.

Results are pulled lazily (``fetch_size`` records at a time) and turned into Arrow record
batches of ``chunk_size`` rows, so memory holds one chunk of Python objects at a time besides
the columnar result. Edits analysts make in Neo4j therefore reach training.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ingest import schema
from ingest.tables import TABLE_SCHEMAS, GraphTables

if TYPE_CHECKING:
    import neo4j

__all__ = ["EXPORT_QUERIES", "export_graph"]

_FIXED = ", ".join(f"'{e.rel_type}'" for e in schema.EDGE_TYPES)

#: One read query per canonical table; each returns exactly that table's columns.
EXPORT_QUERIES: dict[str, str] = {
    "users": "MATCH (n:User) RETURN n.id AS id",
    "products": (
        "MATCH (n:Product) RETURN n.id AS id, n.title AS title, "
        "n.description AS description, n.price AS price"
    ),
    "categories": "MATCH (n:Category) RETURN n.id AS id, n.name AS name, n.level AS level",
    "brands": "MATCH (n:Brand) RETURN n.id AS id, n.name AS name",
    "entities": "MATCH (n:Entity) RETURN n.id AS id, n.name AS name",
    "interactions": (
        "MATCH (u:User)-[r:INTERACTED]->(p:Product) RETURN u.id AS user_id, p.id AS product_id, "
        "r.order AS order, r.ts AS ts, r.kind AS kind, r.weight AS weight, r.split AS split"
    ),
    "in_category": (
        "MATCH (p:Product)-[:IN_CATEGORY]->(c:Category) RETURN p.id AS product_id, c.id AS category_id"
    ),
    "subcategory_of": (
        "MATCH (c:Category)-[:SUBCATEGORY_OF]->(p:Category) RETURN c.id AS child_id, p.id AS parent_id"
    ),
    "made_by": "MATCH (p:Product)-[:MADE_BY]->(b:Brand) RETURN p.id AS product_id, b.id AS brand_id",
    "triples": (
        "MATCH (h)-[r]->(t) WHERE r.relation IS NOT NULL AND NOT type(r) IN [" + _FIXED + "] "
        "AND (h:Product OR h:Entity) AND (t:Product OR t:Entity) "
        "RETURN CASE WHEN h:Product THEN 'Product' ELSE 'Entity' END AS head_label, h.id AS head_id, "
        "r.relation AS relation, "
        "CASE WHEN t:Product THEN 'Product' ELSE 'Entity' END AS tail_label, t.id AS tail_id"
    ),
}


def _stream(
    session: neo4j.Session, query: str, target: pa.Schema, chunk_size: int
) -> Iterator[pa.RecordBatch]:
    names = target.names
    result = session.run(query)
    columns: dict[str, list[Any]] = {n: [] for n in names}
    count = 0
    for record in result:
        for n in names:
            columns[n].append(record[n])
        count += 1
        if count == chunk_size:
            yield pa.RecordBatch.from_pydict(columns, schema=target)
            columns = {n: [] for n in names}
            count = 0
    if count:
        yield pa.RecordBatch.from_pydict(columns, schema=target)


def export_graph(
    driver: neo4j.Driver,
    *,
    database: str = "neo4j",
    fetch_size: int = 10_000,
    chunk_size: int = 100_000,
    show_progress: bool = True,
) -> GraphTables:
    """Read the whole kgrec graph from Neo4j into canonical tables.

    Args:
        driver: an open driver.
        database: source database.
        fetch_size: records the driver pulls per network round trip.
        chunk_size: rows turned into one Arrow record batch at a time.
        show_progress: a tqdm bar per table.

    Returns:
        The tables, validated, with ``meta`` naming the source database.
    """
    from tqdm.auto import tqdm

    tables: dict[str, pa.Table] = {}
    with driver.session(database=database, fetch_size=fetch_size) as session:
        for name, query in EXPORT_QUERIES.items():
            target = TABLE_SCHEMAS[name]
            batches = []
            with tqdm(desc=f"export {name}", unit="row", disable=not show_progress) as bar:
                for batch in _stream(session, query, target, chunk_size):
                    batches.append(batch)
                    bar.update(batch.num_rows)
            tables[name] = pa.Table.from_batches(batches, schema=target)
    graph = GraphTables(**tables, meta={"source": "neo4j", "database": database})
    return graph.validate()
