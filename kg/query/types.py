"""Typed results of the query layer: recommendations, graph paths and the unknown-id error.

Every record is a frozen dataclass with ``to_dict()`` (JSON-ready: plain strings, floats, ints,
lists and dicts), which the CLI and the HTTP API print and serve as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GraphPath", "PathNode", "PathStep", "Recommendation", "UnknownIdError"]


class UnknownIdError(KeyError):
    """An id the graph does not know (a product, user, category or brand).

    Args:
        kind: what the id should name: ``"product"``, ``"user"``, ``"category"`` or ``"brand"``.
        id: the id as given.
    """

    def __init__(self, kind: str, id: str) -> None:
        self.kind = kind
        self.id = id
        super().__init__(f"unknown {kind} id {id!r}")

    def __str__(self) -> str:
        # KeyError's own __str__ quotes the message; show it as written.
        return str(self.args[0])


@dataclass(frozen=True)
class PathNode:
    """One node on a path: its label (``User``, ``Product``, ``Category``, ``Brand``), id, name."""

    label: str
    id: str
    name: str | None = None

    def __str__(self) -> str:
        return f"({self.label} {self.id})"

    def to_dict(self) -> dict[str, Any]:
        """``{"label", "id", "name"}``."""
        return {"label": self.label, "id": self.id, "name": self.name}


@dataclass(frozen=True)
class PathStep:
    """One relationship of a path, walked from ``source`` to ``target``.

    Attributes:
        rel_type: the relationship type (``INTERACTED``, ``CO_INTERACTED``, ``MADE_BY``,
            ``IN_CATEGORY``, ``SUBCATEGORY_OF``).
        source: the node the walk comes from.
        target: the node the walk goes to.
        forward: ``True`` when the relationship points from ``source`` to ``target`` in the
            graph, ``False`` when the walk goes against its direction.
    """

    rel_type: str
    source: PathNode
    target: PathNode
    forward: bool = True

    @property
    def start(self) -> PathNode:
        """The node the relationship starts at in the graph."""
        return self.source if self.forward else self.target

    @property
    def end(self) -> PathNode:
        """The node the relationship ends at in the graph."""
        return self.target if self.forward else self.source

    def to_dict(self) -> dict[str, Any]:
        """``{"type", "source", "target", "forward"}``."""
        return {
            "type": self.rel_type,
            "source": self.source.to_dict(),
            "target": self.target.to_dict(),
            "forward": self.forward,
        }


@dataclass(frozen=True)
class GraphPath:
    """A short typed path through the graph, e.g. from a user's history to a product.

    Attributes:
        steps: the relationships in walk order; ``steps[i].target == steps[i + 1].source``.
        weight: how strongly the path supports the link (see :mod:`kg.query.scoring`).
        kind: ``"co_interaction"``, ``"co_interaction_2hop"``, ``"brand"`` or ``"category"``.
    """

    steps: tuple[PathStep, ...]
    weight: float
    kind: str

    def __post_init__(self) -> None:
        for a, b in zip(self.steps, self.steps[1:], strict=False):
            if a.target is not b.source and a.target != b.source:
                raise ValueError(f"GraphPath: step {a} does not lead to step {b}")

    @property
    def nodes(self) -> tuple[PathNode, ...]:
        """The nodes in walk order (one more than the steps)."""
        if not self.steps:
            return ()
        return (self.steps[0].source, *(s.target for s in self.steps))

    def __len__(self) -> int:
        return len(self.steps)

    def __str__(self) -> str:
        if not self.steps:
            return ""
        parts = [str(self.steps[0].source)]
        for s in self.steps:
            rel = f"-[:{s.rel_type}]->" if s.forward else f"<-[:{s.rel_type}]-"
            parts.append(f"{rel}{s.target}")
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "weight", "text", "steps"}``; ``text`` is the Cypher-like pattern."""
        return {
            "kind": self.kind,
            "weight": self.weight,
            "text": str(self),
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass(frozen=True)
class Recommendation:
    """One ranked product.

    Attributes:
        product_id: the product.
        score: the graph-aware score (higher is better; see :mod:`kg.query.scoring`).
        rank: 1-based position in the result.
        reason: the largest score term in words, e.g. ``"often bought with p12"``.
        title: the product's title.
        category_id: its leaf category, or ``None``.
        brand_id: its brand, or ``None``.
        path: the graph path linking it to the query (user history or product), when asked for.
        terms: the weighted score terms that add up to ``score``, by name.
    """

    product_id: str
    score: float
    rank: int
    reason: str
    title: str | None = None
    category_id: str | None = None
    brand_id: str | None = None
    path: GraphPath | None = None
    terms: Mapping[str, float] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (``path`` as :meth:`GraphPath.to_dict` or ``None``)."""
        return {
            "product_id": self.product_id,
            "score": self.score,
            "rank": self.rank,
            "reason": self.reason,
            "title": self.title,
            "category_id": self.category_id,
            "brand_id": self.brand_id,
            "path": None if self.path is None else self.path.to_dict(),
            "terms": dict(self.terms),
        }
