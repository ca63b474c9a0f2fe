"""Canonical tables as the CSV files of Neo4j's offline importer (``neo4j-admin database import``).

One file per node table and per relationship table, each with the importer's typed header, so
that the imported graph is the one :func:`ingest.neo4j_writer.write_graph` writes: the same
labels and relationship types (from :mod:`ingest.schema`), the same properties with the same
Cypher types (integers as ``long``, floats as ``double``, as the Python driver sends them),
``INTERACTED`` carrying its user's key as ``user_id``, and KG triples typed by
:func:`ingest.schema.relation_type_name` with the original name in ``relation``.

A null value is an unquoted empty field, so the importer sets no property (as a load over Bolt
skips nulls); an empty string is ``""`` and stays an empty string. Tables are read and written
one record batch at a time, from a :class:`GraphTables` or straight from a tables folder's
Parquet files, so memory holds one batch whatever the size of the graph.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingest import schema
from ingest.tables import TABLE_SCHEMAS, GraphTables

__all__ = ["ImportFiles", "write_import_csv"]

#: Rows converted and written at a time.
_BATCH_ROWS = 200_000

#: Cypher type of each property column in the importer's header (the driver sends Python ints
#: as 64-bit integers and floats as doubles; the importer must store the same).
_TYPES: dict[pa.DataType, str] = {
    pa.int32(): "long",
    pa.int64(): "long",
    pa.float32(): "double",
    pa.float64(): "double",
}


@dataclass
class ImportFiles:
    """The CSV files of one import, as ``neo4j-admin database import full`` takes them.

    Attributes:
        nodes: ``(label, file)`` per node file.
        relationships: ``(type or None, file)`` per relationship file; ``None`` when the file
            names each row's type in a ``:TYPE`` column (KG triples).
        multiline: files with a value that spans lines (the importer must be told).
        rows: rows written per file name.
    """

    nodes: list[tuple[str, Path]] = field(default_factory=list)
    relationships: list[tuple[str | None, Path]] = field(default_factory=list)
    multiline: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def node_rows(self) -> int:
        return sum(self.rows[p.name] for _, p in self.nodes)

    @property
    def relationship_rows(self) -> int:
        return sum(self.rows[p.name] for _, p in self.relationships)

    def arguments(self) -> list[str]:
        """The importer's ``--nodes`` / ``--relationships`` / ``--multiline-fields`` options."""
        args = [f"--nodes={label}={path}" for label, path in self.nodes]
        args += [
            f"--relationships={rel}={path}" if rel else f"--relationships={path}"
            for rel, path in self.relationships
        ]
        if self.multiline:
            args += [
                "--multiline-fields-format=v2",
                "--multiline-fields=" + ",".join(str(p) for p in self.multiline),
            ]
        return args


def _batches(source: GraphTables | Path, name: str) -> Iterator[pa.RecordBatch]:
    if isinstance(source, GraphTables):
        yield from source.table(name).to_batches(max_chunksize=_BATCH_ROWS)
        return
    parquet = pq.ParquetFile(source / f"{name}.parquet")
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
        # a folder written by another writer may order or type columns differently: conform
        yield pa.RecordBatch.from_arrays(
            [batch.column(f.name).cast(f.type) for f in TABLE_SCHEMAS[name]],
            schema=TABLE_SCHEMAS[name],
        )


def _text(column: pa.Array) -> pa.Array:
    """Floats as text the importer parses back to the same double (``NaN``, ``Infinity``)."""
    if not pa.types.is_floating(column.type):
        return column
    text = pc.cast(pc.cast(column, pa.float64()), pa.string())
    return pc.replace_substring_regex(
        pc.replace_substring_regex(text, r"^nan$", "NaN"), r"inf$", "Infinity"
    )


def _has_newline(column: pa.Array) -> bool:
    if not pa.types.is_string(column.type) or len(column) == 0:
        return False
    return bool(pc.any(pc.match_substring_regex(column, r"[\r\n]")).as_py())


class _CsvFile:
    """One headed CSV file, appended batch by batch."""

    _OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed")

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.rows = 0
        self.multiline = False
        self._sink = path.open("wb")
        self._sink.write((",".join(header) + "\n").encode())
        self._names = [f"c{i}" for i in range(len(header))]

    def write(self, columns: list[pa.Array]) -> None:
        self.multiline = self.multiline or any(_has_newline(c) for c in columns)
        batch = pa.RecordBatch.from_arrays([_text(c) for c in columns], names=self._names)
        pacsv.write_csv(batch, self._sink, self._OPTIONS)
        self.rows += batch.num_rows

    def close(self, files: ImportFiles) -> bool:
        """Finish the file; an empty one is removed (False), a written one is recorded."""
        self._sink.close()
        if self.rows == 0:
            self.path.unlink()
            return False
        files.rows[self.path.name] = self.rows
        if self.multiline:
            files.multiline.append(self.path)
        return True


