"""A synthetic shop streamed to a tables folder in bounded memory (the ``xl`` preset).

:func:`write_shop` draws the same kind of shop as
:func:`~ingest.sources.synthetic.generate_shop` (same tree, brands, catalogue and users for a
configuration) but never holds a whole interaction or text table: products and their text are
made and written ``_CHUNK_PRODUCTS`` at a time, and histories one chunk of users at a time, each
chunk as one Parquet row group of the tables folder that :meth:`GraphTables.load` reads.

What stays in memory is numeric state per product and per user (leaf, brand, price, popularity,
tastes, history length: about 100 bytes each) plus one chunk, so memory grows with the catalogue
and the user base, not with the interactions or the text.

Covering every product (``cover_all_products``) needs to know which products no history
reached, which only the last chunk tells. So histories are drawn twice from the same seeded
per-chunk streams: the first pass counts, per chunk and leaf, the rows that repeat a product,
and marks the products seen; the unseen products of each leaf are then shared out over the
chunks in proportion to those rows (a multivariate hypergeometric draw); the second pass draws
each chunk again and moves its share of repeating rows onto unseen products of the same leaf.
A moved row keeps its leaf, and an unseen product occurs nowhere else, so no history repeats a
product. The output differs from ``generate_shop``'s (its text and cover draw from other
streams) but is byte-identical for the same configuration.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.atomic import atomic_folder
from ingest.sources.synthetic import SyntheticConfig, draw_plan, prefixed_ids, tree_tables
from ingest.sources.synthetic_catalog import (
    _Catalog,
    _leaf_words,
    _product_text,
    _Tree,
)
from ingest.sources.synthetic_common import (
    _CHUNKS,
    _COVERAGE,
    _TEXT,
    _rng,
)
from ingest.sources.synthetic_users import _CHUNK_USERS, _chunk, _Users
from ingest.tables import FORMAT_VERSION, TABLE_SCHEMAS

__all__ = ["StreamedShop", "write_shop"]

#: Products whose rows (and text) are made together; fixed, so output never depends on memory.
_CHUNK_PRODUCTS = 1 << 17


@dataclass(frozen=True)
class StreamedShop:
    """A shop written by :func:`write_shop`.

    Attributes:
        folder: the tables folder.
        counts: rows per table.
        seconds: wall time of the whole generation.
    """

    folder: Path
    counts: dict[str, int]
    seconds: float


class _Writers:
    """One Parquet writer per canonical table, each chunk a row group."""

    def __init__(self, folder: Path) -> None:
        self._writers = {
            name: pq.ParquetWriter(folder / f"{name}.parquet", schema)
            for name, schema in TABLE_SCHEMAS.items()
        }
        self.counts = dict.fromkeys(TABLE_SCHEMAS, 0)

    def write(self, name: str, columns: dict[str, Any]) -> None:
        schema = TABLE_SCHEMAS[name]
        table = pa.Table.from_pydict(
            {f.name: columns.get(f.name, pa.nulls(len(next(iter(columns.values()))), f.type))
             for f in schema},
            schema=schema,
        )  # fmt: skip
        self._writers[name].write_table(table)
        self.counts[name] += table.num_rows

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def _history_chunks(
    cfg: SyntheticConfig, tree: _Tree, catalog: _Catalog, users: _Users
) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    """``(k, (user, product, order, ts, is_view))`` per chunk of users, from the chunk's own
    seeded stream (so a chunk drawn twice is the same)."""
    for k, lo in enumerate(range(0, cfg.n_users, _CHUNK_USERS)):
        hi = min(lo + _CHUNK_USERS, cfg.n_users)
        yield k, _chunk(cfg, tree, catalog, users, lo, hi, _rng(cfg, _CHUNKS, k))


def _repeats(product: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Rows whose product occurred before (in an earlier chunk or row); marks them all seen."""
    order = np.argsort(product, kind="stable")
    first = np.ones(product.size, bool)
    first[order[1:]] = product[order[1:]] != product[order[:-1]]
    repeat = ~first | seen[product]
    seen[product] = True
    return repeat


@dataclass
class _Cover:
    """Which repeating rows of each chunk move to which unseen products."""

    alloc: np.ndarray  # (n_chunks, n_leaves): rows to move per chunk and leaf
    unseen: np.ndarray  # unseen products grouped by leaf (shuffled within a leaf)
    start: np.ndarray  # (n_leaves,) where each leaf's unseen products begin
    used: np.ndarray  # (n_leaves,) unseen products handed out so far


