"""A seeded synthetic shop with planted structure, for tests, demos and benchmarks.

:func:`generate_shop` builds a category tree with readable names, brands that specialise in one
or two departments, products whose titles and descriptions use their category's vocabulary, and
users whose chronological histories follow planted tastes: favourite leaf categories, a home
department and a fixed, seeded "complement" map that sends a purchase in one leaf to a leaf of
another department (say, from "Pipette Tips" to "Lab Gloves"). :func:`generate_shop_with_truth` also
returns that plan as a :class:`PlantedTruth`, so later stages can check that learning finds it.

Everything is vectorised with numpy and pyarrow: the only Python loops run over the tree, the
brands, the departments and the positions of a history, never over products or interactions.
The same :class:`SyntheticConfig` always gives byte-identical tables.

The catalogue (tree, brands, products, text) is built in :mod:`ingest.sources.synthetic_catalog`,
users and histories in :mod:`ingest.sources.synthetic_users`, and the seeded random streams live
in :mod:`ingest.sources.synthetic_common`; this module holds the configuration and the entry
points, and is the one to import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.sources.synthetic_catalog import (
    _Brands,
    _build_tree,
    _Catalog,
    _make_brands,
    _make_catalog,
    _make_text,
    _Tree,
)
from ingest.sources.synthetic_common import (
    _BRANDS,
    _COVERAGE,
    _PRODUCTS,
    _TEXT,
    _TREE,
    _USERS,
    _rng,
)
from ingest.sources.synthetic_users import _cover_products, _make_histories, _make_users, _Users
from ingest.tables import GraphTables

__all__ = [
    "PRESETS",
    "STREAMED_PRESETS",
    "PlantedTruth",
    "SyntheticConfig",
    "draw_plan",
    "generate_shop",
    "generate_shop_with_truth",
    "prefixed_ids",
    "tree_tables",
]


@dataclass(frozen=True)
class SyntheticConfig:
    """Size, shape and planted behaviour of a synthetic shop; the tree depth is ``len(branching)``.

    Attributes:
        n_products: products; at least the number of leaf categories.
        n_users: users.
        n_interactions: interaction rows in all; at least ``min_history * n_users``.
        branching: children per category at each level, departments first. Below the top
            level, an entry of 3 or more varies by one either way from category to category, so
            the tree is not perfectly regular. Names come from the built-in vocabulary and are
            told apart by qualifiers ("Standard Wood Screws") where it runs out.
        n_brands: brands; at least the number of departments.
        seed: seed of every random choice.
        min_history: fewest interactions of a user.
        max_history: most interactions of a user (also capped at half the products).
        p_complement: chance that an item comes from the complement of the previous item's leaf.
        p_favourite: chance that an item comes from one of the user's favourite leaves.
        p_department: chance that an item comes from any leaf of the user's home department.
            The rest come from any leaf, weighted by its number of products.
        p_second_favourite: chance that a user has a second favourite leaf.
        p_view: share of interactions of kind ``"view"``; the others are ``"purchase"``.
        popularity_exponent: Zipf exponent of product popularity within a leaf.
        brand_exponent: Zipf exponent of brand sizes.
        start_ts: earliest possible timestamp, Unix seconds (default 2020-01-01 UTC).
        mean_gap_s: mean seconds between a user's consecutive interactions.
        cover_all_products: move surplus interactions of popular products onto untouched
            products of the same leaf, so that every product is interacted with at least once.
    """

    n_products: int = 2000
    n_users: int = 1000
    n_interactions: int = 20_000
    branching: tuple[int, ...] = (6, 4, 4)
    n_brands: int = 60
    seed: int = 0
    min_history: int = 5
    max_history: int = 200
    p_complement: float = 0.3
    p_favourite: float = 0.35
    p_department: float = 0.2
    p_second_favourite: float = 0.5
    p_view: float = 0.1
    popularity_exponent: float = 1.0
    brand_exponent: float = 1.0
    start_ts: int = 1_577_836_800
    mean_gap_s: int = 3 * 86_400
    cover_all_products: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "branching", tuple(int(b) for b in self.branching))
        checks = [
            (self.n_products >= 1 and self.n_users >= 1, "n_products and n_users must be >= 1"),
            (
                max(self.n_products, self.n_users) <= 10**8 and self.n_interactions <= 10**9,
                "at most 100,000,000 products and users and 1,000,000,000 interactions",
            ),
            (len(self.branching) >= 2, "branching needs at least 2 levels"),
            (all(b >= 1 for b in self.branching), "branching entries must be >= 1"),
            (self.branching[0] >= 2, "need at least 2 departments (complements cross them)"),
            (self.n_brands >= self.branching[0], "n_brands must be >= number of departments"),
            (1 <= self.min_history <= self.max_history, "need 1 <= min_history <= max_history"),
            (2 * self.min_history <= self.n_products, "n_products must be >= 2 * min_history"),
            (
                self.n_interactions >= self.min_history * self.n_users,
                f"n_interactions must be >= min_history * n_users "
                f"= {self.min_history * self.n_users}",
            ),
            (
                self.n_interactions <= self.n_users * self._history_cap,
                f"n_interactions must be <= n_users * {self._history_cap} (the history cap)",
            ),
            (
                min(self.p_complement, self.p_favourite, self.p_department) >= 0
                and self.p_complement + self.p_favourite + self.p_department <= 1,
                "p_complement, p_favourite, p_department must be >= 0 and sum to <= 1",
            ),
            (0 <= self.p_view <= 1 and 0 <= self.p_second_favourite <= 1, "bad probability"),
            (self.mean_gap_s >= 1, "mean_gap_s must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SyntheticConfig: {message}")

    @property
    def depth(self) -> int:
        """Number of category levels; leaves are at this level."""
        return len(self.branching)

    @property
    def _history_cap(self) -> int:
        return min(self.max_history, self.n_products // 2)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SyntheticConfig:
        """A named configuration (see :data:`PRESETS`), with fields overridden by keyword.

        Args:
            name: ``"tiny"`` (unit tests), ``"default"``, ``"demo"``, ``"bench"``, ``"large"`` or
                ``"xl"``.
            **overrides: fields to change, e.g. ``seed=3``.

        Returns:
            The configuration.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets are {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


#: Named configurations. ``bench``, ``large`` and ``xl`` are for timing and scale tests; ``xl``
#: is the ``large`` shop, made by :func:`ingest.sources.synthetic_stream.write_shop` (streamed
#: to a tables folder in bounded memory) rather than in memory.
PRESETS: dict[str, SyntheticConfig] = {
    "tiny": SyntheticConfig(300, 200, 3_000, (4, 3, 3), n_brands=12, max_history=60),
    "default": SyntheticConfig(),
    "demo": SyntheticConfig(5_000, 3_000, 60_000, (8, 5, 4), n_brands=120),
    "bench": SyntheticConfig(100_000, 100_000, 1_000_000, (10, 6, 5), n_brands=800),
    "large": SyntheticConfig(1_000_000, 1_000_000, 10_000_000, (10, 6, 5, 3), n_brands=4000),
    "xl": SyntheticConfig(1_000_000, 1_000_000, 10_000_000, (10, 6, 5, 3), n_brands=4000),
}
#: Presets generated streamed (:mod:`ingest.sources.synthetic_stream`).
STREAMED_PRESETS: frozenset[str] = frozenset({"xl"})


@dataclass(frozen=True, eq=False)
class PlantedTruth:
    """The plan behind a synthetic shop. Arrays are numpy ``int64``.

    User ``i`` is ``"u{i}"`` and product ``j`` is ``"p{j}"``, which are also their rows in the
    tables; leaves, departments and brands are numbered as in the id tuples.

    Attributes:
        leaf_ids: category id of each leaf, shape ``(n_leaves,)``; leaves of a department are
            consecutive.
        department_ids: category id of each department (top-level category).
        brand_ids: brand id of each brand.
        leaf_department: department of each leaf, shape ``(n_leaves,)``.
        complement: leaf that tends to follow each leaf, always in another department,
            shape ``(n_leaves,)``.
        user_leaves: favourite leaves of each user, shape ``(n_users, 2)``; ``-1`` where a user
            has only one.
        user_department: home department of each user (that of the first favourite leaf),
            shape ``(n_users,)``.
        product_leaf: leaf of each product, shape ``(n_products,)``.
        product_brand: brand of each product, shape ``(n_products,)``.
        brand_departments: departments each brand makes products for, shape ``(n_brands, 2)``;
            ``-1`` where a brand has only one.
    """

    leaf_ids: tuple[str, ...]
    department_ids: tuple[str, ...]
    brand_ids: tuple[str, ...]
    leaf_department: np.ndarray
    complement: np.ndarray
    user_leaves: np.ndarray
    user_department: np.ndarray
    product_leaf: np.ndarray
    product_brand: np.ndarray
    brand_departments: np.ndarray

    def complement_ids(self) -> dict[str, str]:
        """The complement map as category ids: ``{leaf id: complement leaf id}``."""
        return {self.leaf_ids[i]: self.leaf_ids[j] for i, j in enumerate(self.complement)}


def generate_shop(
    config: SyntheticConfig | None = None, *, show_progress: bool = True
) -> GraphTables:
    """Generate a synthetic shop (see :func:`generate_shop_with_truth`).

    Args:
        config: sizes and behaviour; ``SyntheticConfig()`` when omitted.
        show_progress: show a tqdm bar while histories are generated.

    Returns:
        Validated tables; ``meta`` is ``{"source": "synthetic", "config": asdict(config)}``.
    """
    return generate_shop_with_truth(config, show_progress=show_progress)[0]


def generate_shop_with_truth(
    config: SyntheticConfig | None = None, *, show_progress: bool = True
) -> tuple[GraphTables, PlantedTruth]:
    """Generate a synthetic shop together with the planted structure it was drawn from.

    Args:
        config: sizes and behaviour; ``SyntheticConfig()`` when omitted.
        show_progress: show a tqdm bar while histories are generated.

    Returns:
        ``(tables, truth)``: validated tables with no entities or triples, and the plan.

    Raises:
        ValueError: when the tree has more leaves than there are products.
    """
    cfg = config or SyntheticConfig()
    tree, brands, catalog, users = draw_plan(cfg)
    history = _make_histories(cfg, tree, catalog, users, show_progress=show_progress)
    if cfg.cover_all_products:
        _cover_products(history.product, catalog.leaf, _rng(cfg, _COVERAGE))

    user_ids = prefixed_ids("u", cfg.n_users)
    product_ids = prefixed_ids("p", cfg.n_products)
    leaf_ids = pa.array(tree.leaf_ids, pa.string())
    brand_ids = pa.array(brands.names, pa.string())
    text = _make_text(tree, brands, catalog, _rng(cfg, _TEXT))
    n_rows = history.product.size
    tables = GraphTables(
        users=pa.table({"id": user_ids}),
        products=pa.table(
            {"id": product_ids, "title": text[0], "description": text[1], "price": catalog.price}
        ),
        categories=pa.table(tree_tables(tree)[0]),
        brands=pa.table({"id": brand_ids, "name": brand_ids}),
        interactions=pa.table(
            {
                "user_id": user_ids.take(pa.array(history.user)),
                "product_id": product_ids.take(pa.array(history.product)),
                "order": history.order,
                "ts": history.ts,
                "kind": pa.array(["purchase", "view"]).take(
                    pa.array(history.is_view.view(np.int8))
                ),
                "weight": np.ones(n_rows, np.float32),
            }
        ),
        in_category=pa.table(
            {"product_id": product_ids, "category_id": leaf_ids.take(catalog.leaf)}
        ),
        subcategory_of=pa.table(tree_tables(tree)[1]),
        made_by=pa.table({"product_id": product_ids, "brand_id": brand_ids.take(catalog.brand)}),
        meta={"source": "synthetic", "config": asdict(cfg)},
    )
    truth = PlantedTruth(
        leaf_ids=tuple(tree.leaf_ids),
        department_ids=tuple(tree.ids[i] for i in tree.department_nodes),
        brand_ids=tuple(brands.names),
        leaf_department=tree.leaf_department,
        complement=tree.complement,
        user_leaves=users.leaves,
        user_department=users.department,
        product_leaf=catalog.leaf,
        product_brand=catalog.brand,
        brand_departments=brands.departments,
    )
    return tables.validate(), truth


def draw_plan(cfg: SyntheticConfig) -> tuple[_Tree, _Brands, _Catalog, _Users]:
    """The category tree, brands, catalogue and users of a shop, each from its own stream.

    Raises:
        ValueError: when the tree has more leaves than there are products.
    """
    tree = _build_tree(cfg.branching, _rng(cfg, _TREE))
    if tree.n_leaves > cfg.n_products:
        raise ValueError(
            f"the category tree has {tree.n_leaves} leaves but n_products is {cfg.n_products}; "
            "use fewer branches or more products"
        )
    brands = _make_brands(cfg, tree.n_departments, _rng(cfg, _BRANDS))
    catalog = _make_catalog(cfg, tree, brands, _rng(cfg, _PRODUCTS))
    users = _make_users(cfg, tree, _rng(cfg, _USERS))
    return tree, brands, catalog, users


def prefixed_ids(prefix: str, stop: int, start: int = 0) -> pa.Array:
    """Ids ``"<prefix><i>"`` for ``i`` from ``start`` to ``stop - 1`` (``"u0"``, ``"p17"``)."""
    numbers = pa.array(np.arange(start, stop)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, numbers, "")


def tree_tables(tree: _Tree) -> tuple[dict[str, pa.Array], dict[str, pa.Array]]:
    """The ``categories`` and ``subcategory_of`` columns of a category tree."""
    categories = {
        "id": pa.array(tree.ids, pa.string()),
        "name": pa.array(tree.names, pa.string()),
        "level": pa.array(tree.levels, pa.int32()),
    }
    parents = {
        "child_id": pa.array([tree.ids[i] for i in tree.children], pa.string()),
        "parent_id": pa.array([tree.ids[tree.parents[i]] for i in tree.children], pa.string()),
    }
    return categories, parents
