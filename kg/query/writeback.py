"""Write the query layer's results back to Neo4j for analysts.

* :func:`write_related`: ``(:Product)-[:RELATED {score, rank}]->(:Product)``, the top-``k``
  related products of every product (:meth:`~kg.query.Recommender.related`). Each batch first
  deletes the old RELATED edges of its products and then creates the new ones in the same
  transaction, so a re-run replaces them and never duplicates one.
* :func:`write_fused_vectors`: the fused product vectors as the property ``fused`` with the
  cosine vector index ``product_fused`` (like :mod:`kg.embeddings.writeback` for ``kge``).

Then, for example::

    MATCH (p:Product {id: $id})-[r:RELATED]->(o:Product)
    RETURN o.id, o.title, r.score ORDER BY r.rank

    MATCH (p:Product {id: $id})
    CALL db.index.vector.queryNodes('product_fused', 10, p.fused) YIELD node, score
    RETURN node.id, node.title, score

Queries are literal strings with ``$parameters``; the label and property name are fixed or
checked identifiers, never user input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kg.embeddings.writeback import _check_identifier, _ensure_index, index_name

if TYPE_CHECKING:
    import neo4j

    from kg.query.recommender import Recommender

__all__ = [
    "DELETE_RELATED",
    "FUSED_INDEX",
    "WRITE_RELATED",
    "write_fused_vectors",
    "write_related",
]

#: Name of the fused-vector index.
FUSED_INDEX = index_name("Product", "fused")  # "product_fused"

#: Deletes the outgoing RELATED edges of the products ``$ids``.
DELETE_RELATED = "UNWIND $ids AS id MATCH (:Product {id: id})-[r:RELATED]->(:Product) DELETE r"
#: Creates one RELATED edge per row ``{src, dst, score, rank}``.
WRITE_RELATED = (
    "UNWIND $rows AS row "
    "MATCH (a:Product {id: row.src}) MATCH (b:Product {id: row.dst}) "
    "CREATE (a)-[:RELATED {score: row.score, rank: row.rank}]->(b)"
)


def write_related(
    driver: neo4j.Driver,
    rec: Recommender,
    *,
    k: int = 10,
    product_ids: Sequence[str] | None = None,
    database: str = "neo4j",
    batch_size: int = 1_000,
    show_progress: bool = True,
) -> int:
    """Replace the RELATED edges of ``product_ids`` (default: every product) by the top ``k``.

    Args:
        driver: an open driver (see :func:`kg.neo4j.driver.open_driver`).
        rec: the recommender.
        k: related products per product.
        product_ids: the products to write; ``None`` for all.
        database: target database.
        batch_size: products per transaction.
        show_progress: a tqdm bar over products.

    Returns:
        RELATED edges written.
    """
    from tqdm.auto import tqdm

    ids = list(rec.index.product_ids if product_ids is None else product_ids)
    written = 0
    with (
        driver.session(database=database) as session,
        tqdm(total=len(ids), desc="RELATED", unit="product", disable=not show_progress) as bar,
    ):
        for lo in range(0, len(ids), batch_size):
            batch = ids[lo : lo + batch_size]
            rows = [
                {"src": pid, "dst": r.product_id, "score": r.score, "rank": r.rank}
                for pid, results in rec.related_many(batch, k)
                for r in results
            ]
            session.execute_write(_replace, batch, rows)
            written += len(rows)
            bar.update(len(batch))
    return written


def _replace(tx: neo4j.ManagedTransaction, ids: list[str], rows: list[dict[str, object]]) -> None:
    tx.run(DELETE_RELATED, ids=ids).consume()
    tx.run(WRITE_RELATED, rows=rows).consume()


def write_fused_vectors(
    driver: neo4j.Driver,
    rec: Recommender,
    *,
    prop: str = "fused",
    database: str = "neo4j",
    batch_size: int = 5_000,
    show_progress: bool = True,
) -> int:
    """Set ``p.<prop>`` to each product's fused vector and index it (``product_<prop>``).

    The vectors are the fusion model's product outputs (not normalised; the index compares
    them by cosine). A re-run replaces them; a dimension change rebuilds the index.

    Returns:
        Products written.
    """
    from tqdm.auto import tqdm

    _check_identifier("Product", prop)
    vectors = rec.scorer.vectors
    keys = rec.index.product_ids
    query = (
        "UNWIND range(0, size($keys) - 1) AS i "
        "MATCH (n:Product {id: $keys[i]}) "
        "CALL db.create.setNodeVectorProperty(n, $prop, $vectors[i]) "
        "RETURN count(*) AS n"
    )
    count = 0
    with (
        driver.session(database=database) as session,
        tqdm(total=len(keys), desc="fused", unit="product", disable=not show_progress) as bar,
    ):
        for lo in range(0, len(keys), batch_size):
            part_keys = keys[lo : lo + batch_size]
            part_vecs = vectors[lo : lo + batch_size].tolist()
            count += session.execute_write(
                lambda tx, k=part_keys, v=part_vecs: tx.run(
                    query, keys=k, vectors=v, prop=prop
                ).single()["n"]
            )
            bar.update(len(part_keys))
    _ensure_index(driver, "Product", prop, int(vectors.shape[1]), database)
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)
    return count
