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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from ingest.sources import synthetic_vocab as vocab
from ingest.tables import GraphTables

__all__ = [
    "PRESETS",
    "PlantedTruth",
    "SyntheticConfig",
    "generate_shop",
    "generate_shop_with_truth",
]

#: Users whose histories are generated together. Fixed, so output never depends on memory size.
_CHUNK_USERS = 1 << 16
#: One independent random stream per part, so e.g. more interactions leave product text alone.
_TREE, _BRANDS, _PRODUCTS, _TEXT, _USERS, _COVERAGE, _CHUNKS = range(7)
#: Probability that a leaf's complement lies in its department's partner department.
_P_PARTNER = 0.75


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
            name: ``"tiny"`` (unit tests), ``"default"``, ``"demo"``, ``"bench"`` or ``"large"``.
            **overrides: fields to change, e.g. ``seed=3``.

        Returns:
            The configuration.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets are {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


#: Named configurations. ``bench`` and ``large`` are for timing and scale tests.
PRESETS: dict[str, SyntheticConfig] = {
    "tiny": SyntheticConfig(300, 200, 3_000, (4, 3, 3), n_brands=12, max_history=60),
    "default": SyntheticConfig(),
    "demo": SyntheticConfig(5_000, 3_000, 60_000, (8, 5, 4), n_brands=120),
    "bench": SyntheticConfig(100_000, 100_000, 1_000_000, (10, 6, 5), n_brands=800),
    "large": SyntheticConfig(1_000_000, 1_000_000, 10_000_000, (10, 6, 5, 3), n_brands=4000),
}


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
    tree = _build_tree(cfg.branching, _rng(cfg, _TREE))
    if tree.n_leaves > cfg.n_products:
        raise ValueError(
            f"the category tree has {tree.n_leaves} leaves but n_products is {cfg.n_products}; "
            "use fewer branches or more products"
        )
    brands = _make_brands(cfg, tree.n_departments, _rng(cfg, _BRANDS))
    catalog = _make_catalog(cfg, tree, brands, _rng(cfg, _PRODUCTS))
    users = _make_users(cfg, tree, _rng(cfg, _USERS))
    history = _make_histories(cfg, tree, catalog, users, show_progress=show_progress)
    if cfg.cover_all_products:
        _cover_products(history.product, catalog.leaf, _rng(cfg, _COVERAGE))

    user_ids = _prefixed_ids("u", cfg.n_users)
    product_ids = _prefixed_ids("p", cfg.n_products)
    leaf_ids = pa.array(tree.leaf_ids, pa.string())
    brand_ids = pa.array(brands.names, pa.string())
    text = _make_text(tree, brands, catalog, _rng(cfg, _TEXT))
    n_rows = history.product.size
    tables = GraphTables(
        users=pa.table({"id": user_ids}),
        products=pa.table(
            {"id": product_ids, "title": text[0], "description": text[1], "price": catalog.price}
        ),
        categories=pa.table(
            {
                "id": pa.array(tree.ids, pa.string()),
                "name": pa.array(tree.names, pa.string()),
                "level": pa.array(tree.levels, pa.int32()),
            }
        ),
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
        subcategory_of=pa.table(
            {
                "child_id": pa.array([tree.ids[i] for i in tree.children], pa.string()),
                "parent_id": pa.array(
                    [tree.ids[tree.parents[i]] for i in tree.children], pa.string()
                ),
            }
        ),
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


def _rng(cfg: SyntheticConfig, stream: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, stream, *more])


def _prefixed_ids(prefix: str, n: int) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pa.array(np.arange(n)).cast(pa.string()), "")


# ---------------------------------------------------------------------------------- tree
_SUBCATEGORIES = [sub for dept in vocab.DEPARTMENTS for sub in dept.subcategories]
_SUB_INDEX = {
    (d, s): i
    for i, (d, s) in enumerate(
        (d, s) for d, dept in enumerate(vocab.DEPARTMENTS) for s in range(len(dept.subcategories))
    )
}