def _prop(name: str, kind: pa.DataType) -> str:
    cypher = _TYPES.get(kind)
    return f"{name}:{cypher}" if cypher else name


def _zeros(n: int) -> pa.Array:
    """The ``seq`` column of batch-loaded rows (:class:`ingest.events.DirectWrites` claims
    only rows without one)."""
    return pa.repeat(pa.scalar(0, pa.int64()), n)


def _write_nodes(source: GraphTables | Path, folder: Path, files: ImportFiles, bar: Any) -> None:
    for node in schema.NODE_TYPES:
        props = [f for f in TABLE_SCHEMAS[node.table] if f.name != node.key]
        header = [f"{node.key}:ID({node.label})", *(_prop(f.name, f.type) for f in props)]
        sequenced = node is schema.PRODUCT  # seq 0: batch-loaded, as the writer marks it
        out = _CsvFile(folder / f"nodes-{node.table}.csv", header + ["seq:long"] * sequenced)
        for batch in _batches(source, node.table):
            seq = [_zeros(batch.num_rows)] if sequenced else []
            out.write([batch.column(node.key), *(batch.column(f.name) for f in props), *seq])
            bar.update(batch.num_rows)
        if out.close(files):
            files.nodes.append((node.label, out.path))


def _write_edges(source: GraphTables | Path, folder: Path, files: ImportFiles, bar: Any) -> None:
    for edge in schema.EDGE_TYPES:
        fields = TABLE_SCHEMAS[edge.table]
        props = [f for f in fields if f.name not in (edge.src_col, edge.dst_col)]
        if edge is schema.INTERACTED:  # the edge repeats its user's key for the (user, order) key
            props = [fields.field(edge.src_col), *props]
        header = [
            f":START_ID({edge.src.label})",
            f":END_ID({edge.dst.label})",
            *(_prop(f.name, f.type) for f in props),
        ]
        sequenced = edge is schema.INTERACTED
        out = _CsvFile(folder / f"rels-{edge.table}.csv", header + ["seq:long"] * sequenced)
        for batch in _batches(source, edge.table):
            cols = [batch.column(edge.src_col), batch.column(edge.dst_col)]
            seq = [_zeros(batch.num_rows)] if sequenced else []
            out.write(cols + [batch.column(f.name) for f in props] + seq)
            bar.update(batch.num_rows)
        if out.close(files):
            files.relationships.append((edge.rel_type, out.path))


def _write_triples(source: GraphTables | Path, folder: Path, files: ImportFiles, bar: Any) -> None:
    """KG triples, one file per (head label, tail label); each row names its type."""
    outs: dict[tuple[str, str], _CsvFile] = {}
    for batch in _batches(source, "triples"):
        relations = pc.unique(batch.column("relation"))
        types = pa.array([schema.relation_type_name(r) for r in relations.to_pylist()])
        rel_type = types.take(pc.index_in(batch.column("relation"), value_set=relations))
        for head in schema.TRIPLE_LABELS:
            for tail in schema.TRIPLE_LABELS:
                mask = pc.and_(
                    pc.equal(batch.column("head_label"), head),
                    pc.equal(batch.column("tail_label"), tail),
                )
                part = batch.filter(mask)
                if part.num_rows == 0:
                    continue
                if (head, tail) not in outs:
                    header = [f":START_ID({head})", f":END_ID({tail})", ":TYPE", "relation"]
                    name = f"rels-triples-{head.lower()}-{tail.lower()}.csv"
                    outs[head, tail] = _CsvFile(folder / name, header)
                cols = [part.column("head_id"), part.column("tail_id"), rel_type.filter(mask)]
                outs[head, tail].write([*cols, part.column("relation")])
        bar.update(batch.num_rows)
    for out in outs.values():
        if out.close(files):
            files.relationships.append((None, out.path))


def _total_rows(source: GraphTables | Path) -> int:
    if isinstance(source, GraphTables):
        return sum(source.counts().values())
    return sum(pq.ParquetFile(source / f"{n}.parquet").metadata.num_rows for n in TABLE_SCHEMAS)


def write_import_csv(
    source: GraphTables | str | Path, folder: str | Path, *, show_progress: bool = True
) -> ImportFiles:
    """Write the graph as the importer's CSV files in ``folder`` (created; files replaced).

    Args:
        source: validated tables, or a tables folder (:meth:`GraphTables.save`) read batch by
            batch; validate such a folder before importing it.
        folder: where the files go.
        show_progress: a tqdm bar over all rows.

    Returns:
        The files, in the order the importer takes them, with row counts.
    """
    from tqdm.auto import tqdm

    source = source if isinstance(source, GraphTables) else Path(source)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = ImportFiles()
    with tqdm(
        total=_total_rows(source), desc="import csv", unit="row", disable=not show_progress
    ) as bar:
        _write_nodes(source, out, files, bar)
        _write_edges(source, out, files, bar)
        _write_triples(source, out, files, bar)
    return files
