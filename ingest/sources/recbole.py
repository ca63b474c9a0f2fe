"""RecBole atomic files: ``<name>.inter`` and, optionally, ``<name>.item``.

The format RecBole users already have (its "atomic files"): UTF-8 text (a BOM is allowed), one
record per line, fields separated by tabs, and a header line naming each field with its type,
``name:type``, the type one of ``token``, ``token_seq``, ``float`` and ``float_seq``::

    user_id:token	item_id:token	rating:float	timestamp:float
    u1	i3	5	978300760

Fields not listed below are ignored; blank lines are skipped; values are stripped, and an empty
value means "not given". Line numbers in errors are 1-based, the header being line 1.

``<name>.inter``
    ``user_id``, ``item_id`` (required): who interacted with what. ``timestamp`` (float
    seconds): the order of a user's interactions (rows without one come after those with one,
    ties and those in file order); kept as whole seconds. ``rating`` (float): the interaction's
    weight (default 1.0).
``<name>.item`` (optional)
    ``item_id`` (required), ``title``, ``description``, ``brand``, ``price`` (float) and
    ``categories`` (or ``category``): a category path joined with ``","``, ``", "`` or
    ``" > "`` (:mod:`ingest.sources.category_paths`; the separator most strings use unless
    one is given). With an item file, every item of the interactions must be in it; without
    one, the products are the items of the interactions, with no text.

Users are the distinct ``user_id`` values in order of first appearance; ``kind`` is
``"interaction"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from ingest.errors import SourceError
from ingest.rejects import Rejects
from ingest.sources.category_paths import category_tree, check_separator, detect_separator
from ingest.sources.common import edges_table, find_dataset_name, finite_number
from ingest.sources.text import MAX_FIELD_CHARS, decode_utf8
from ingest.tables import GraphTables

#: Timestamps fit in int64: ``-2**63 <= ts < 2**63`` (as floats, which RecBole's are).
_TS_LIMIT = 2.0**63
__all__ = ["read_recbole"]

TYPES = ("token", "token_seq", "float", "float_seq")
_ITEM_TEXT = ("title", "description", "brand")


def read_recbole(
    folder: str | Path,
    name: str | None = None,
    *,
    category_separator: str | None = None,
    rejects: Rejects | None = None,
    show_progress: bool = True,
) -> GraphTables:
    """Read ``<name>.inter`` and, when present, ``<name>.item`` from ``folder``.

    Args:
        folder: the dataset folder.
        name: the file prefix (the dataset name); ``None`` finds the single ``*.inter``.
        category_separator: how the item file's category paths are joined; ``None`` takes the
            one most strings use (kept in ``tables.meta["category_separator"]``).
        rejects: where bad rows go in skip mode; ``None`` raises on the first.
        show_progress: show tqdm progress bars.

    Returns:
        Validated tables.

    Raises:
        SourceError: a missing or empty file, a bad header, or (unless skipped) a bad row.
        ValueError: an unknown ``category_separator``.
    """
    check_separator(category_separator)
    folder = Path(folder)
    rejects = rejects if rejects is not None else Rejects("raise")
    name = name or find_dataset_name(folder, ".inter")
    inter_path, item_path = folder / f"{name}.inter", folder / f"{name}.item"
    items = _read_items(item_path, rejects, show_progress) if item_path.exists() else None
    users, interactions, seen_items = _read_interactions(
        inter_path, None if items is None else set(items.products["id"]), rejects, show_progress
    )
    if items is None:
        items = _Items()
        for item in seen_items:
            items.add(item, {})
    separator = category_separator or detect_separator(items.categories.values())
    category_of, tree = category_tree(items.categories, separator)
    brands = sorted(set(items.brand_of.values()))
    tables = GraphTables(
        users=pa.Table.from_pydict({"id": pa.array(users, pa.string())}),
        products=pa.Table.from_pydict(items.products),
        brands=pa.Table.from_pydict({"id": pa.array(brands, pa.string()), "name": brands}),
        categories=tree.categories(),
        subcategory_of=tree.subcategory_of(),
        made_by=edges_table(items.brand_of, "product_id", "brand_id"),
        in_category=edges_table(category_of, "product_id", "category_id"),
        interactions=interactions,
        meta={
            "source": "recbole",
            "path": str(folder),
            "name": name,
            "item_file": item_path.exists(),
            "category_separator": separator,
        },
    )
    return tables.validate()


def _rows(
    path: Path, required: tuple[str, ...], rejects: Rejects, show_progress: bool
) -> Iterator[tuple[int, dict[str, tuple[str, str]]]]:
    """Yield ``(line, {field: (type, stripped value)})`` for each data row."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise SourceError(path, "file not found") from None
    with handle:
        lines = enumerate(handle, start=1)
        try:
            header = next((text for _, text in lines if text.strip()), None)
            if header is None:
                raise SourceError(path, "empty file (no header line)")
            fields = [_field(path, f) for f in header.rstrip("\r\n").split("\t")]
            names = [n for n, _ in fields]
            for column in required:
                if column not in names:
                    raise SourceError(
                        path, f"header lacks required field {column!r}", line=1, value=names
                    )
            for line, text in tqdm(lines, desc=path.name, unit=" rows", disable=not show_progress):
                values = text.rstrip("\r\n").split("\t")
                if not text.strip():
                    continue
                if len(values) != len(fields):
                    message = f"expected {len(fields)} fields as in the header, got {len(values)}"
                    rejects.report(
                        SourceError(path, message, line=line, value=values), "field count"
                    )
                    continue
                if len(max(values, key=len)) > MAX_FIELD_CHARS:
                    message = f"a field is longer than the {MAX_FIELD_CHARS:,}-character limit"
                    rejects.report(SourceError(path, message, line=line), "field too long")
                    continue
                yield line, {n: (t, v.strip()) for (n, t), v in zip(fields, values, strict=True)}
        except UnicodeDecodeError as exc:
            # the decoder reads ahead of the lines: find the bad byte's line in the bytes
            decode_utf8(path.read_bytes(), path)
            raise SourceError(path, f"not UTF-8 text ({exc.reason})") from None


