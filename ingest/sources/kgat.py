"""KGAT / KGIN benchmark folders (``Data/<dataset>/`` of the KGAT repository).

Files (all space-separated, ids are the ``remap`` integers):

``train.txt``, ``test.txt``
    ``user item item ...`` per line; a line may hold the user alone. At least one of the two
    must exist.
``kg_final.txt`` (or ``kg_final.txt.zip`` holding it), optional
    ``head relation tail`` per line.
``item_list.txt``, optional
    header, then ``org_id remap_id freebase_id``.
``entity_list.txt``, ``relation_list.txt``, ``user_list.txt``, optional
    header, then ``org_id remap_id`` (the org id may contain spaces or be empty).

Mapping to :class:`~ingest.tables.GraphTables`:

* users: the remap ids (as strings) of every line of train/test and every row of
  ``user_list.txt``.
* products: items ``0 .. n_items-1`` (as strings), where ``n_items`` is the number of rows of
  ``item_list.txt``; without it, the items seen in train/test plus KG ids below
  ``max item id + 1``. Titles are null.
* KGAT numbers entities so that entity ``i < n_items`` *is* item ``i``: a KG head or tail below
  ``n_items`` is a ``Product``, any other an ``Entity`` (id = the number, name = its
  ``entity_list.txt`` org id when present).
* triples: relation = the ``relation_list.txt`` org id, or ``r<id>`` without that file.
* interactions: train lines then test lines; ``order`` runs per user across both;
  ``split`` ``"train"``/``"test"``, ``kind`` ``"interaction"``, ``weight`` 1.0, ``ts`` null.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from ingest import schema
from ingest.errors import SourceError
from ingest.rejects import Rejects
from ingest.sources.text import decode_utf8, field_problem, read_utf8
from ingest.tables import GraphTables, empty_table

__all__ = ["read_kgat"]

#: A line of non-negative integers that fit in int64 (at most 18 digits).
_INTEGERS = re.compile(r"[ \t]*[0-9]{1,18}(?:[ \t]+[0-9]{1,18})*[ \t\r]*", re.ASCII)
_ROW = r"[ \t]*[0-9]{1,18}[ \t]+[0-9]{1,18}[ \t]+[0-9]{1,18}[ \t\r]*"
#: A whole kg_final.txt with three integers on every line (no blank lines).
_KG_FILE = re.compile(f"(?:{_ROW}\n)*(?:{_ROW})?", re.ASCII)
_SPLITS = ("train", "test")


def read_kgat(
    folder: str | Path, *, rejects: Rejects | None = None, show_progress: bool = True
) -> GraphTables:
    """Read a KGAT-layout folder.

    Args:
        folder: the dataset folder (e.g. ``Data/amazon-book``).
        rejects: where bad lines go in skip mode; ``None`` raises on the first.
        show_progress: show tqdm progress bars.

    Returns:
        Validated tables: users, products, entities, interactions and triples.

    Raises:
        SourceError: neither train.txt nor test.txt exists, a file is empty or its list ids are
            inconsistent, or (unless skipped) a line is malformed.
    """
    folder = Path(folder)
    rejects = rejects if rejects is not None else Rejects("raise")
    split_files = [(s, folder / f"{s}.txt") for s in _SPLITS if (folder / f"{s}.txt").exists()]
    if not split_files:
        raise SourceError(folder, "neither train.txt nor test.txt found")

    item_ids = _optional_list(folder / "item_list.txt", rejects, item_list=True)
    n_items: int | None = None
    if item_ids is not None:
        n_items = len(item_ids)
        if set(item_ids) != set(range(n_items)):
            raise SourceError(folder / "item_list.txt", f"remap ids are not 0..{n_items - 1}")

    interactions = _Interactions()
    for split, path in split_files:
        interactions.read(path, split, n_items, rejects, show_progress)
    if n_items is None:
        n_items = interactions.max_item + 1

    triples, entity_ids, kg_items = _read_kg(folder, n_items, rejects, show_progress)

    user_list = _optional_list(folder / "user_list.txt", rejects) or {}
    user_ids = _distinct(
        np.asarray(interactions.line_users), np.fromiter(user_list, np.int64, len(user_list))
    )
    if item_ids is not None:
        product_ids = np.arange(n_items, dtype=np.int64)
    else:
        product_ids = _distinct(interactions.items(), kg_items)

    entity_names: dict[int, str | None] = {}
    if len(entity_ids):
        entity_names = _optional_list(folder / "entity_list.txt", rejects) or {}
    tables = GraphTables(
        users=pa.Table.from_pydict({"id": _as_str(user_ids)}),
        products=pa.Table.from_pydict({"id": _as_str(product_ids)}),
        entities=pa.Table.from_pydict(
            {
                "id": _as_str(entity_ids),
                "name": pa.array([entity_names.get(int(i)) for i in entity_ids], pa.string()),
            }
        ),
        interactions=interactions.table(),
        triples=triples,
        meta={"source": "kgat", "path": str(folder), "n_items": int(n_items)},
    )
    return tables.validate()


class _Interactions:
    """Accumulates interaction lines of train.txt and test.txt."""

    def __init__(self) -> None:
        self.line_users: list[int] = []
        self._items: list[int] = []
        self._line_len: list[int] = []
        self._orders: list[int] = []
        self._count: dict[int, int] = {}
        self._split_rows: list[tuple[str, int]] = []
        self.max_item = -1

    def read(
        self, path: Path, split: str, n_items: int | None, rejects: Rejects, show_progress: bool
    ) -> None:
        """Parse one split file and append its interactions."""
        before = len(self._items)
        lines = _read_text(path).splitlines()
        for lineno, line in enumerate(
            tqdm(lines, desc=path.name, unit=" lines", disable=not show_progress), 1
        ):
            if not _INTEGERS.fullmatch(line):
                if line.strip():
                    _report_bad_token(path, lineno, line, rejects)
                continue
            ids = list(map(int, line.split()))
            user, items = ids[0], ids[1:]
            # positions count every item of the line, rejected ones too: a later load of the
            # corrected file gives each item the same order
            start = self._count.get(user, 0)
            self._count[user] = start + len(items)
            positions = range(start, start + len(items))
            if n_items is not None and items and max(items) >= n_items:
                kept = self._known_items(path, lineno, items, n_items, rejects)
                positions = [start + p for p, item in enumerate(items) if item < n_items]
                items = kept
            self.line_users.append(user)
            self._line_len.append(len(items))
            self._orders.extend(positions)
            self._items.extend(items)
        if len(self._items) > before:
            self.max_item = max(self.max_item, max(self._items[before:]))
        self._split_rows.append((split, len(self._items) - before))

    @staticmethod
    def _known_items(
        path: Path, lineno: int, items: list[int], n_items: int, rejects: Rejects
    ) -> list[int]:
        for item in items:
            if item >= n_items:
                message = f"unknown product (item_list.txt has {n_items} items)"
                error = SourceError(path, message, line=lineno, value=item)
                rejects.report(error, "unknown product")
        return [item for item in items if item < n_items]

    def items(self) -> np.ndarray:
        """Item id of every interaction, shape (n,)."""
        return np.asarray(self._items, dtype=np.int64)

    def table(self) -> pa.Table:
        """The ``interactions`` table."""
        lens = np.asarray(self._line_len, dtype=np.int64)
        n = int(lens.sum())
        users = np.repeat(np.asarray(self.line_users, dtype=np.int64), lens)
        order = np.asarray(self._orders, dtype=np.int64)
        split = pa.chunked_array(
            [pa.repeat(pa.scalar(s), k) for s, k in self._split_rows], type=pa.string()
        )
        return pa.Table.from_pydict(
            {
                "user_id": _as_str(users),
                "product_id": _as_str(self.items()),
                "order": pa.array(order),
                "kind": pa.repeat(pa.scalar("interaction"), n),
                "weight": pa.repeat(pa.scalar(1.0, pa.float32()), n),
                "split": split,
            }
        )


def _read_kg(
    folder: Path, n_items: int, rejects: Rejects, show_progress: bool
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Triples table, sorted non-item entity ids, sorted item ids used by the KG."""
    plain, zipped = folder / "kg_final.txt", folder / "kg_final.txt.zip"
    empty = np.empty(0, dtype=np.int64)
    if plain.exists():
        path, text = plain, _read_text(plain)
    elif zipped.exists():
        path, text = _read_zipped_text(zipped, "kg_final.txt")
    else:
        return empty_table("triples"), empty, empty
    rows, lines = _parse_kg(path, text, rejects, show_progress)

    relation_names = _optional_list(folder / "relation_list.txt", rejects)
    if relation_names is not None and len(rows):
        known = np.isin(rows[:, 1], np.fromiter(relation_names, np.int64, len(relation_names)))
        for i in np.flatnonzero(~known):
            message = "relation id not in relation_list.txt"
            error = SourceError(path, message, line=int(lines[i]), value=int(rows[i, 1]))
            rejects.report(error, "unknown relation")
        rows = rows[known]
    if not len(rows):
        raise SourceError(path, "no triples")

    heads, relations, tails = rows[:, 0], rows[:, 1], rows[:, 2]
    relation_col = _relation_column(relations, relation_names or {})
    product, entity = schema.PRODUCT.label, schema.ENTITY.label
    triples = pa.Table.from_pydict(
        {
            "head_label": _labels(heads < n_items, product, entity),
            "head_id": _as_str(heads),
            "relation": relation_col,
            "tail_label": _labels(tails < n_items, product, entity),
            "tail_id": _as_str(tails),
        }
    )
    used = _distinct(heads, tails)
    return triples, used[used >= n_items], used[used < n_items]


