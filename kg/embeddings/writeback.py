"""Write KG embeddings back to Neo4j as node properties with one vector index per label.

After a write-back an analyst can run, for example::

    MATCH (p:Product {id: $id})
    CALL db.index.vector.queryNodes('product_kge', 10, p.kge) YIELD node, score
    RETURN node.id, node.title, score

Re-running replaces the vectors in place (and rebuilds an index whose dimension changed);
it never duplicates nodes or indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kg.embeddings.artifact import KGEmbeddings

if TYPE_CHECKING:
    import neo4j

__all__ = ["DEFAULT_LABELS", "index_name", "write_embeddings"]

DEFAULT_LABELS: tuple[str, ...] = ("Product", "Category", "Brand", "Entity")

# Labels and the property name are identifiers, which Cypher cannot take as parameters; they
# are checked against this set and a simple pattern before being placed in a query.
_ALLOWED_LABELS = {"Product", "Category", "Brand", "Entity", "User"}


def index_name(label: str, prop: str = "kge") -> str:
    """Vector index name of ``label``'s ``prop``: ``product_kge``."""
    return f"{label.lower()}_{prop}"


def _check_identifier(label: str, prop: str) -> None:
    if label not in _ALLOWED_LABELS:
        raise ValueError(f"label must be one of {sorted(_ALLOWED_LABELS)}, got {label!r}")
    if not prop.isidentifier():
        raise ValueError(f"property name must be an identifier, got {prop!r}")


def _ensure_index(driver: neo4j.Driver, label: str, prop: str, dim: int, database: str) -> None:
    """The cosine vector index of ``label.prop``, made again when its dimension differs or it
    quantizes. Neo4j 5.26 quantizes vectors in the index by default, and ranks by the quantized
    ones: on the test shop's fused vectors its top 5 shared 0.85 of the exact top 5 on average,
    0.99 without quantization (the vectors take four times the index's memory: 256 MB per
    million 64-dimensional vectors)."""
    name = index_name(label, prop)
    records, _, _ = driver.execute_query(
        "SHOW VECTOR INDEXES YIELD name, options WHERE name = $name "
        "RETURN options.indexConfig.`vector.dimensions` AS dim, "
        "options.indexConfig.`vector.quantization.enabled` AS quantized",
        name=name,
        database_=database,
    )
    if records and (records[0]["dim"] != dim or records[0]["quantized"] is not False):
        driver.execute_query("DROP INDEX $name", name=name, database_=database)
    driver.execute_query(
        f"CREATE VECTOR INDEX $name IF NOT EXISTS FOR (n:{label}) ON n.{prop} "
        "OPTIONS {indexConfig: {`vector.dimensions`: $dim, `vector.similarity_function`: 'cosine', "
        "`vector.quantization.enabled`: false}}",
        name=name,
        dim=dim,
        database_=database,
    )


def write_embeddings(
    driver: neo4j.Driver,
    embeddings: KGEmbeddings,
    *,
    labels: Sequence[str] = DEFAULT_LABELS,
    prop: str = "kge",
    database: str = "neo4j",
    batch_size: int = 5_000,
    show_progress: bool = True,
) -> dict[str, int]:
    """Set ``n.<prop>`` on every embedded node of ``labels`` and index it.

    Returns:
        Nodes written per label.
    """
    from tqdm.auto import tqdm

    written: dict[str, int] = {}
    for label in labels:
        _check_identifier(label, prop)
        keys, vectors = embeddings.vectors(label)
        if not keys:
            continue
        dim = int(vectors.shape[1])
        query = (
            "UNWIND range(0, size($keys) - 1) AS i "
            f"MATCH (n:{label} {{id: $keys[i]}}) "
            "CALL db.create.setNodeVectorProperty(n, $prop, $vectors[i]) "
            "RETURN count(*) AS n"
        )
        count = 0
        with (
            driver.session(database=database) as session,
            tqdm(
                total=len(keys), desc=f"write-back {label}", unit="node", disable=not show_progress
            ) as bar,
        ):
            for start in range(0, len(keys), batch_size):
                part_keys = keys[start : start + batch_size]
                part_vecs = vectors[start : start + batch_size].tolist()
                count += session.execute_write(
                    lambda tx, k=part_keys, v=part_vecs, q=query: tx.run(
                        q, keys=k, vectors=v, prop=prop
                    ).single()["n"]
                )
                bar.update(len(part_keys))
        _ensure_index(driver, label, prop, dim, database)
        written[label] = count
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)
    return written