def _field(path: Path, text: str) -> tuple[str, str]:
    name, sep, kind = text.strip().rpartition(":")
    if not sep or not name or kind not in TYPES:
        raise SourceError(
            path, f"header field is not name:type with a type among {TYPES}", line=1, value=text
        )
    return name, kind


def _missing(path: Path, line: int, row: dict[str, tuple[str, str]], keys: tuple[str, ...],
             rejects: Rejects) -> bool:  # fmt: skip
    for key in keys:
        if not row[key][1]:
            error = SourceError(path, f"missing {key}", line=line, value=row[key][1])
            rejects.report(error, f"missing {key}")
            return True
    return False


class _Items:
    """The item file's columns, brands and category strings."""

    def __init__(self) -> None:
        self.products: dict[str, list[Any]] = {"id": [], "title": [], "description": [],
                                               "price": []}  # fmt: skip
        self.brand_of: dict[str, str] = {}
        self.categories: dict[str, str] = {}

    def add(self, item: str, values: dict[str, Any]) -> None:
        self.products["id"].append(item)
        for column in ("title", "description", "price"):
            self.products[column].append(values.get(column))
        if values.get("brand"):
            self.brand_of[item] = values["brand"]
        if values.get("categories"):
            self.categories[item] = values["categories"]


def _read_items(path: Path, rejects: Rejects, show_progress: bool) -> _Items:
    items = _Items()
    seen: set[str] = set()
    for line, row in _rows(path, ("item_id",), rejects, show_progress):
        if _missing(path, line, row, ("item_id",), rejects):
            continue
        item = row["item_id"][1]
        if item in seen:
            rejects.report(SourceError(path, "duplicate item id", line=line, value=item))
            continue
        ok, price = finite_number(path, line, "price", row.get("price", ("", ""))[1], rejects)
        if not ok:
            continue
        seen.add(item)
        values: dict[str, Any] = {c: row[c][1] or None for c in _ITEM_TEXT if c in row}
        values["price"] = price
        values["categories"] = (row.get("categories") or row.get("category") or ("", ""))[1]
        items.add(item, values)
    if not seen and not rejects.count:
        raise SourceError(path, "no item rows")
    return items


def _read_interactions(
    path: Path, known: set[str] | None, rejects: Rejects, show_progress: bool
) -> tuple[list[str], pa.Table, list[str]]:
    """Users, the interaction table, and the items met (in order of first appearance)."""
    # Per user, every row with a user id, rejected ones too (their slots keep the positions of
    # the others what a clean file gives them): (has no timestamp, timestamp, line, event or
    # None), event = (item, weight, ts)
    slots: dict[str, list[tuple[bool, float, int, tuple[str, float, int | None] | None]]] = {}
    items: dict[str, None] = {}
    for line, row in _rows(path, ("user_id", "item_id"), rejects, show_progress):
        user = row["user_id"][1]
        if user:
            try:
                placed = float(row.get("timestamp", ("", ""))[1])
            except ValueError:
                placed = math.nan
            timed = math.isfinite(placed)
            slots.setdefault(user, []).append((not timed, placed if timed else 0.0, line, None))
        if _missing(path, line, row, ("user_id", "item_id"), rejects):
            continue
        item = row["item_id"][1]
        if known is not None and item not in known:
            error = SourceError(path, "unknown item (not in the item file)", line=line, value=item)
            rejects.report(error, "unknown item")
            continue
        ok, stamp = finite_number(
            path, line, "timestamp", row.get("timestamp", ("", ""))[1], rejects
        )
        if not ok:
            continue
        if stamp is not None and not -_TS_LIMIT <= stamp < _TS_LIMIT:
            reason = "timestamp is outside the int64 range"
            value = row["timestamp"][1]
            rejects.report(SourceError(path, reason, line=line, value=value), reason)
            continue
        ok, rating = finite_number(path, line, "rating", row.get("rating", ("", ""))[1], rejects)
        if not ok:
            continue
        items.setdefault(item)
        event = (item, 1.0 if rating is None else rating, None if stamp is None else int(stamp))
        slots[user][-1] = (*slots[user][-1][:3], event)
    users = [user for user, history in slots.items() if any(e[3] for e in history)]
    if not users and not rejects.count:
        raise SourceError(path, "no interaction rows")
    rows = []
    for user in users:
        history = sorted(slots[user], key=lambda e: (e[0], e[1], e[2]))
        rows.extend(
            (user, e[0], order, e[2], e[1])
            for order, (_, _, _, e) in enumerate(history)
            if e is not None
        )
    n = len(rows)
    columns = list(zip(*rows, strict=True)) if rows else [()] * 5
    table = pa.Table.from_pydict(
        {
            "user_id": pa.array(list(columns[0]), pa.string()),
            "product_id": pa.array(list(columns[1]), pa.string()),
            "order": pa.array(list(columns[2]), pa.int64()),
            "ts": pa.array(list(columns[3]), pa.int64()),
            "kind": pa.repeat(pa.scalar("interaction"), n),
            "weight": pa.array(list(columns[4]), pa.float32()),
        }
    )
    return users, table, list(items)
