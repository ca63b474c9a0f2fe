"""The graph schema: node labels, their keys, and relationship types, in one place.

Every other module (sources, the Neo4j writer, export, training) refers to these names rather
than spelling labels or relationship types itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "BRAND",
    "CATEGORY",
    "EDGE_TYPES",
    "ENTITY",
    "INTERACTED",
    "IN_CATEGORY",
    "MADE_BY",
    "NODE_TYPES",
    "PRODUCT",
    "SUBCATEGORY_OF",
    "USER",
    "EdgeType",
    "NodeType",
    "relation_type_name",
]


@dataclass(frozen=True)
class NodeType:
    """A node label with its table name and the property that is its unique key."""

    label: str
    table: str
    key: str = "id"


@dataclass(frozen=True)
class EdgeType:
    """A relationship type between two node types, with the table that holds its rows.

    ``src_col`` and ``dst_col`` name the columns of the edge table that hold the keys of the
    start and end nodes.
    """

    rel_type: str
    table: str
    src: NodeType
    dst: NodeType
    src_col: str
    dst_col: str


USER = NodeType("User", "users")
PRODUCT = NodeType("Product", "products")
CATEGORY = NodeType("Category", "categories")
BRAND = NodeType("Brand", "brands")
ENTITY = NodeType("Entity", "entities")

NODE_TYPES: tuple[NodeType, ...] = (USER, PRODUCT, CATEGORY, BRAND, ENTITY)

INTERACTED = EdgeType("INTERACTED", "interactions", USER, PRODUCT, "user_id", "product_id")
IN_CATEGORY = EdgeType("IN_CATEGORY", "in_category", PRODUCT, CATEGORY, "product_id", "category_id")
SUBCATEGORY_OF = EdgeType(
    "SUBCATEGORY_OF", "subcategory_of", CATEGORY, CATEGORY, "child_id", "parent_id"
)
MADE_BY = EdgeType("MADE_BY", "made_by", PRODUCT, BRAND, "product_id", "brand_id")

#: Fixed-type edges. KG triples (table ``triples``) carry their relation name per row instead.
EDGE_TYPES: tuple[EdgeType, ...] = (INTERACTED, IN_CATEGORY, SUBCATEGORY_OF, MADE_BY)

#: Labels a KG triple's head or tail may have.
TRIPLE_LABELS: tuple[str, ...] = (PRODUCT.label, ENTITY.label)

_NON_WORD = re.compile(r"[^0-9A-Za-z]+")


def relation_type_name(relation: str) -> str:
    """Turn a free-form KG relation name into a Neo4j relationship type.

    ``"film.film.genre"`` becomes ``"FILM_FILM_GENRE"``; a name that would start with a digit
    or be empty gets an ``R_`` prefix. The original name is kept on the relationship as the
    ``relation`` property, so the mapping never has to be inverted.

    Args:
        relation: the relation name as the source gives it.

    Returns:
        An upper-case identifier of letters, digits and underscores.
    """
    name = _NON_WORD.sub("_", relation).strip("_").upper()
    if not name or name[0].isdigit():
        name = "R_" + name
    return name
