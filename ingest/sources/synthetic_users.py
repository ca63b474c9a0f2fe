"""The user side of the synthetic shop: planted tastes and chronological interaction histories.

Draws each user's favourite leaves, home department and history length, walks histories through
the category tree in vectorised steps (favourites, home department, complements, anywhere),
removes repeats and, optionally, spreads interactions so every product is covered. The
underscored names are internal to the ``ingest.sources.synthetic*`` modules; use
:mod:`ingest.sources.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from ingest.sources.synthetic_catalog import _Catalog, _Tree
from ingest.sources.synthetic_common import _CHUNKS, _rng

if TYPE_CHECKING:
    from ingest.sources.synthetic import SyntheticConfig

#: Users whose histories are generated together. Fixed, so output never depends on memory size.
_CHUNK_USERS = 1 << 16


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