@dataclass
class _Tree:
    ids: list[str]
    names: list[str]
    levels: list[int]
    parents: list[int]
    department_nodes: list[int]
    department_vocab: np.ndarray  # vocabulary department of each department
    leaf_ids: list[str]
    leaf_names: list[str]
    leaf_sub: np.ndarray  # vocabulary subcategory of each leaf
    leaf_department: np.ndarray
    complement: np.ndarray

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_ids)

    @property
    def n_departments(self) -> int:
        return len(self.department_nodes)

    @property
    def children(self) -> list[int]:
        return [i for i, p in enumerate(self.parents) if p >= 0]

    @property
    def dept_leaf_count(self) -> np.ndarray:
        return np.bincount(self.leaf_department, minlength=self.n_departments)

    @property
    def dept_leaf_start(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.dept_leaf_count)[:-1]])


def _sibling_names(base: list[str], n: int) -> list[str]:
    """``n`` distinct names: ``base`` in order, then qualified ("Compact Wood Screws")."""
    qualifiers = vocab.QUALIFIERS
    names = []
    for i in range(n):
        name, rep = base[i % len(base)], i // len(base)
        if rep:
            name = f"{qualifiers[(rep - 1) % len(qualifiers)]} {name}"
            if rep > len(qualifiers):
                name += f" {(rep - 1) // len(qualifiers) + 1}"
        names.append(name)
    return names


def _build_tree(branching: tuple[int, ...], rng: np.random.Generator) -> _Tree:
    ids: list[str] = []
    names: list[str] = []
    levels: list[int] = []
    parents: list[int] = []
    leaves: list[tuple[int, int, int]] = []  # (node, vocabulary subcategory, department)
    depth = len(branching)

    def grow(node: int, dept: int, dept_vocab: int, sub: int) -> None:
        level = levels[node] + 1
        if level > depth:
            leaves.append((node, sub, dept))
            return
        n = branching[level - 1]
        if n >= 3:
            n += int(rng.integers(-1, 2))
        if level == 2:
            base = [s.name for s in vocab.DEPARTMENTS[dept_vocab].subcategories]
        elif level == 3:
            base = list(_SUBCATEGORIES[sub].leaves)
        else:
            base = [f"{q} {names[node]}" for q in vocab.QUALIFIERS]
        for i, name in enumerate(_sibling_names(base, n)):
            child = len(ids)
            ids.append(f"{ids[node]} > {name}")
            names.append(name)
            levels.append(level)
            parents.append(node)
            child_sub = _SUB_INDEX[(dept_vocab, i % len(base))] if level == 2 else sub
            grow(child, dept, dept_vocab, child_sub)

    department_nodes = []
    dept_names = _sibling_names([d.name for d in vocab.DEPARTMENTS], branching[0])
    for d, name in enumerate(dept_names):
        department_nodes.append(len(ids))
        ids.append(name)
        names.append(name)
        levels.append(1)
        parents.append(-1)
        grow(department_nodes[-1], d, d % len(vocab.DEPARTMENTS), -1)

    leaf_department = np.array([dept for _, _, dept in leaves], np.int64)
    tree = _Tree(
        ids=ids,
        names=names,
        levels=levels,
        parents=parents,
        department_nodes=department_nodes,
        department_vocab=np.arange(len(department_nodes)) % len(vocab.DEPARTMENTS),
        leaf_ids=[ids[node] for node, _, _ in leaves],
        leaf_names=[names[node] for node, _, _ in leaves],
        leaf_sub=np.array([sub for _, sub, _ in leaves], np.int64),
        leaf_department=leaf_department,
        complement=np.empty(0, np.int64),
    )
    tree.complement = _complements(tree, rng)
    return tree


def _complements(tree: _Tree, rng: np.random.Generator) -> np.ndarray:
    """Each leaf's complement: a leaf of another department, mostly the partner department."""
    n_dept, dept = tree.n_departments, tree.leaf_department
    partner = (np.arange(n_dept) + 1 + rng.integers(n_dept - 1, size=n_dept)) % n_dept
    other = (dept + 1 + rng.integers(n_dept - 1, size=dept.size)) % n_dept
    target = np.where(rng.random(dept.size) < _P_PARTNER, partner[dept], other)
    return tree.dept_leaf_start[target] + rng.integers(tree.dept_leaf_count[target])


