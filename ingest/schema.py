"""The graph schema: node labels, their keys, relationship types and live events, in one place.

Every other module (sources, the Neo4j writer, export, training, events) refers to these names
rather than spelling labels or relationship types itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "BRAND",
    "CATEGORY",
    "EDGE_TYPES",
    "ENTITY",
    "EVENT",
    "EVENT_KINDS",
    "INTERACTED",
    "IN_CATEGORY",
    "MADE_BY",
    "NODE_TYPES",
    "PRODUCT",
    "SUBCATEGORY_OF",
    "USER",
    "EdgeType",
    "Event",
    "InteractionEvent",
    "NodeType",
    "ProductEvent",
    "RetireEvent",
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

#: The log of live catalogue events (product upserts and retirements): one node per event,
#: keyed by its id. Interaction events are logged by their INTERACTED edge (``event_id``).
EVENT = NodeType("Event", "events")

#: Kinds of interaction events.
EVENT_KINDS: tuple[str, ...] = ("view", "cart", "purchase")


@dataclass(frozen=True)
class InteractionEvent:
    """A user interacted with a product (live; see :mod:`ingest.events`).

    Attributes:
        event_id: unique id of the event: a replay of the same id changes nothing.
        user_id: the user (created when new).
        product_id: an existing product (or one created earlier in the same batch).
        kind: one of :data:`EVENT_KINDS`.
        ts: Unix seconds.
        weight: the interaction's weight (default 1.0).
    """

    event_id: str
    user_id: str
    product_id: str
    kind: str
    ts: int
    weight: float = 1.0


@dataclass(frozen=True)
class ProductEvent:
    """A product is listed or changed (an upsert; live).

    Attributes:
        event_id: unique id of the event.
        product_id: the product (created when new).
        title: its title (required, not empty).
        description: its description, or ``None``.
        category: its category path from the root (``("Tools", "Hand Tools", "Pliers")``),
            empty for none; category ids are the names joined with ``" > "``.
        brand: its brand name (the brand's id too), or ``None``.
        price: its price, or ``None``.
        available: whether it may be recommended.
    """

    event_id: str
    product_id: str
    title: str
    description: str | None = None
    category: tuple[str, ...] = field(default_factory=tuple)
    brand: str | None = None
    price: float | None = None
    available: bool = True


@dataclass(frozen=True)
class RetireEvent:
    """A product leaves the catalogue: it leaves every ranking (its history stays).

    Attributes:
        event_id: unique id of the event.
        product_id: the product.
    """

    event_id: str
    product_id: str


#: Any live event.
Event = InteractionEvent | ProductEvent | RetireEvent

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
