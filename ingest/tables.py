"""Canonical graph tables: the typed hand-off between every stage.

Every source produces a :class:`GraphTables`; the Neo4j writer loads one, the Neo4j export
returns one, and training consumes one. On disk it is a folder of Parquet files (one per table)
plus ``manifest.json`` with row counts, a content fingerprint and provenance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest import schema
from ingest.atomic import atomic_folder
from ingest.errors import ValidationError

__all__ = ["FORMAT_VERSION", "TABLE_SCHEMAS", "GraphTables", "empty_table"]

FORMAT_VERSION = 1

_str = pa.string()

#: Column types of every canonical table. Key columns are never null.
TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "users": pa.schema([pa.field("id", _str, nullable=False)]),
    "products": pa.schema(
        [
            pa.field("id", _str, nullable=False),
            pa.field("title", _str),
            pa.field("description", _str),
            pa.field("price", pa.float64()),
        ]
    ),
    "categories": pa.schema(
        [
            pa.field("id", _str, nullable=False),
            pa.field("name", _str),
            pa.field("level", pa.int32()),
        ]
    ),
    "brands": pa.schema([pa.field("id", _str, nullable=False), pa.field("name", _str)]),
    "entities": pa.schema([pa.field("id", _str, nullable=False), pa.field("name", _str)]),
    # One row per interaction event. ``order`` is the 0-based position in the user's history
    # (chronological where the source has time), unique per user: (user_id, order) is the key.
    "interactions": pa.schema(
        [
            pa.field("user_id", _str, nullable=False),
            pa.field("product_id", _str, nullable=False),
            pa.field("order", pa.int64(), nullable=False),
            pa.field("ts", pa.int64()),
            pa.field("kind", _str),
            pa.field("weight", pa.float32()),
            pa.field("split", _str),
        ]
    ),
    "in_category": pa.schema(
        [
            pa.field("product_id", _str, nullable=False),
            pa.field("category_id", _str, nullable=False),
        ]
    ),
    "subcategory_of": pa.schema(
        [pa.field("child_id", _str, nullable=False), pa.field("parent_id", _str, nullable=False)]
    ),
    "made_by": pa.schema(
        [pa.field("product_id", _str, nullable=False), pa.field("brand_id", _str, nullable=False)]
    ),
    # Free-form KG facts (KGAT-style). head/tail labels are Product or Entity.
    "triples": pa.schema(
        [
            pa.field("head_label", _str, nullable=False),
            pa.field("head_id", _str, nullable=False),
            pa.field("relation", _str, nullable=False),
            pa.field("tail_label", _str, nullable=False),
            pa.field("tail_id", _str, nullable=False),
        ]
    ),
}

#: Columns that together identify a row of each table (used for sorting and duplicate checks).
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("id",),
    "products": ("id",),
    "categories": ("id",),
    "brands": ("id",),
    "entities": ("id",),
    "interactions": ("user_id", "order"),
    "in_category": ("product_id", "category_id"),
    "subcategory_of": ("child_id", "parent_id"),
    "made_by": ("product_id", "brand_id"),
    "triples": ("head_label", "head_id", "relation", "tail_label", "tail_id"),
}


def empty_table(name: str) -> pa.Table:
    """An empty table with the canonical schema of ``name``."""
    return TABLE_SCHEMAS[name].empty_table()


def _conform(name: str, table: pa.Table | None) -> pa.Table:
    target = TABLE_SCHEMAS[name]
    if table is None:
        return target.empty_table()
    missing = [f.name for f in target if f.name not in table.column_names]
    extra = [c for c in table.column_names if c not in target.names]
    if extra:
        raise ValidationError(name, f"unknown columns {extra}; expected {target.names}")
    columns = []
    for f in target:
        if f.name in missing:
            if not f.nullable:
                raise ValidationError(name, f"missing required column {f.name!r}")
            columns.append(pa.nulls(table.num_rows, f.type))
        else:
            col = table.column(f.name)
            try:
                columns.append(col.cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValidationError(name, f"column {f.name!r} is not {f.type}: {exc}") from exc
    return pa.Table.from_arrays(columns, schema=target)


@dataclass
class GraphTables:
    """The whole graph as typed Arrow tables (see :data:`TABLE_SCHEMAS`).

    Missing tables are empty. ``meta`` records provenance (source name, paths, options).
    """

    users: pa.Table = field(default_factory=lambda: empty_table("users"))
    products: pa.Table = field(default_factory=lambda: empty_table("products"))
    categories: pa.Table = field(default_factory=lambda: empty_table("categories"))
    brands: pa.Table = field(default_factory=lambda: empty_table("brands"))
    entities: pa.Table = field(default_factory=lambda: empty_table("entities"))
    interactions: pa.Table = field(default_factory=lambda: empty_table("interactions"))
    in_category: pa.Table = field(default_factory=lambda: empty_table("in_category"))
    subcategory_of: pa.Table = field(default_factory=lambda: empty_table("subcategory_of"))
    made_by: pa.Table = field(default_factory=lambda: empty_table("made_by"))
    triples: pa.Table = field(default_factory=lambda: empty_table("triples"))
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in TABLE_SCHEMAS:
            setattr(self, name, _conform(name, getattr(self, name)))

    # ------------------------------------------------------------------ access
    def table(self, name: str) -> pa.Table:
        """The table called ``name`` (one of :data:`TABLE_SCHEMAS`)."""
        if name not in TABLE_SCHEMAS:
            raise KeyError(f"no table {name!r}; tables are {list(TABLE_SCHEMAS)}")
        return getattr(self, name)

    def counts(self) -> dict[str, int]:
        """Row count per table."""
        return {name: self.table(name).num_rows for name in TABLE_SCHEMAS}

    @classmethod
    def from_pydict(cls, data: Mapping[str, Mapping[str, list[Any]]], **meta: Any) -> GraphTables:
        """Build from ``{table: {column: values}}``; absent tables and nullable columns are empty."""
        kwargs: dict[str, pa.Table] = {}
        for name, cols in data.items():
            if name not in TABLE_SCHEMAS:
                raise KeyError(f"no table {name!r}; tables are {list(TABLE_SCHEMAS)}")
            kwargs[name] = pa.table(dict(cols))
        return cls(**kwargs, meta=dict(meta))

    def sorted(self) -> GraphTables:
        """A copy with every table sorted by its key columns (for comparisons)."""
        kwargs = {
            name: self.table(name).sort_by([(c, "ascending") for c in TABLE_KEYS[name]])
            for name in TABLE_SCHEMAS
        }
        return GraphTables(**kwargs, meta=dict(self.meta))

    def equals(self, other: GraphTables) -> bool:
        """True when both hold the same rows in every table, whatever the row order."""
        a, b = self.sorted(), other.sorted()
        return all(a.table(n).equals(b.table(n)) for n in TABLE_SCHEMAS)

    # -------------------------------------------------------------- validation
    def validate(self) -> GraphTables:
        """Check keys and references; raise :class:`ValidationError` naming table, row and value.

        Rules: node keys are non-null and unique; every edge endpoint names an existing node;
        (user_id, order) is unique; a category has at most one parent; triple labels are
        Product or Entity.

        Returns:
            ``self``, so calls can be chained.
        """
        ids: dict[str, pa.Array] = {}
        for node in schema.NODE_TYPES:
            table = self.table(node.table)
            col = table.column(node.key).combine_chunks()
            _no_nulls(node.table, node.key, col)
            _unique(node.table, table, (node.key,))
            ids[node.label] = col
        for edge in schema.EDGE_TYPES:
            table = self.table(edge.table)
            for col_name, node in ((edge.src_col, edge.src), (edge.dst_col, edge.dst)):
                _references(edge.table, col_name, table.column(col_name), ids[node.label], node)
        _unique("interactions", self.interactions, ("user_id", "order"))
        _unique("subcategory_of", self.subcategory_of, ("child_id",), what="a second parent")
        _unique("in_category", self.in_category, ("product_id", "category_id"))
        _unique("made_by", self.made_by, ("product_id", "brand_id"))
        for side in ("head", "tail"):
            labels = self.triples.column(f"{side}_label")
            bad = pc.invert(pc.is_in(labels, value_set=pa.array(schema.TRIPLE_LABELS)))
            _first_bad(
                "triples", bad, labels, f"{side}_label must be one of {schema.TRIPLE_LABELS}"
            )
            for label in schema.TRIPLE_LABELS:
                mask = pc.equal(labels, label)
                keys = self.triples.column(f"{side}_id").filter(mask)
                node = schema.PRODUCT if label == schema.PRODUCT.label else schema.ENTITY
                _references("triples", f"{side}_id", keys, ids[label], node)
        return self

    # -------------------------------------------------------------------- disk
    def fingerprint(self) -> str:
        """SHA-256 of the sorted table contents: equal graphs have equal fingerprints."""
        digest = hashlib.sha256()
        for name in TABLE_SCHEMAS:
            table = self.table(name).sort_by([(c, "ascending") for c in TABLE_KEYS[name]])
            digest.update(name.encode())
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            digest.update(sink.getvalue().to_pybytes())
        return digest.hexdigest()

    def save(self, folder: str | Path) -> Path:
        """Write every table as Parquet plus ``manifest.json``; atomic per folder.

        The tables are written into a temporary sibling folder that replaces ``folder`` only once
        complete, so an interrupted save never leaves a half-written folder behind.
        """
        folder = Path(folder)
        manifest = {
            "format_version": FORMAT_VERSION,
            "counts": self.counts(),
            "fingerprint": self.fingerprint(),
            "meta": self.meta,
        }
        with atomic_folder(folder) as tmp:
            for name in TABLE_SCHEMAS:
                pq.write_table(self.table(name), tmp / f"{name}.parquet")
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> GraphTables:
        """Read tables saved by :meth:`save`."""
        folder = Path(folder)
        manifest_path = folder / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"{folder} has no manifest.json: not a kgrec tables folder")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{manifest_path}: format_version {manifest.get('format_version')!r}, "
                f"this kgrec reads {FORMAT_VERSION}"
            )
        kwargs = {name: pq.read_table(folder / f"{name}.parquet") for name in TABLE_SCHEMAS}
        return cls(**kwargs, meta=manifest.get("meta", {}))


def _no_nulls(table: str, column: str, col: pa.Array | pa.ChunkedArray) -> None:
    if col.null_count:
        row = pc.index(pc.is_null(col), True).as_py()
        raise ValidationError(table, f"null {column}", row=row)
    if pa.types.is_string(col.type):
        empty = pc.equal(pc.utf8_length(col), 0)
        if pc.any(empty).as_py():
            raise ValidationError(table, f"empty {column}", row=pc.index(empty, True).as_py())


def _unique(
    table_name: str, table: pa.Table, cols: tuple[str, ...], what: str = "a duplicate key"
) -> None:
    if table.num_rows == 0:
        return
    grouped = table.select(list(cols)).group_by(list(cols)).aggregate([([], "count_all")])
    dup = pc.greater(grouped.column("count_all"), 1)
    if pc.any(dup).as_py():
        first = grouped.filter(dup).slice(0, 1).to_pylist()[0]
        del first["count_all"]
        key = tuple(first[c] for c in cols)
        mask = pc.equal(table.column(cols[0]), key[0])
        for c, v in zip(cols[1:], key[1:], strict=True):
            mask = pc.and_(mask, pc.equal(table.column(c), v))
        rows = pc.indices_nonzero(mask).to_pylist()
        raise ValidationError(
            table_name, f"{what} {dict(zip(cols, key, strict=True))}", row=rows[1]
        )


def _references(
    table: str,
    column: str,
    keys: pa.ChunkedArray | pa.Array,
    known: pa.Array,
    node: schema.NodeType,
) -> None:
    _no_nulls(table, column, keys)
    bad = pc.invert(pc.is_in(keys, value_set=known))
    _first_bad(table, bad, keys, f"{column} names an unknown {node.label}")


def _first_bad(table: str, mask: Any, values: Any, message: str) -> None:
    if len(mask) and pc.any(mask).as_py():
        row = pc.index(mask, True).as_py()
        raise ValidationError(table, message, row=row, value=values[row].as_py())