# -------------------------------------------------------------------------------- brands
@dataclass
class _Brands:
    names: list[str]
    departments: np.ndarray  # (n_brands, 2), -1 padded
    weight: np.ndarray  # Zipf size


def _brand_names(n: int, rng: np.random.Generator) -> list[str]:
    onsets, middles, codas = vocab.BRAND_ONSETS, vocab.BRAND_MIDDLES, vocab.BRAND_CODAS
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        m = 2 * (n - len(names)) + 16
        a, b, c, e = (rng.integers(len(x), size=m) for x in (onsets, middles, codas, onsets))
        long = rng.random(m) < 0.3
        for i in range(m):
            extra = onsets[e[i]].lower() if long[i] else ""
            name = onsets[a[i]] + middles[b[i]] + extra + codas[c[i]]
            if name not in seen:
                seen.add(name)
                names.append(name)
                if len(names) == n:
                    break
    return names


def _make_brands(cfg: SyntheticConfig, n_dept: int, rng: np.random.Generator) -> _Brands:
    n = cfg.n_brands
    names = _brand_names(n, rng)
    primary = np.concatenate([rng.permutation(n_dept), rng.integers(n_dept, size=n - n_dept)])
    primary = primary[rng.permutation(n)]
    second = (primary + 1 + rng.integers(n_dept - 1, size=n)) % n_dept
    second = np.where(rng.random(n) < 0.4, second, -1)
    weight = (rng.permutation(n) + 1.0) ** -cfg.brand_exponent
    return _Brands(names, np.stack([primary, second], axis=1), weight)


