"""Numpy indexes of the graph that the query layer reads on every call.

:func:`build_index` turns :class:`~ingest.tables.GraphTables` (and the model's product order)
into flat arrays once, at load: each product's leaf category and brand, each category's path
from the root, and each user's history in ``order``. Queries then gather from these arrays and
never loop over products in Python.

Sentinels: a product without a category has leaf ``n_categories`` (a row of ``-1`` in
:attr:`GraphIndex.cat_path`, depth 0), a product without a brand has brand ``n_brands``; arrays
indexed by category or brand carry one extra trailing entry for them, so gathers need no masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.tables import GraphTables

__all__ = ["GraphIndex", "build_index"]


@dataclass(frozen=True, eq=False)
class GraphIndex:
    """The catalogue, the category tree and the histories as arrays (see module docstring).

    Attributes:
        product_ids: product id of each product index (the model's order).
        titles: title of each product (``None`` where missing).
        category_ids: sorted category ids; ``category_names`` their names.
        cat_path: ``(C + 1, D)`` int32, row ``c`` = the categories from the root (column 0)
            down to ``c``, ``-1`` below ``c``'s depth; row ``C`` is all ``-1``.
        cat_depth: ``(C + 1,)`` int32, depth of each category (root 1), 0 for the sentinel.
        leaf: ``(P,)`` int32 leaf category of each product (``C`` when it has none). A product
            in several categories keeps its deepest one (then the smallest id).
        brand_ids: sorted brand ids; ``brand_names`` their names.
        brand: ``(P,)`` int32 brand of each product (``B`` when none; the smallest id of several).
        user_ids: sorted user ids.
        hist_indptr: ``(U + 1,)`` int64; user ``u``'s history is
            ``hist_items[hist_indptr[u]:hist_indptr[u + 1]]``, oldest first (by ``order``).
        hist_items: int32 product indices of all histories.
    """

    product_ids: list[str]
    titles: list[str | None]
    category_ids: list[str]
    category_names: list[str | None]
    cat_path: np.ndarray
    cat_depth: np.ndarray
    leaf: np.ndarray
    brand_ids: list[str]
    brand_names: list[str | None]
    brand: np.ndarray
    user_ids: list[str]
    hist_indptr: np.ndarray
    hist_items: np.ndarray

    @property
    def n_products(self) -> int:
        """Number of products ``P``."""
        return len(self.product_ids)

    @property
    def n_categories(self) -> int:
        """Number of categories ``C`` (the sentinel not counted)."""
        return len(self.category_ids)

    @property
    def n_brands(self) -> int:
        """Number of brands ``B`` (the sentinel not counted)."""
        return len(self.brand_ids)

    @property
    def max_depth(self) -> int:
        """Depth ``D`` of the deepest category (0 without categories)."""
        return int(self.cat_path.shape[1])

    @cached_property
    def branching_level(self) -> int:
        """The shallowest tree level with at least two categories (1 when none has): a
        catalogue under one root category (``Industrial & Scientific > ...``) branches at 2."""
        per_level = np.bincount(self.cat_depth[: self.n_categories], minlength=self.max_depth + 1)
        wide = np.flatnonzero(per_level[1:] >= 2)
        return int(wide[0]) + 1 if wide.size else 1

    @cached_property
    def product_index(self) -> dict[str, int]:
        """Product id -> product index."""
        return {p: i for i, p in enumerate(self.product_ids)}

    @cached_property
    def category_index(self) -> dict[str, int]:
        """Category id -> category index."""
        return {c: i for i, c in enumerate(self.category_ids)}

    @cached_property
    def brand_index(self) -> dict[str, int]:
        """Brand id -> brand index."""
        return {b: i for i, b in enumerate(self.brand_ids)}

    @cached_property
    def user_index(self) -> dict[str, int]:
        """User id -> user index."""
        return {u: i for i, u in enumerate(self.user_ids)}

    @cached_property
    def cat_levels(self) -> np.ndarray:
        """``(D, C + 1)`` int32: :attr:`cat_path` transposed, one contiguous row per depth."""
        return np.ascontiguousarray(self.cat_path.T)

    @cached_property
    def _brand_members(self) -> tuple[np.ndarray, np.ndarray]:
        return _groups(self.brand, self.n_brands + 1)

    @cached_property
    def _leaf_members(self) -> tuple[np.ndarray, np.ndarray]:
        return _groups(self.leaf, self.n_categories + 1)

    def products_of_brand(self, brand: int) -> np.ndarray:
        """Product indices of brand index ``brand`` (ascending, int64)."""
        indptr, order = self._brand_members
        return order[indptr[brand] : indptr[brand + 1]]

    def products_of_leaf(self, category: int) -> np.ndarray:
        """Product indices whose (deepest) category is ``category`` (ascending, int64)."""
        indptr, order = self._leaf_members
        return order[indptr[category] : indptr[category + 1]]

    def history(self, user: int) -> np.ndarray:
        """Product indices of user index ``user``'s history, oldest first (int32)."""
        return self.hist_items[self.hist_indptr[user] : self.hist_indptr[user + 1]]

    def ancestor_at(self, level: int) -> np.ndarray:
        """``(C + 1,)`` int32: each category's ancestor at ``level`` (root = 1), or ``-1``."""
        if not 1 <= level <= self.max_depth:
            raise ValueError(f"level must be between 1 and {self.max_depth}, got {level}")
        return self.cat_path[:, level - 1]

    def under(self, categories: Sequence[int]) -> np.ndarray:
        """``(C + 1,)`` bool: categories equal to or below any of ``categories``."""
        wanted = np.asarray(categories, np.int32)
        return np.isin(self.cat_path, wanted).any(axis=1)


def build_index(tables: GraphTables, product_ids: Sequence[str]) -> GraphIndex:
    """Index ``tables`` with products in the order of ``product_ids``.

    Args:
        tables: the graph.
        product_ids: the model's product ids (sorted).

    Returns:
        the index.

    Raises:
        ValueError: the tables' products are not exactly ``product_ids``, or the category
            tree has a cycle.
    """
    table_ids = sorted(tables.products.column("id").to_pylist())
    if table_ids != list(product_ids):
        missing = sorted(set(product_ids) - set(table_ids))[:3]
        extra = sorted(set(table_ids) - set(product_ids))[:3]
        raise ValueError(
            f"the tables hold {len(table_ids):,} products, the model {len(product_ids):,}: "
            f"they must be the same (model-only e.g. {missing}, tables-only e.g. {extra}); "
            "retrain on these tables or load the tables the model was trained on"
        )
    products = tables.products.sort_by("id")
    pids = pa.array(list(product_ids), pa.string())
    categories = tables.categories.sort_by("id")
    cids = categories.column("id").combine_chunks()
    brands = tables.brands.sort_by("id")
    bids = brands.column("id").combine_chunks()

    parent = _lookup(tables.subcategory_of.column("parent_id"), cids)
    child = _lookup(tables.subcategory_of.column("child_id"), cids)
    parents = np.full(len(cids), -1, np.int64)
    parents[child] = parent
    cat_path, cat_depth = _category_paths(parents)

    leaf = _first_per_product(
        _lookup(tables.in_category.column("product_id"), pids),
        _lookup(tables.in_category.column("category_id"), cids),
        len(pids),
        sentinel=len(cids),
        prefer=-cat_depth,
    )
    brand = _first_per_product(
        _lookup(tables.made_by.column("product_id"), pids),
        _lookup(tables.made_by.column("brand_id"), bids),
        len(pids),
        sentinel=len(bids),
    )
    users = sorted(set(tables.users.column("id").to_pylist()))
    inter = tables.interactions
    user_of = _lookup(inter.column("user_id"), pa.array(users, pa.string()))
    order = np.lexsort((inter.column("order").to_numpy(), user_of))
    counts = np.bincount(user_of, minlength=len(users))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    items = _lookup(inter.column("product_id"), pids)[order].astype(np.int32)
    return GraphIndex(
        product_ids=list(product_ids),
        titles=products.column("title").to_pylist(),
        category_ids=cids.to_pylist(),
        category_names=categories.column("name").to_pylist(),
        cat_path=cat_path,
        cat_depth=cat_depth,
        leaf=leaf,
        brand_ids=bids.to_pylist(),
        brand_names=brands.column("name").to_pylist(),
        brand=brand,
        user_ids=users,
        hist_indptr=indptr,
        hist_items=items,
    )


def _groups(key: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, order)``: the positions with ``key == g`` are ``order[indptr[g]:indptr[g+1]]``,
    ascending."""
    order = np.argsort(key, kind="stable").astype(np.int64)
    counts = np.bincount(key, minlength=n)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), order


def _lookup(keys: pa.ChunkedArray | pa.Array, sorted_ids: pa.Array) -> np.ndarray:
    """Positions of ``keys`` in ``sorted_ids`` (int64); every key must be present."""
    pos = pc.index_in(keys, value_set=sorted_ids)
    if pos.null_count:
        first = pc.index(pc.is_null(pos), True).as_py()
        raise ValueError(f"unknown id {keys[first].as_py()!r} in an edge table")
    return np.asarray(pos.to_numpy(zero_copy_only=False), np.int64)


def _category_paths(parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Root-to-category paths ``(C + 1, D)`` and depths ``(C + 1,)`` from parent pointers."""
    n = parents.size
    ext = np.append(parents, -1)  # the parent of "none" (-1 -> index n) is none
    chain = [np.arange(n)]
    while True:
        up = ext[chain[-1]]
        if (up < 0).all():
            break
        if len(chain) > n:
            raise ValueError("the category tree (subcategory_of) has a cycle")
        chain.append(up)
    stack = np.stack(chain) if n else np.zeros((0, 0), np.int64)  # (L, C): k-th ancestor
    depth = (stack >= 0).sum(axis=0).astype(np.int32)
    width = int(depth.max()) if n else 0
    path = np.full((n + 1, width), -1, np.int32)
    for k in range(stack.shape[0]):
        rows = np.flatnonzero(depth > k)
        path[rows, depth[rows] - 1 - k] = stack[k, rows]
    return path, np.append(depth, 0).astype(np.int32)


def _first_per_product(
    products: np.ndarray,
    values: np.ndarray,
    n: int,
    *,
    sentinel: int,
    prefer: np.ndarray | None = None,
) -> np.ndarray:
    """``(n,)`` int32: per product the value ranked first by ``prefer[value]`` then value."""
    out = np.full(n, sentinel, np.int32)
    if products.size == 0:
        return out
    rank = prefer[values] if prefer is not None else np.zeros_like(values)
    order = np.lexsort((values, rank, products))
    first = np.unique(products[order], return_index=True)[1]
    out[products[order][first]] = values[order][first]
    return out
