"""Shop data as CSV files: products, interactions and (optionally) a category tree.

Every file is UTF-8 (a BOM is allowed), comma-separated with strict ``"`` quoting
(RFC 4180), and starts with a header row naming its columns in any order. A field holds at
most 128 KiB (:data:`ingest.sources.text.MAX_FIELD_CHARS`, the same limit as JSON sources). Values are stripped
of surrounding whitespace; an empty value means "not given". Columns not listed below are
ignored; blank lines are skipped. Line numbers in errors are 1-based, the header being line 1.

``products.csv``
    ``id`` (required): the product key.
    ``title``, ``description``: free text.
    ``brand``: brand name; the brand node's id and name are this string.
    ``category``: the id of a row of ``categories.csv``; without ``categories.csv``, a path
    of names from the root down separated by ``>`` (``"Tools > Hand Tools > Pliers"``), which
    creates one category per prefix (id = names joined with ``" > "``, as in
    :mod:`ingest.sources.amazon`) and links the product to the last one.
    ``price``: a finite number.

``categories.csv`` (optional)
    ``id`` (required), ``name``, ``parent_id`` (empty for a root; may name a row further down).
    ``level`` is computed: roots are 1, their children 2, and so on.

``interactions.csv``
    ``user_id``, ``product_id`` (required): who interacted with what (a known product).
    ``timestamp``: integer seconds. ``kind``: e.g. ``view``/``purchase`` (default
    ``"interaction"``). ``weight``: a finite number (default 1.0).
    A user's ``order`` sorts their rows by timestamp, ties and rows without a timestamp in file
    order, rows without a timestamp after those with one. Rows rejected in ``--rejects`` mode
    keep their places in that order (a row whose timestamp is bad counts as one without), so a
    later load of the corrected file gives every row the same position.

Users are the distinct ``user_id`` values, in order of first appearance.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from ingest.errors import SourceError
from ingest.rejects import Rejects
from ingest.sources.categories import CategoryTree
from ingest.sources.common import edges_table, finite_number
from ingest.sources.text import MAX_FIELD_CHARS, decode_utf8
from ingest.tables import GraphTables

__all__ = ["read_csv"]

_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
#: The range of an int64 timestamp (the canonical ``ts`` column).
_MIN_TS, _MAX_TS = -(2**63), 2**63 - 1
_PRODUCT_COLUMNS = ("id", "title", "description", "brand", "category", "price")
_CATEGORY_COLUMNS = ("id", "name", "parent_id")
_INTERACTION_COLUMNS = ("user_id", "product_id", "timestamp", "kind", "weight")


def read_csv(
    products: str | Path,
    interactions: str | Path,
    categories: str | Path | None = None,
    *,
    rejects: Rejects | None = None,
    show_progress: bool = True,
) -> GraphTables:
    """Read products, interactions and optionally categories from CSV files.

    Args:
        products: path of ``products.csv``.
        interactions: path of ``interactions.csv``.
        categories: path of ``categories.csv``; ``None`` reads product categories as paths.
        rejects: where bad rows go in skip mode; ``None`` raises on the first.
        show_progress: show tqdm progress bars.

    Returns:
        Validated tables.

    Raises:
        SourceError: a missing or empty file, a header without a required column, malformed
            CSV, a category cycle, or (unless skipped) a bad row.
    """
    rejects = rejects if rejects is not None else Rejects("raise")
    paths = {"products": Path(products), "interactions": Path(interactions)}
    if categories is not None:
        category_table, parent_table = _read_categories(Path(categories), rejects, show_progress)
        tree = None
    else:
        tree = CategoryTree()
        category_table, parent_table = None, None
    known_categories = set() if category_table is None else set(category_table["id"].to_pylist())

    product_cols, brand_of, category_of = _read_products(
        paths["products"], known_categories, tree, rejects, show_progress
    )
    users, interaction_table = _read_interactions(
        paths["interactions"], set(product_cols["id"]), rejects, show_progress
    )
    if tree is not None:
        category_table, parent_table = tree.categories(), tree.subcategory_of()

    brands = sorted(set(brand_of.values()))
    tables = GraphTables(
        users=pa.Table.from_pydict({"id": pa.array(users, pa.string())}),
        products=pa.Table.from_pydict(product_cols),
        brands=pa.Table.from_pydict({"id": pa.array(brands, pa.string()), "name": brands}),
        categories=category_table,
        subcategory_of=parent_table,
        made_by=edges_table(brand_of, "product_id", "brand_id"),
        in_category=edges_table(category_of, "product_id", "category_id"),
        interactions=interaction_table,
        meta={
            "source": "csv",
            "products": str(paths["products"]),
            "interactions": str(paths["interactions"]),
            "categories": None if categories is None else str(categories),
        },
    )
    return tables.validate()


def _rows(
    path: Path,
    required: tuple[str, ...],
    columns: tuple[str, ...],
    rejects: Rejects,
    show_progress: bool,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, {column: stripped value})`` for each data row with the right field count."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise SourceError(path, "file not found") from None
    with handle:
        reader = csv.reader(handle, strict=True)
        end = 0  # the line the last record read ended on
        try:
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise SourceError(path, "empty file (no header row)")
            end = reader.line_num
            names = [h.strip() for h in header]
            for column in required:
                if column not in names:
                    raise SourceError(
                        path, f"header lacks required column {column!r}", line=1, value=names
                    )
            index = {c: names.index(c) for c in columns if c in names}
            for fields in tqdm(reader, desc=path.name, unit=" rows", disable=not show_progress):
                line, end = end + 1, reader.line_num
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue
                if len(fields) != len(names):
                    message = f"expected {len(names)} fields as in the header, got {len(fields)}"
                    rejects.report(
                        SourceError(path, message, line=line, value=fields), "field count"
                    )
                    continue
                longest = max(fields, key=len)
                if len(longest) > MAX_FIELD_CHARS:  # csv's own limit may have been raised
                    message = f"a field is longer than the {MAX_FIELD_CHARS:,}-character limit"
                    rejects.report(SourceError(path, message, line=line), "field too long")
                    continue
                yield line, {c: fields[i].strip() for c, i in index.items()}
        except UnicodeDecodeError as exc:
            # the decoder reads ahead of the reader: find the bad byte's line in the bytes
            data = path.read_bytes()
            try:
                decode_utf8(data, path)
            except SourceError as error:
                raise error from None
            raise SourceError(path, f"not UTF-8 text ({exc.reason})") from None
        except csv.Error as exc:  # in the record that starts on the line after `end`
            message = f"malformed CSV: {exc}"
            if "field larger than field limit" in str(exc):
                message = f"a field is longer than the {MAX_FIELD_CHARS:,}-character limit"
            elif "unexpected end of data" in str(exc):
                message += " (a quoted field is never closed)"
            raise SourceError(path, message, line=end + 1) from None


def _missing(
    path: Path, line: int, row: dict[str, str], keys: tuple[str, ...], rejects: Rejects
) -> bool:
    """Report the first empty key column of ``row``; True when there was one."""
    for key in keys:
        if not row.get(key):
            rejects.report(
                SourceError(path, f"missing {key}", line=line, value=row), f"missing {key}"
            )
            return True
    return False


def _read_categories(
    path: Path, rejects: Rejects, show_progress: bool
) -> tuple[pa.Table, pa.Table]:
    lines: dict[str, int] = {}
    names: dict[str, str | None] = {}
    parents: dict[str, str] = {}
    for line, row in _rows(path, ("id",), _CATEGORY_COLUMNS, rejects, show_progress):
        if _missing(path, line, row, ("id",), rejects):
            continue
        cid = row["id"]
        if cid in lines:
            rejects.report(SourceError(path, "duplicate category id", line=line, value=cid))
            continue
        lines[cid] = line
        names[cid] = row.get("name") or None
        if row.get("parent_id"):
            parents[cid] = row["parent_id"]
    # Drop categories whose parent is unknown, then their children, and so on.
    dropped = True
    while dropped:
        dropped = False
        for cid, parent in list(parents.items()):
            if parent not in lines:
                error = SourceError(path, "unknown parent category", line=lines[cid], value=parent)
                rejects.report(error, "unknown parent category")
                for table in (lines, names, parents):
                    table.pop(cid, None)
                dropped = True
    levels = {cid: _level(path, cid, parents, lines) for cid in lines}
    categories = pa.Table.from_pydict(
        {
            "id": pa.array(list(lines), pa.string()),
            "name": pa.array([names[c] for c in lines], pa.string()),
            "level": pa.array([levels[c] for c in lines], pa.int32()),
        }
    )
    edges = edges_table(parents, "child_id", "parent_id")
    return categories, edges


def _level(path: Path, cid: str, parents: dict[str, str], lines: dict[str, int]) -> int:
    """Depth of ``cid`` (root = 1); a cycle always raises."""
    seen = [cid]
    node = cid
    while node in parents:
        node = parents[node]
        if node in seen:
            cycle = [*seen[seen.index(node) :], node]
            raise SourceError(path, "category cycle", line=lines[node], value=" -> ".join(cycle))
        seen.append(node)
    return len(seen)


def _read_products(
    path: Path,
    known_categories: set[str],
    tree: CategoryTree | None,
    rejects: Rejects,
    show_progress: bool,
) -> tuple[dict[str, list[Any]], dict[str, str], dict[str, str]]:
    cols: dict[str, list[Any]] = {"id": [], "title": [], "description": [], "price": []}
    seen: set[str] = set()
    brand_of: dict[str, str] = {}
    category_of: dict[str, str] = {}
    for line, row in _rows(path, ("id",), _PRODUCT_COLUMNS, rejects, show_progress):
        if _missing(path, line, row, ("id",), rejects):
            continue
        pid = row["id"]
        if pid in seen:
            rejects.report(SourceError(path, "duplicate product id", line=line, value=pid))
            continue
        ok, price = finite_number(path, line, "price", row.get("price", ""), rejects)
        if not ok:
            continue
        category = row.get("category", "")
        if category and tree is None and category not in known_categories:
            error = SourceError(path, "unknown category", line=line, value=category)
            rejects.report(error, "unknown category")
            continue
        seen.add(pid)
        cols["id"].append(pid)
        cols["title"].append(row.get("title") or None)
        cols["description"].append(row.get("description") or None)
        cols["price"].append(price)
        if row.get("brand"):
            brand_of[pid] = row["brand"]
        if category and tree is not None:
            leaf = tree.add([n.strip() for n in category.split(">") if n.strip()])
            if leaf is not None:
                category_of[pid] = leaf
        elif category:
            category_of[pid] = category
    return cols, brand_of, category_of


def _read_interactions(
    path: Path, known_products: set[str], rejects: Rejects, show_progress: bool
) -> tuple[list[str], pa.Table]:
    # Per user, every row with a user id, rejected ones too (their slots keep the positions of
    # the others what a clean file gives them): (has no timestamp, timestamp, line, event or None)
    Event = tuple[str, str, float, int | None]  # product, kind, weight, ts
    slots: dict[str, list[tuple[bool, int, int, Event | None]]] = {}
    columns = _INTERACTION_COLUMNS
    for line, row in _rows(path, ("user_id", "product_id"), columns, rejects, show_progress):
        stamp = row.get("timestamp", "")
        ts = int(stamp) if _INTEGER.fullmatch(stamp) else None
        if ts is not None and not _MIN_TS <= ts <= _MAX_TS:
            ts = None
        if row.get("user_id"):
            slots.setdefault(row["user_id"], []).append((ts is None, ts or 0, line, None))
        if _missing(path, line, row, ("user_id", "product_id"), rejects):
            continue
        if row["product_id"] not in known_products:
            error = SourceError(path, "unknown product", line=line, value=row["product_id"])
            rejects.report(error, "unknown product")
            continue
        if stamp and ts is None:
            reason = (
                "timestamp is outside the int64 range"
                if _INTEGER.fullmatch(stamp)
                else "timestamp is not an integer"
            )
            rejects.report(SourceError(path, reason, line=line, value=stamp), reason)
            continue
        ok, weight = finite_number(path, line, "weight", row.get("weight", ""), rejects)
        if not ok:
            continue
        kind = row.get("kind") or "interaction"
        event = (row["product_id"], kind, 1.0 if weight is None else weight, ts)
        slots[row["user_id"]][-1] = (ts is None, ts or 0, line, event)
    rows: list[tuple[str, str, int, int | None, str, float]] = []
    users: list[str] = []
    for user, history in slots.items():
        history.sort(key=lambda e: (e[0], e[1], e[2]))
        kept = [(order, e) for order, (_, _, _, e) in enumerate(history) if e is not None]
        if kept:
            users.append(user)
        rows.extend((user, e[0], order, e[3], e[1], e[2]) for order, e in kept)
    names = ("user_id", "product_id", "order", "ts", "kind", "weight")
    types = (pa.string(), pa.string(), pa.int64(), pa.int64(), pa.string(), pa.float32())
    values = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    table = pa.Table.from_pydict(
        {n: pa.array(list(v), t) for n, v, t in zip(names, values, types, strict=True)}
    )
    return users, table
