"""Amazon 2018 review data in the processed-JSON layout (P5 / LETTER / LC-Rec convention).

A dataset folder holds two files named after the dataset (e.g. ``Scientific``):

``<Name>.item.json``
    ``{"<item_id>": {"title": str, "description": str, "brand": str, "categories": str}}``.
    ``title`` is required and must not be empty; the other fields may be missing, null or empty.
    Text fields follow :mod:`ingest.sources.text` (at most 128 KiB, valid Unicode). ``categories`` is
    the Amazon category path: joined with ``,`` in the 2018 releases (names themselves may
    contain ``", "``, so the path is split on a comma *not* followed by a space), with ``", "``
    in the 2014 ones, or with ``" > "``. ``category_separator`` names it; by default the
    separator most strings use is taken (:mod:`ingest.sources.category_paths`, which also
    says how ``", "``-joined paths are resolved with the names of the whole file).
``<Name>.inter.json``
    ``{"<user_id>": [item_id, ...]}``, each list in chronological order; item ids are integers
    naming keys of the item file.

Mapping to :class:`~ingest.tables.GraphTables`:

* products: id = item key, title and description HTML-unescaped and stripped (empty = null).
* brands: id = name = the brand string, unescaped and stripped; ``made_by`` product -> brand.
* categories: one node per path prefix, id = the names joined with ``" > "``, name = the last
  name, level = depth (root = 1); ``subcategory_of`` child -> parent; ``in_category`` links a
  product to its leaf category only.
* users: id = user key; interactions: ``order`` = position in the user's list (items rejected
  in ``--rejects`` mode keep their positions, so a later clean load numbers the same), ``ts`` null,
  ``kind`` ``"interaction"``, ``weight`` 1.0, ``split`` null.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from ingest.errors import SourceError
from ingest.rejects import Rejects
from ingest.sources.category_paths import (
    category_tree,
    check_separator,
    detect_separator,
    split_path,
)
from ingest.sources.common import edges_table, find_dataset_name
from ingest.sources.text import field_problem, read_utf8
from ingest.tables import GraphTables

__all__ = ["read_amazon", "split_category_path"]

_WS = re.compile(r"[ \t\n\r]*")
_TEXT_FIELDS = ("description", "brand", "categories")


def split_category_path(text: str) -> list[str]:
    """Split an Amazon 2018 category string (``,`` separator) into cleaned names.

    ``"Industrial &amp; Scientific,Test, Measure & Inspect,Gauges"`` gives
    ``["Industrial & Scientific", "Test, Measure & Inspect", "Gauges"]``: split on ``,`` not
    followed by a space, HTML-unescape and strip each name, drop empty names.
    """
    return split_path(text, ",")


def read_amazon(
    folder: str | Path,
    name: str | None = None,
    *,
    category_separator: str | None = None,
    rejects: Rejects | None = None,
    show_progress: bool = True,
) -> GraphTables:
    """Read ``<name>.item.json`` and ``<name>.inter.json`` from ``folder``.

    Args:
        folder: the dataset folder.
        name: the file prefix (e.g. ``"Scientific"``); ``None`` finds the single
            ``*.item.json`` in ``folder``.
        category_separator: how category paths are joined, ``","``, ``", "`` or ``" > "``;
            ``None`` takes the one most strings use. The one used is in
            ``tables.meta["category_separator"]``.
        rejects: where bad records go in skip mode; ``None`` raises on the first.
        show_progress: show tqdm progress bars.

    Returns:
        Validated tables with users, products, brands, categories, their edges and interactions.

    Raises:
        SourceError: a missing, empty or malformed file, or (unless skipped) a bad record.
        ValueError: an unknown ``category_separator``.
    """
    check_separator(category_separator)
    folder = Path(folder)
    rejects = rejects if rejects is not None else Rejects("raise")
    if name is None:
        name = find_dataset_name(folder, ".item.json")
    item_path = folder / f"{name}.item.json"
    inter_path = folder / f"{name}.inter.json"

    products, brand_of, raw_categories = _read_items(item_path, rejects, show_progress)
    separator = category_separator or detect_separator(raw_categories.values())
    category_of, tree = category_tree(raw_categories, separator)
    users, interactions = _read_interactions(inter_path, products, rejects, show_progress)

    brands = sorted(set(brand_of.values()))
    tables = GraphTables(
        users=pa.Table.from_pydict({"id": pa.array(users, pa.string())}),
        products=pa.Table.from_pydict(products),
        brands=pa.Table.from_pydict({"id": pa.array(brands, pa.string()), "name": brands}),
        categories=tree.categories(),
        subcategory_of=tree.subcategory_of(),
        made_by=edges_table(brand_of, "product_id", "brand_id"),
        in_category=edges_table(category_of, "product_id", "category_id"),
        interactions=interactions,
        meta={
            "source": "amazon",
            "path": str(folder),
            "name": name,
            "category_separator": separator,
        },
    )
    return tables.validate()


def _read_items(
    path: Path, rejects: Rejects, show_progress: bool
) -> tuple[dict[str, list[Any]], dict[str, str], dict[str, str]]:
    products: dict[str, list[Any]] = {"id": [], "title": [], "description": []}
    brand_of: dict[str, str] = {}
    raw_categories: dict[str, str] = {}
    seen: set[str] = set()
    records = tqdm(
        _iter_json_object(path), desc=path.name, unit=" items", disable=not show_progress
    )
    for key, record, line in records:
        problem = _item_problem(key, record, seen)
        if problem is not None:
            reason, value = problem
            rejects.report(SourceError(path, reason, line=line, record=key, value=value), reason)
            continue
        seen.add(key)
        products["id"].append(key)
        products["title"].append(_clean(record["title"]))
        products["description"].append(_clean(record.get("description")))
        brand = _clean(record.get("brand"))
        if brand is not None:
            brand_of[key] = brand
        raw_categories[key] = record.get("categories") or ""
    if not seen and not rejects.count:
        raise SourceError(path, "no item records")
    return products, brand_of, raw_categories


def _item_problem(key: str, record: Any, seen: set[str]) -> tuple[str, Any] | None:
    """The (reason, value) that makes an item record unusable, or ``None`` when it is fine."""
    if not key.strip():
        return "empty item id", key
    if (problem := field_problem(key)) is not None:
        return f"item id is {problem}", key
    if key in seen:
        return "duplicate item id", key
    if not isinstance(record, dict):
        return "item record is not an object", record
    if record.get("title") is None:
        return "item record has no 'title'", record
    for field in ("title", *_TEXT_FIELDS):
        value = record.get(field)
        if value is not None and not isinstance(value, str):
            return f"item field {field!r} is not a string", value
        if value is not None and (problem := field_problem(value)) is not None:
            return f"item field {field!r} is {problem}", value
    if _clean(record["title"]) is None:  # a required field: empty is as bad as missing
        return "item record has an empty 'title'", record["title"]
    return None


def _user_problem(user: str, items: Any, seen: set[str]) -> tuple[str, Any] | None:
    """The (reason, value) that makes a user record unusable, or ``None`` when it is fine."""
    if not user.strip():
        return "empty user id", user
    if (problem := field_problem(user)) is not None:
        return f"user id is {problem}", user
    if user in seen:
        return "duplicate user id", user
    if not isinstance(items, list):
        return "interaction list is not a list", items
    return None


def _read_interactions(
    path: Path, products: dict[str, list[Any]], rejects: Rejects, show_progress: bool
) -> tuple[list[str], pa.Table]:
    known = set(products["id"])
    users: list[str] = []
    seen: set[str] = set()
    user_col: list[str] = []
    item_col: list[str] = []
    order_col: list[int] = []
    records = tqdm(
        _iter_json_object(path), desc=path.name, unit=" users", disable=not show_progress
    )
    for user, items, line in records:
        problem = _user_problem(user, items, seen)
        if problem is not None:
            reason, value = problem
            rejects.report(SourceError(path, reason, line=line, record=user, value=value), reason)
            continue
        seen.add(user)
        users.append(user)
        for position, item in enumerate(items):
            reason = None
            if type(item) is not int:  # bool is an int subclass; JSON true is not an item id
                reason = "item id is not an integer"
            elif str(item) not in known:
                reason = "unknown product"
            if reason is not None:
                message = f"{reason} (position {position})"
                rejects.report(
                    SourceError(path, message, line=line, record=user, value=item), reason
                )
                continue
            user_col.append(user)
            item_col.append(str(item))
            order_col.append(position)  # the position in the source list, rejected items too
    if not users and not rejects.count:
        raise SourceError(path, "no user records")
    n = len(user_col)
    table = pa.Table.from_pydict(
        {
            "user_id": pa.array(user_col, pa.string()),
            "product_id": pa.array(item_col, pa.string()),
            "order": pa.array(order_col, pa.int64()),
            "kind": pa.repeat(pa.scalar("interaction"), n),
            "weight": pa.repeat(pa.scalar(1.0, pa.float32()), n),
        }
    )
    return users, table


def _iter_json_object(path: Path) -> Iterator[tuple[str, Any, int]]:
    """Yield ``(key, value, line)`` for each member of the JSON object that is the whole file.

    Members are decoded one at a time so each can be traced to the 1-based line it starts on;
    duplicate keys are all yielded (a plain ``json.load`` would silently keep the last).

    Raises:
        SourceError: the file is missing, empty, not UTF-8, not valid JSON, or not an object.
    """
    text = read_utf8(path)
    pos = _WS.match(text).end()
    if pos == len(text):
        raise SourceError(path, "empty file")
    decoder = json.JSONDecoder()
    line, counted = 1, 0
    try:
        _expect(text, pos, "{", "top level is not a JSON object")
        pos = _WS.match(text, pos + 1).end()
        if text.startswith("}", pos):
            pos += 1
        else:
            while True:
                _expect(text, pos, '"', "Expecting property name enclosed in double quotes")
                start = pos
                key, pos = json.decoder.scanstring(text, pos + 1)
                pos = _WS.match(text, pos).end()
                _expect(text, pos, ":", "Expecting ':' delimiter")
                pos = _WS.match(text, pos + 1).end()
                line += text.count("\n", counted, start)
                counted = start
                try:
                    value, pos = decoder.raw_decode(text, pos)
                except RecursionError:
                    raise SourceError(
                        path, "JSON nested too deeply", line=line, record=key
                    ) from None
                yield key, value, line
                pos = _WS.match(text, pos).end()
                if text.startswith(",", pos):
                    pos = _WS.match(text, pos + 1).end()
                    continue
                _expect(text, pos, "}", "Expecting ',' delimiter")
                pos += 1
                break
        pos = _WS.match(text, pos).end()
        if pos != len(text):
            raise json.JSONDecodeError("Extra data", text, pos)
    except json.JSONDecodeError as exc:
        snippet = exc.doc[exc.pos : exc.pos + 40]
        raise SourceError(
            path, f"malformed JSON: {exc.msg} (column {exc.colno})", line=exc.lineno, value=snippet
        ) from None


def _expect(text: str, pos: int, char: str, message: str) -> None:
    if not text.startswith(char, pos):
        raise json.JSONDecodeError(message, text, pos)


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = html.unescape(value).strip()
    return value or None
