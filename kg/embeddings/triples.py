"""Typed KG triples from canonical tables, with a stable mapping to PyKEEN ids.

Every node becomes a PyKEEN entity labelled ``"<Label>:<key>"`` (``"Product:p1"``,
``"Category:Lab > Pipettes"``), so keys of different labels never collide and the label of
each vector is known. Entity and relation ids are assigned in sorted label order, so the same
graph always gives the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest import schema
from ingest.tables import GraphTables

if TYPE_CHECKING:
    from pykeen.triples import TriplesFactory

__all__ = [
    "CO_INTERACTION",
    "DEFAULT_RELATIONS",
    "KGTriples",
    "build_triples",
    "entity_label",
]

#: Relation types used by default: the catalogue structure and any KGAT-style KG relations.
#: User–product interactions are off by default so that link prediction is evaluated honestly
#: and interaction data stays for the recommender's own evaluation.
DEFAULT_RELATIONS: tuple[str, ...] = (
    schema.IN_CATEGORY.rel_type,
    schema.SUBCATEGORY_OF.rel_type,
    schema.MADE_BY.rel_type,
    "KG",  # every relation of the `triples` table
)
#: Optional derived relation: product followed by product in some user's history (training part).
CO_INTERACTION = "CO_INTERACTED"


def entity_label(label: str, key: str) -> str:
    """The PyKEEN entity label of node ``key`` with Neo4j label ``label``."""
    return f"{label}:{key}"


@dataclass(frozen=True)
class KGTriples:
    """Labelled triples and their id maps.

    Attributes:
        triples: array of shape (n, 3) of strings: head label, relation, tail label.
        entity_to_id: entity label -> id, dense 0..n_entities-1 in sorted label order.
        relation_to_id: relation name -> id, sorted.
    """

    triples: np.ndarray
    entity_to_id: dict[str, int]
    relation_to_id: dict[str, int]

    def fingerprint(self) -> str:
        """SHA-256 of the triples (in sorted order): equal graphs give equal fingerprints, and
        any changed, added or removed triple changes it."""
        digest = hashlib.sha256()
        for row in sorted(map(tuple, self.triples.tolist())):
            digest.update("\t".join(row).encode("utf-8", "surrogatepass") + b"\n")
        return digest.hexdigest()

    def factory(self) -> TriplesFactory:
        """A PyKEEN :class:`~pykeen.triples.TriplesFactory` over all triples with these id maps."""
        from pykeen.triples import TriplesFactory

        return TriplesFactory.from_labeled_triples(
            self.triples,
            entity_to_id=self.entity_to_id,
            relation_to_id=self.relation_to_id,
            create_inverse_triples=False,
        )


def _edge_triples(
    table: pa.Table, src: str, dst: str, src_label: str, rel: str, dst_label: str
) -> np.ndarray:
    heads = pc.binary_join_element_wise(src_label + ":", table.column(src), "").to_numpy(
        zero_copy_only=False
    )
    tails = pc.binary_join_element_wise(dst_label + ":", table.column(dst), "").to_numpy(
        zero_copy_only=False
    )
    return np.stack([heads, np.full(len(heads), rel, dtype=object), tails], axis=1)


def _co_interactions(interactions: pa.Table, exclude_last: int) -> np.ndarray:
    """Consecutive product pairs in each user's history, leaving out each user's last items."""
    t = interactions.select(["user_id", "order", "product_id"]).sort_by(
        [("user_id", "ascending"), ("order", "ascending")]
    )
    users = t.column("user_id").to_numpy(zero_copy_only=False)
    items = t.column("product_id").to_numpy(zero_copy_only=False)
    if len(users) < 2:
        return np.empty((0, 3), dtype=object)
    # Position from the end of each user's history; drop the held-out tail.
    boundary = np.r_[users[1:] != users[:-1], True]
    ends = np.flatnonzero(boundary)
    lengths = np.diff(np.r_[-1, ends])
    from_end = np.repeat(ends, lengths) - np.arange(len(users))
    keep = from_end >= exclude_last
    same_user = users[1:] == users[:-1]
    pair = same_user & keep[1:] & keep[:-1]
    heads = np.char.add("Product:", items[:-1][pair].astype(str)).astype(object)
    tails = np.char.add("Product:", items[1:][pair].astype(str)).astype(object)
    triples = np.stack([heads, np.full(len(heads), CO_INTERACTION, dtype=object), tails], axis=1)
    return np.unique(triples.astype(str), axis=0).astype(object) if len(triples) else triples


def build_triples(
    tables: GraphTables,
    relations: Sequence[str] = DEFAULT_RELATIONS,
    *,
    co_interaction_holdout: int = 2,
) -> KGTriples:
    """Turn canonical tables into labelled triples.

    Args:
        tables: the graph.
        relations: relation types to include: any of ``IN_CATEGORY``, ``SUBCATEGORY_OF``,
            ``MADE_BY``, ``INTERACTED`` (user -> product), ``CO_INTERACTED`` (product ->
            next product in a user's history) and ``KG`` (all rows of the ``triples`` table).
        co_interaction_holdout: with ``CO_INTERACTED``, leave out each user's last this-many
            items (the leave-one-out validation and test items), so no test signal leaks in.

    Returns:
        The triples and deterministic id maps.
    """
    known = {e.rel_type for e in schema.EDGE_TYPES} | {CO_INTERACTION, "KG"}
    unknown = sorted(set(relations) - known)
    if unknown:
        raise ValueError(f"unknown relation types {unknown}; choose from {sorted(known)}")
    parts: list[np.ndarray] = []
    for edge in schema.EDGE_TYPES:
        if edge.rel_type in relations:
            table = tables.table(edge.table)
            parts.append(
                _edge_triples(
                    table, edge.src_col, edge.dst_col, edge.src.label, edge.rel_type, edge.dst.label
                )
            )
    if CO_INTERACTION in relations:
        parts.append(_co_interactions(tables.interactions, co_interaction_holdout))
    if "KG" in relations and tables.triples.num_rows:
        t = tables.triples
        heads = pc.binary_join_element_wise(t.column("head_label"), t.column("head_id"), ":")
        tails = pc.binary_join_element_wise(t.column("tail_label"), t.column("tail_id"), ":")
        parts.append(
            np.stack(
                [
                    heads.to_numpy(zero_copy_only=False),
                    t.column("relation").to_numpy(zero_copy_only=False),
                    tails.to_numpy(zero_copy_only=False),
                ],
                axis=1,
            )
        )
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ValueError(f"no triples of the relation types {list(relations)} in these tables")
    triples = np.concatenate(parts).astype(str)
    entities = np.unique(np.concatenate([triples[:, 0], triples[:, 2]]))
    rels = np.unique(triples[:, 1])
    return KGTriples(
        triples=triples,
        entity_to_id={str(e): i for i, e in enumerate(entities)},
        relation_to_id={str(r): i for i, r in enumerate(rels)},
    )
