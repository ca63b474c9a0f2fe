"""A category hierarchy built from root-to-leaf name paths (shared by the sources)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

__all__ = ["PATH_JOINER", "CategoryTree"]

#: Separator of names inside a category node id: ids are full paths, "A > B > C".
PATH_JOINER = " > "


class CategoryTree:
    """Category nodes built from root-to-leaf name paths; a node's id is its joined path."""

    def __init__(self) -> None:
        self._nodes: dict[str, tuple[str, int]] = {}
        self._parent: dict[str, str] = {}

    def add(self, names: Sequence[str]) -> str | None:
        """Add every prefix of ``names`` as a node, each a child of the one before.

        Args:
            names: category names from the root down, already cleaned and non-empty.

        Returns:
            The leaf's id, or ``None`` when ``names`` is empty.
        """
        parent: str | None = None
        for depth in range(1, len(names) + 1):
            node = PATH_JOINER.join(names[:depth])
            if node not in self._nodes:
                self._nodes[node] = (names[depth - 1], depth)
                if parent is not None:
                    self._parent[node] = parent
            parent = node
        return parent

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def categories(self) -> pa.Table:
        """The ``categories`` table (id, name, level)."""
        return pa.Table.from_pydict(
            {
                "id": list(self._nodes),
                "name": [name for name, _ in self._nodes.values()],
                "level": pa.array([level for _, level in self._nodes.values()], pa.int32()),
            }
        )

    def subcategory_of(self) -> pa.Table:
        """The ``subcategory_of`` table (child_id, parent_id)."""
        return pa.Table.from_pydict(
            {
                "child_id": pa.array(list(self._parent), pa.string()),
                "parent_id": pa.array(list(self._parent.values()), pa.string()),
            }
        )
