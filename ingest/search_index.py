"""The full-text index of product search: ``product_text`` over each product's title,
description, brand names and category names.

A Neo4j full-text index covers the properties of the nodes it indexes, so each product also
carries its brands' names and the names of its categories and all their ancestors, as two
derived string properties (:data:`SEARCH_FIELDS`)::

    (:Product {title, description, brand_names: "Stanley",
               category_names: "Industrial & Scientific | Fasteners | Staples"})

:func:`index_product_text` (called at the end of every load, :func:`ingest.neo4j_writer.write_graph`)
computes them from the graph, writes those that changed, creates the index when it is missing
(or recreates it when it covers other properties or uses another analyser) and waits until it
is online. A re-run changes nothing. Analysts query it with Lucene syntax::

    CALL db.index.fulltext.queryNodes('product_text', 'nitrile gloves') YIELD node, score

:func:`search_fields` gives the same four texts from :class:`~ingest.tables.GraphTables`, for
the query layer's in-process BM25 (:mod:`kg.query.lexical`), which reproduces the index's scores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest.tables import GraphTables

if TYPE_CHECKING:
    import neo4j

__all__ = [
    "ANALYZER",
    "PRODUCT_TEXT_INDEX",
    "SEARCH_FIELDS",
    "SEPARATOR",
    "index_product_text",
    "search_fields",
]

#: The index's name.
PRODUCT_TEXT_INDEX = "product_text"
#: The indexed properties of ``(:Product)``, in index order.
SEARCH_FIELDS = ("title", "description", "brand_names", "category_names")
#: Lucene's StandardAnalyzer without stop words (:mod:`kg.query.analyzer` reproduces it).
ANALYZER = "standard-no-stop-words"
#: Joins several names in ``brand_names`` and ``category_names``.
SEPARATOR = " | "

#: The derived properties of the products ``$ids``: ``(id, brand_names, category_names)``;
#: brands ordered by name, categories by level then id (ancestors of every category the
#: product is in, each once); a product without any gives null.
_DERIVED = """
UNWIND $ids AS id
MATCH (p:Product {id: id})
OPTIONAL MATCH (p)-[:MADE_BY]->(b:Brand)
WITH p, b ORDER BY coalesce(b.name, b.id), b.id
WITH p, collect(coalesce(b.name, b.id)) AS brands
OPTIONAL MATCH (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..]->(a:Category)
WITH p, brands, a ORDER BY a.level, a.id
WITH p, brands, collect(DISTINCT a) AS ancestors
WITH p, brands, [a IN ancestors | coalesce(a.name, a.id)] AS categories
WITH p,
     CASE WHEN size(brands) = 0 THEN null
          ELSE reduce(s = head(brands), x IN tail(brands) | s + $sep + x) END AS brand_names,
     CASE WHEN size(categories) = 0 THEN null
          ELSE reduce(s = head(categories), x IN tail(categories) | s + $sep + x) END
          AS category_names
WHERE coalesce(p.brand_names, '') <> coalesce(brand_names, '')
   OR coalesce(p.category_names, '') <> coalesce(category_names, '')
   OR (p.brand_names IS NULL) <> (brand_names IS NULL)
   OR (p.category_names IS NULL) <> (category_names IS NULL)