def _plan_cover(
    cfg: SyntheticConfig,
    tree: _Tree,
    catalog: _Catalog,
    users: _Users,
    show_progress: bool,
) -> _Cover:
    """The first pass over histories (module docstring)."""
    from tqdm.auto import tqdm

    n_chunks = -(-cfg.n_users // _CHUNK_USERS)
    n_leaves = tree.n_leaves
    repeats = np.zeros((n_chunks, n_leaves), np.int64)
    seen = np.zeros(cfg.n_products, bool)
    with tqdm(total=n_chunks, desc="synthetic cover plan", unit="chunk",
              disable=not show_progress) as bar:  # fmt: skip
        for k, (_, product, *_) in _history_chunks(cfg, tree, catalog, users):
            rows = _repeats(product, seen)
            repeats[k] = np.bincount(catalog.leaf[product[rows]], minlength=n_leaves)
            bar.update(1)
    rng = _rng(cfg, _COVERAGE)
    unseen = np.flatnonzero(~seen)
    unseen = unseen[rng.permutation(unseen.size)]
    unseen = unseen[np.argsort(catalog.leaf[unseen], kind="stable")]
    count = np.bincount(catalog.leaf[unseen], minlength=n_leaves)
    alloc = np.zeros_like(repeats)
    for leaf in np.flatnonzero(count):
        moved = min(int(count[leaf]), int(repeats[:, leaf].sum()))
        if moved:
            alloc[:, leaf] = rng.multivariate_hypergeometric(repeats[:, leaf], moved)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return _Cover(alloc, unseen, start, np.zeros(n_leaves, np.int64))


def _apply_cover(
    k: int, product: np.ndarray, seen: np.ndarray, cover: _Cover, catalog: _Catalog, rng: Any
) -> None:
    """Move chunk ``k``'s share of repeating rows onto unseen products, in place."""
    rows = np.flatnonzero(_repeats(product, seen))
    rows = rows[rng.permutation(rows.size)]
    leaf = catalog.leaf[product[rows]]
    by_leaf = np.argsort(leaf, kind="stable")
    rows, leaf = rows[by_leaf], leaf[by_leaf]
    rank = np.arange(rows.size) - np.searchsorted(leaf, leaf)
    move = rank < cover.alloc[k, leaf]
    leaf, rank = leaf[move], rank[move]
    product[rows[move]] = cover.unseen[cover.start[leaf] + cover.used[leaf] + rank]
    cover.used += cover.alloc[k]


def _write_catalog(
    cfg: SyntheticConfig,
    tree: _Tree,
    brands: Any,
    catalog: _Catalog,
    out: _Writers,
    show_progress: bool,
) -> None:
    from tqdm.auto import tqdm

    words = _leaf_words(tree, _rng(cfg, _TEXT))
    brand_ids = pa.array(brands.names, pa.string())
    leaf_ids = pa.array(tree.leaf_ids, pa.string())
    with tqdm(total=cfg.n_products, desc="synthetic products", unit="product",
              disable=not show_progress) as bar:  # fmt: skip
        for k, lo in enumerate(range(0, cfg.n_products, _CHUNK_PRODUCTS)):
            hi = min(lo + _CHUNK_PRODUCTS, cfg.n_products)
            leaf, brand = catalog.leaf[lo:hi], catalog.brand[lo:hi]
            title, description = _product_text(
                tree, brands, words, leaf, brand, _rng(cfg, _TEXT, 1, k)
            )
            ids = prefixed_ids("p", hi, lo)
            out.write(
                "products",
                {"id": ids, "title": title, "description": description,
                 "price": catalog.price[lo:hi]},
            )  # fmt: skip
            out.write("in_category", {"product_id": ids, "category_id": leaf_ids.take(leaf)})
            out.write("made_by", {"product_id": ids, "brand_id": brand_ids.take(brand)})
            bar.update(hi - lo)
    out.write("brands", {"id": brand_ids, "name": brand_ids})
    out.write("categories", tree_tables(tree)[0])
    out.write("subcategory_of", tree_tables(tree)[1])


def _write_histories(
    cfg: SyntheticConfig,
    tree: _Tree,
    catalog: _Catalog,
    users: _Users,
    out: _Writers,
    show_progress: bool,
) -> None:
    from tqdm.auto import tqdm

    cover = (
        _plan_cover(cfg, tree, catalog, users, show_progress) if cfg.cover_all_products else None
    )
    seen = np.zeros(cfg.n_products, bool)
    kinds = pa.array(["purchase", "view"])
    with tqdm(total=cfg.n_users, desc="synthetic histories", unit="user",
              disable=not show_progress) as bar:  # fmt: skip
        for k, (user, product, order, ts, is_view) in _history_chunks(cfg, tree, catalog, users):
            if cover is not None:
                _apply_cover(k, product, seen, cover, catalog, _rng(cfg, _COVERAGE, 1, k))
            lo, hi = int(user[0]), int(user[-1]) + 1
            out.write("users", {"id": prefixed_ids("u", hi, lo)})
            out.write(
                "interactions",
                {
                    "user_id": prefixed_ids("u", hi, lo).take(pa.array(user - lo)),
                    "product_id": pc.binary_join_element_wise(
                        "p", pa.array(product).cast(pa.string()), ""
                    ),
                    "order": order,
                    "ts": ts,
                    "kind": kinds.take(pa.array(is_view.view(np.int8))),
                    "weight": np.ones(user.size, np.float32),
                },
            )
            bar.update(hi - lo)


def write_shop(
    config: SyntheticConfig, folder: str | Path, *, show_progress: bool = True
) -> StreamedShop:
    """Generate a synthetic shop straight into a tables folder (module docstring).

    The folder is written atomically (a temporary sibling renamed into place). Its
    ``manifest.json`` has the counts and provenance of :meth:`GraphTables.save`, but no content
    fingerprint (that needs every table sorted in memory): ``GraphTables.load(folder)``
    computes one on demand.

    Args:
        config: sizes and behaviour (each user has at least one interaction).
        folder: the tables folder to write.
        show_progress: tqdm bars per step.

    Returns:
        The folder, row counts and wall time.

    Raises:
        ValueError: the tree has more leaves than there are products.
    """
    t0 = time.perf_counter()
    cfg = config
    tree, brands, catalog, users = draw_plan(cfg)
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        out = _Writers(tmp)
        try:
            _write_catalog(cfg, tree, brands, catalog, out, show_progress)
            _write_histories(cfg, tree, catalog, users, out, show_progress)
        finally:
            out.close()
        manifest = {
            "format_version": FORMAT_VERSION,
            "counts": out.counts,
            "fingerprint": None,
            "meta": {"source": "synthetic", "config": asdict(cfg), "streamed": True},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return StreamedShop(folder, dict(out.counts), time.perf_counter() - t0)