# ------------------------------------------------------------------------------ products
@dataclass
class _Catalog:
    leaf: np.ndarray  # leaf of each product
    brand: np.ndarray
    price: np.ndarray
    grouped: np.ndarray  # products grouped by leaf, most popular first within a leaf
    start: np.ndarray  # (n_leaves + 1,) where each leaf's products start in ``grouped``
    cum: np.ndarray  # cumulative Zipf weight along ``grouped``
    base: np.ndarray  # cumulative weight before each leaf
    total: np.ndarray  # weight of each leaf

    def zipf(self, leaf: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Products of ``leaf`` drawn by popularity, from uniform numbers ``u`` in [0, 1)."""
        j = np.searchsorted(self.cum, self.base[leaf] + u * self.total[leaf], side="right")
        return self.grouped[np.clip(j, self.start[leaf], self.start[leaf + 1] - 1)]

    def uniform(self, leaf: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Products of ``leaf`` drawn uniformly, from uniform numbers ``u`` in [0, 1)."""
        size = self.start[leaf + 1] - self.start[leaf]
        return self.grouped[self.start[leaf] + np.minimum((u * size).astype(np.int64), size - 1)]


def _make_catalog(
    cfg: SyntheticConfig, tree: _Tree, brands: _Brands, rng: np.random.Generator
) -> _Catalog:
    n, n_leaves = cfg.n_products, tree.n_leaves
    share = rng.lognormal(0.0, 0.5, n_leaves)
    extra = rng.choice(n_leaves, size=n - n_leaves, p=share / share.sum())
    leaf = np.concatenate([np.arange(n_leaves), extra])
    rng.shuffle(leaf)

    grouped = np.lexsort((rng.random(n), leaf))
    start = np.concatenate([[0], np.cumsum(np.bincount(leaf, minlength=n_leaves))])
    rank = np.arange(n) - start[leaf[grouped]]
    weight = (rank + 1.0) ** -cfg.popularity_exponent
    cum = np.cumsum(weight)
    base = cum[start[:-1]] - weight[start[:-1]]
    total = cum[start[1:] - 1] - base

    dept = tree.leaf_department[leaf]
    brand = np.empty(n, np.int64)
    for d in range(tree.n_departments):
        rows = np.flatnonzero(dept == d)
        makers = np.flatnonzero((brands.departments == d).any(axis=1))
        w = np.cumsum(brands.weight[makers] * np.where(brands.departments[makers, 0] == d, 1, 0.3))
        pick = np.searchsorted(w, rng.random(rows.size) * w[-1], side="right")
        brand[rows] = makers[np.minimum(pick, makers.size - 1)]

    leaf_price = np.exp(rng.normal(np.log(25.0), 0.9, n_leaves))
    price = np.maximum(np.round(leaf_price[leaf] * rng.lognormal(0.0, 0.35, n), 2), 0.49)
    return _Catalog(leaf, brand, price, grouped, start, cum, base, total)


def _capitalise(word: str) -> str:
    return word[:1].upper() + word[1:]


def _pool(lists: list[tuple[str, ...]]) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Flatten word lists into one array, with each list's start and length."""
    sizes = np.array([len(x) for x in lists], np.int64)
    flat = [w for x in lists for w in x]
    return pa.array(flat, pa.string()), np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes


def _make_text(
    tree: _Tree, brands: _Brands, catalog: _Catalog, rng: np.random.Generator
) -> tuple[pa.Array, pa.Array]:
    """Titles and 1-3 sentence descriptions built from each product's category vocabulary."""
    n_words = 4  # per leaf: three subcategory keywords and one department keyword
    words = []
    for sub, dept in zip(tree.leaf_sub, tree.department_vocab[tree.leaf_department], strict=True):
        keys = _SUBCATEGORIES[sub].keywords
        picked = [keys[i] for i in rng.choice(len(keys), n_words - 1, replace=False)]
        dept_keys = vocab.DEPARTMENTS[dept].keywords
        words += [*picked, dept_keys[rng.integers(len(dept_keys))]]
    leaf_words = pa.array(words, pa.string())
    leaf_words_cap = pa.array([_capitalise(w) for w in words], pa.string())

    depts = vocab.DEPARTMENTS
    materials = _pool([d.materials for d in depts])
    materials_cap = pa.array([_capitalise(w) for d in depts for w in d.materials], pa.string())
    sizes, uses = _pool([d.sizes for d in depts]), _pool([d.uses for d in depts])

    leaf, n = catalog.leaf, catalog.leaf.size
    dept_vocab = tree.department_vocab[tree.leaf_department[leaf]]

    def pick(
        pool: tuple[pa.Array, np.ndarray, np.ndarray], values: pa.Array | None = None
    ) -> pa.Array:
        arr, start, size = pool
        i = start[dept_vocab] + rng.integers(size[dept_vocab])
        return (values if values is not None else arr).take(i)

    def one_of(options: tuple[str, ...]) -> pa.Array:
        return pa.array(options, pa.string()).take(rng.integers(len(options), size=n))

    w1 = rng.integers(n_words, size=n)
    w2 = (w1 + 1 + rng.integers(n_words - 1, size=n)) % n_words
    w3 = (w2 + 1 + rng.integers(n_words - 1, size=n)) % n_words
    brand = pa.array(brands.names, pa.string()).take(catalog.brand)
    noun = pa.array(tree.leaf_names, pa.string()).take(leaf)
    join = pc.binary_join_element_wise
    title = join(
        brand, " ", leaf_words_cap.take(leaf * n_words + w1), " ", noun, ", ",
        pick(materials, materials_cap), ", ", pick(sizes), "",
    )  # fmt: skip
    first = join(noun, " by ", brand, ", ", one_of(vocab.LINKS), " ", pick(uses), ".", "")
    second = join(
        " ", one_of(vocab.FEATURE_OPENERS), " ", leaf_words.take(leaf * n_words + w2), ", ",
        leaf_words.take(leaf * n_words + w3), " and ", pick(materials), ".", "",
    )  # fmt: skip
    third = join(" ", one_of(vocab.CLOSERS), " ", pick(uses), ".", "")
    n_sentences = rng.integers(1, 4, size=n)
    description = join(
        first,
        pc.if_else(pa.array(n_sentences >= 2), second, ""),
        pc.if_else(pa.array(n_sentences >= 3), third, ""),
        "",
    )
    return title, description


# --------------------------------------------------------------------------------- users
@dataclass
class _Users:
    leaves: np.ndarray  # (n_users, 2) favourite leaves, -1 padded
    department: np.ndarray
    length: np.ndarray  # interactions per user


def _make_users(cfg: SyntheticConfig, tree: _Tree, rng: np.random.Generator) -> _Users:
    n, n_leaves = cfg.n_users, tree.n_leaves
    first = rng.integers(n_leaves, size=n)
    dept = tree.leaf_department[first]
    start, count = tree.dept_leaf_start[dept], tree.dept_leaf_count[dept]
    sibling = start + (first - start + 1 + rng.integers(np.maximum(count - 1, 1))) % count
    anywhere = (first + 1 + rng.integers(n_leaves - 1, size=n)) % n_leaves
    second = np.where((rng.random(n) < 0.6) & (count > 1), sibling, anywhere)
    second = np.where(rng.random(n) < cfg.p_second_favourite, second, -1)
    return _Users(np.stack([first, second], axis=1), dept, _history_lengths(cfg, rng))


def _history_lengths(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Lengths >= min_history and <= the cap, heavy-tailed, summing to n_interactions."""
    activity = rng.lognormal(0.0, 1.0, cfg.n_users)
    length = np.full(cfg.n_users, cfg.min_history, np.int64)
    extra = cfg.n_interactions - int(length.sum())
    while extra > 0:
        share = np.where(length < cfg._history_cap, activity, 0.0)
        share *= extra / share.sum()
        add = np.floor(share).astype(np.int64)
        left = extra - int(add.sum())
        add[np.argsort(add - share, kind="stable")[:left]] += 1
        length += add
        over = np.maximum(length - cfg._history_cap, 0)
        length -= over
        extra = int(over.sum())
    return length


# ----------------------------------------------------------------------------- histories
@dataclass
class _History:
    user: np.ndarray
    product: np.ndarray
    order: np.ndarray
    ts: np.ndarray
    is_view: np.ndarray


def _make_histories(
    cfg: SyntheticConfig, tree: _Tree, catalog: _Catalog, users: _Users, *, show_progress: bool
) -> _History:
    parts = []
    with tqdm(
        total=cfg.n_users, desc="synthetic histories", unit="user", disable=not show_progress
    ) as bar:
        for k, lo in enumerate(range(0, cfg.n_users, _CHUNK_USERS)):
            hi = min(lo + _CHUNK_USERS, cfg.n_users)
            parts.append(_chunk(cfg, tree, catalog, users, lo, hi, _rng(cfg, _CHUNKS, k)))
            bar.update(hi - lo)
    return _History(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


def _chunk(
    cfg: SyntheticConfig,
    tree: _Tree,
    catalog: _Catalog,
    users: _Users,
    lo: int,
    hi: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Histories of users ``lo`` to ``hi - 1``: user, product, order, ts and is_view per row."""
    length = users.length[lo:hi]
    offset = np.concatenate([[0], np.cumsum(length)])
    user = np.repeat(np.arange(hi - lo), length)
    leaf = _walk_leaves(cfg, tree, catalog, users, lo, hi, offset, rng)
    product = catalog.zipf(leaf, rng.random(leaf.size))
    _dedupe(user, leaf, product, catalog, rng)
    order = np.arange(leaf.size) - offset[user]
    gap = 1 + rng.exponential(cfg.mean_gap_s, leaf.size).astype(np.int64)
    elapsed = np.cumsum(gap)
    first = offset[:-1]
    begin = cfg.start_ts + rng.integers(365 * 86_400, size=hi - lo) - elapsed[first] + gap[first]
    ts = begin[user] + elapsed
    is_view = rng.random(leaf.size) < cfg.p_view
    return user + lo, product, order, ts, is_view


def _walk_leaves(
    cfg: SyntheticConfig,
    tree: _Tree,
    catalog: _Catalog,
    users: _Users,
    lo: int,
    hi: int,
    offset: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The leaf of every history position, one vectorised step per position.

    Users are sorted by length (longest first), so those still active at step ``t`` are a prefix.
    """
    length = users.length[lo:hi]
    by_length = np.argsort(-length, kind="stable")
    neg_length = -length[by_length]
    row = offset[:-1][by_length]
    favourite = users.leaves[lo:hi][by_length]
    dept = users.department[lo:hi][by_length]
    dept_start, dept_count = tree.dept_leaf_start, tree.dept_leaf_count
    leaf_cum = np.cumsum(catalog.start[1:] - catalog.start[:-1])
    p_c, p_f, p_d = cfg.p_complement, cfg.p_favourite, cfg.p_department
    out = np.empty(int(offset[-1]), np.int64)
    prev = np.zeros(length.size, np.int64)
    for t in range(int(length.max(initial=0))):
        m = int(np.searchsorted(neg_length, -t, side="left"))
        r, u = rng.random(m), rng.random(m)
        if t == 0:
            r = p_c + r * (1.0 - p_c)  # a first item has no previous item to complement
        second = favourite[:m, 1]
        fav = np.where((second >= 0) & (u < 0.5), second, favourite[:m, 0])
        d = dept[:m]
        in_dept = dept_start[d] + np.minimum(
            (u * dept_count[d]).astype(np.int64), dept_count[d] - 1
        )
        anywhere = np.minimum(
            np.searchsorted(leaf_cum, u * leaf_cum[-1], side="right"), tree.n_leaves - 1
        )
        leaf = np.select(
            [r < p_c, r < p_c + p_f, r < p_c + p_f + p_d],
            [tree.complement[prev[:m]], fav, in_dept],
            anywhere,
        )
        out[row[:m] + t] = leaf
        prev[:m] = leaf
    return out


def _dedupe(
    user: np.ndarray,
    leaf: np.ndarray,
    product: np.ndarray,
    catalog: _Catalog,
    rng: np.random.Generator,
) -> None:
    """Redraw, in place, every product a user already had earlier in their history.

    Redraws stay in the same leaf (by popularity, then uniformly); a user who has exhausted a
    leaf gets any product, and that row's leaf changes with it.
    """
    n_products = catalog.leaf.size
    rows = np.arange(user.size)
    for attempt in range(64):
        key = user[rows] * n_products + product[rows]
        order = np.argsort(key, kind="stable")
        dup = rows[order[1:][key[order[1:]] == key[order[:-1]]]]
        if dup.size == 0:
            return
        u = rng.random(dup.size)
        if attempt < 4:
            product[dup] = catalog.zipf(leaf[dup], u)
        elif attempt < 8:
            product[dup] = catalog.uniform(leaf[dup], u)
        else:
            product[dup] = np.minimum((u * n_products).astype(np.int64), n_products - 1)
            leaf[dup] = catalog.leaf[product[dup]]
        rows = rows[np.isin(user[rows], user[dup])]
    raise RuntimeError("synthetic: could not draw repeat-free histories; raise n_products")


def _cover_products(
    product: np.ndarray, product_leaf: np.ndarray, rng: np.random.Generator
) -> None:
    """Move surplus interactions onto untouched products of the same leaf, in place.

    A row is surplus when its product occurs in an earlier row too; moving it leaves that product
    covered, keeps the row's leaf (so the planted structure stays), and cannot create a repeat
    within a history because the new product occurred nowhere before.
    """
    n_leaves = int(product_leaf.max()) + 1
    unseen = np.flatnonzero(np.bincount(product, minlength=product_leaf.size) == 0)
    if unseen.size == 0:
        return
    by_product = np.argsort(product, kind="stable")
    sorted_product = product[by_product]
    surplus = by_product[1:][sorted_product[1:] == sorted_product[:-1]]
    surplus = surplus[rng.permutation(surplus.size)]
    surplus = surplus[np.argsort(product_leaf[product[surplus]], kind="stable")]
    surplus_start = np.searchsorted(product_leaf[product[surplus]], np.arange(n_leaves + 1))
    unseen = unseen[np.argsort(product_leaf[unseen], kind="stable")]
    unseen_leaf = product_leaf[unseen]
    rank = np.arange(unseen.size) - np.searchsorted(unseen_leaf, unseen_leaf)
    ok = rank < surplus_start[unseen_leaf + 1] - surplus_start[unseen_leaf]
    product[surplus[surplus_start[unseen_leaf[ok]] + rank[ok]]] = unseen[ok]
