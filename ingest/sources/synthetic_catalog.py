"""The catalogue side of the synthetic shop: category tree, brands, products and their text.

Builds the named category tree with its planted complement map, brands that specialise in one or
two departments, the products of each leaf with brand, price and popularity, and product titles
and descriptions from :mod:`ingest.sources.synthetic_vocab`. The underscored names are internal
to the ``ingest.sources.synthetic*`` modules; use :mod:`ingest.sources.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.sources import synthetic_vocab as vocab

if TYPE_CHECKING:
    from ingest.sources.synthetic import SyntheticConfig

#: Probability that a leaf's complement lies in its department's partner department.
_P_PARTNER = 0.75

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
    words = _leaf_words(tree, rng)
    return _product_text(tree, brands, words, catalog.leaf, catalog.brand, rng)


#: Words drawn per leaf for product text: three subcategory keywords and one department keyword.
_N_WORDS = 4


def _leaf_words(tree: _Tree, rng: np.random.Generator) -> list[str]:
    """The ``_N_WORDS`` words of every leaf, leaf after leaf."""
    words = []
    for sub, dept in zip(tree.leaf_sub, tree.department_vocab[tree.leaf_department], strict=True):
        keys = _SUBCATEGORIES[sub].keywords
        picked = [keys[i] for i in rng.choice(len(keys), _N_WORDS - 1, replace=False)]
        dept_keys = vocab.DEPARTMENTS[dept].keywords
        words += [*picked, dept_keys[rng.integers(len(dept_keys))]]
    return words


def _product_text(
    tree: _Tree,
    brands: _Brands,
    words: list[str],
    leaf: np.ndarray,
    brand_of: np.ndarray,
    rng: np.random.Generator,
) -> tuple[pa.Array, pa.Array]:
    """Titles and descriptions of the products with leaves ``leaf`` and brands ``brand_of``."""
    n_words = _N_WORDS
    leaf_words = pa.array(words, pa.string())
    leaf_words_cap = pa.array([_capitalise(w) for w in words], pa.string())

    depts = vocab.DEPARTMENTS
    materials = _pool([d.materials for d in depts])
    materials_cap = pa.array([_capitalise(w) for d in depts for w in d.materials], pa.string())
    sizes, uses = _pool([d.sizes for d in depts]), _pool([d.uses for d in depts])

    n = leaf.size
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
    brand = pa.array(brands.names, pa.string()).take(brand_of)
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