def _relation_column(relations: np.ndarray, names: dict[int, str | None]) -> pa.Array:
    """Relation name per triple: its relation_list.txt org id, else ``r<id>``."""
    uniq, index = np.unique(relations, return_inverse=True)
    labels = [names.get(int(r)) or f"r{r}" for r in uniq]
    return pa.DictionaryArray.from_arrays(
        pa.array(index.astype(np.int32)), pa.array(labels, pa.string())
    ).cast(pa.string())


def _parse_kg(
    path: Path, text: str, rejects: Rejects, show_progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """KG rows, shape (n, 3) as (head, relation, tail), and their 1-based lines, shape (n,)."""
    if _KG_FILE.fullmatch(text):  # fast path: every line is three integers
        rows = np.fromstring(text, dtype=np.int64, sep=" ").reshape(-1, 3)
        return rows, np.arange(1, len(rows) + 1)
    values: list[int] = []
    lines: list[int] = []
    for lineno, line in enumerate(
        tqdm(text.splitlines(), desc=path.name, unit=" triples", disable=not show_progress), 1
    ):
        if not _INTEGERS.fullmatch(line):
            if line.strip():
                _report_bad_token(path, lineno, line, rejects)
            continue
        tokens = line.split()
        if len(tokens) != 3:
            message = f"expected 3 integers 'head relation tail', got {len(tokens)}"
            rejects.report(SourceError(path, message, line=lineno, value=line), "not a triple")
            continue
        values.extend(map(int, tokens))
        lines.append(lineno)
    return np.asarray(values, dtype=np.int64).reshape(-1, 3), np.asarray(lines, dtype=np.int64)


def _distinct(*arrays: np.ndarray) -> np.ndarray:
    """Sorted distinct values of non-negative id arrays (a bitmap when the ids are dense)."""
    values = np.concatenate([np.asarray(a, dtype=np.int64) for a in arrays])
    if not len(values):
        return values
    top = int(values.max())
    if top > 4 * len(values) + 1_000_000:
        return np.unique(values)
    seen = np.zeros(top + 1, dtype=bool)
    seen[values] = True
    return np.flatnonzero(seen).astype(np.int64)


def _optional_list(
    path: Path, rejects: Rejects, *, item_list: bool = False
) -> dict[int, str | None] | None:
    """``{remap_id: org_id}`` of a KGAT id-map file (header line skipped), or ``None`` if absent.

    ``item_list.txt`` rows are ``org_id remap_id freebase_id``; the others ``org_id remap_id``,
    where the org id may contain spaces (so the remap id is the last field there).
    """
    if not path.exists():
        return None
    lines = _read_text(path).splitlines()
    ids: dict[int, str | None] = {}
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        if item_list:
            fields = line.split()
            org, remap = fields[0], fields[1] if len(fields) > 1 else ""
        else:
            org, _, remap = line.rstrip().rpartition(" ")
        if not (remap.isascii() and remap.isdigit() and len(remap) <= 18):
            error = SourceError(
                path, "remap id is not a non-negative integer of at most 18 digits",
                line=lineno, value=line,
            )  # fmt: skip
            rejects.report(error, "bad remap id")
            continue
        if (problem := field_problem(org)) is not None:
            error = SourceError(path, f"org id is {problem}", line=lineno, value=org)
            rejects.report(error, "bad org id")
            continue
        if int(remap) in ids:
            error = SourceError(path, "duplicate remap id", line=lineno, value=remap)
            rejects.report(error, "duplicate remap id")
            continue
        ids[int(remap)] = org.strip() or None
    return ids


def _read_text(path: Path) -> str:
    text = read_utf8(path)
    if not text.strip():
        raise SourceError(path, "empty file")
    return text


def _read_zipped_text(path: Path, member: str) -> tuple[Path, str]:
    """Text of ``member`` inside the zip ``path``, with ``zip!member`` as the path to report."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if Path(n).name == member]
            if len(names) != 1:
                raise SourceError(path, f"expected one {member} inside", value=archive.namelist())
            data = archive.read(names[0])
    except zipfile.BadZipFile as exc:
        raise SourceError(path, f"not a zip file: {exc}") from None
    shown = Path(f"{path}!{names[0]}")
    text = decode_utf8(data, shown)
    if not text.strip():
        raise SourceError(shown, "empty file")
    return shown, text


def _report_bad_token(path: Path, lineno: int, line: str, rejects: Rejects) -> None:
    tokens = line.split()
    bad = next((t for t in tokens if not (t.isascii() and t.isdigit() and len(t) <= 18)), line)
    error = SourceError(path, "not a non-negative integer id", line=lineno, value=bad)
    rejects.report(error, "not an integer")


def _as_str(ids: np.ndarray) -> pa.Array:
    return pa.array(ids, pa.int64()).cast(pa.string())


def _labels(is_product: np.ndarray, product: str, entity: str) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.where(is_product, 0, 1).astype(np.int8)), pa.array([product, entity])
    ).cast(pa.string())