SET p.brand_names = brand_names, p.category_names = category_names
RETURN count(p) AS changed
"""


def index_product_text(
    driver: neo4j.Driver, *, database: str = "neo4j", batch_size: int = 10_000
) -> int:
    """Write every product's ``brand_names`` and ``category_names`` where they changed, and
    make sure the full-text index ``product_text`` exists and is online (module docstring).

    Args:
        driver: an open driver.
        database: the database.
        batch_size: products per transaction.

    Returns:
        the number of products whose derived properties were written.
    """
    records, _, _ = driver.execute_query("MATCH (p:Product) RETURN p.id AS id", database_=database)
    ids = [r["id"] for r in records]
    changed = 0
    with driver.session(database=database) as session:
        for lo in range(0, len(ids), batch_size):
            batch = ids[lo : lo + batch_size]
            changed += session.execute_write(
                lambda tx, b=batch: tx.run(_DERIVED, ids=b, sep=SEPARATOR).single()["changed"]
            )
    _ensure_index(driver, database)
    return changed


def _ensure_index(driver: neo4j.Driver, database: str) -> None:
    records, _, _ = driver.execute_query(
        "SHOW FULLTEXT INDEXES YIELD name, labelsOrTypes, properties, options "
        "WHERE name = $name RETURN labelsOrTypes, properties, "
        "options.indexConfig.`fulltext.analyzer` AS analyzer",
        name=PRODUCT_TEXT_INDEX,
        database_=database,
    )
    if records:
        found = records[0]
        wanted = (["Product"], list(SEARCH_FIELDS), ANALYZER)
        if (found["labelsOrTypes"], found["properties"], found["analyzer"]) != wanted:
            driver.execute_query("DROP INDEX $name", name=PRODUCT_TEXT_INDEX, database_=database)
    driver.execute_query(
        "CREATE FULLTEXT INDEX $name IF NOT EXISTS FOR (p:Product) "
        "ON EACH [p.title, p.description, p.brand_names, p.category_names] "
        "OPTIONS {indexConfig: {`fulltext.analyzer`: $analyzer, "
        "`fulltext.eventually_consistent`: false}}",
        name=PRODUCT_TEXT_INDEX,
        analyzer=ANALYZER,
        database_=database,
    )
    driver.execute_query(
        "CALL db.awaitIndex($name, 600)", name=PRODUCT_TEXT_INDEX, database_=database
    )


def search_fields(tables: GraphTables) -> dict[str, dict[str, str]]:
    """The four indexed texts of every product, as the graph ``tables`` gives them: ``{field:
    {product id: text}}``, a product without a value left out of that field (module
    docstring; the same texts :func:`index_product_text` writes).
    """
    products = tables.products.to_pydict()
    out: dict[str, dict[str, str]] = {f: {} for f in SEARCH_FIELDS}
    for field in ("title", "description"):
        out[field] = {
            pid: text
            for pid, text in zip(products["id"], products[field], strict=True)
            if text is not None
        }
    brand_name = _names(tables.brands.to_pydict())
    brands: dict[str, list[str]] = {}
    for pid, bid in zip(*_columns(tables.made_by, "product_id", "brand_id"), strict=True):
        brands.setdefault(pid, []).append(bid)
    for pid, bids in brands.items():
        names = sorted((brand_name.get(b, b), b) for b in set(bids))
        out["brand_names"][pid] = SEPARATOR.join(n for n, _ in names)
    categories = tables.categories.to_pydict()
    cat_name = _names(categories)
    level = dict(zip(categories["id"], categories["level"], strict=True))
    parent = dict(zip(*_columns(tables.subcategory_of, "child_id", "parent_id"), strict=True))
    ancestors: dict[str, set[str]] = {}
    for pid, cid in zip(*_columns(tables.in_category, "product_id", "category_id"), strict=True):
        found = ancestors.setdefault(pid, set())
        seen: set[str] = set()
        while cid is not None and cid not in seen:  # a cycle ends the walk
            seen.add(cid)
            found.add(cid)
            cid = parent.get(cid)
    for pid, cids in ancestors.items():
        ordered = sorted(cids, key=lambda c: (_level(level.get(c)), c))
        out["category_names"][pid] = SEPARATOR.join(cat_name.get(c, c) for c in ordered)
    return out


def _names(table: dict[str, list[Any]]) -> dict[str, str]:
    """``{id: name}`` of a node table, the id where the name is null."""
    return {i: (n if n is not None else i) for i, n in zip(table["id"], table["name"], strict=True)}


def _columns(table: Any, *names: str) -> list[list[Any]]:
    return [table.column(n).to_pylist() for n in names]


def _level(level: int | None) -> float:
    """Neo4j sorts a null level after every number."""
    return float("inf") if level is None else float(level)
