"""The PyG ``HeteroData`` the fusion model propagates over, built from canonical tables.

Node types (present when the tables have rows for them): ``user``, ``product``, ``category``,
``brand``, ``entity``. Node indices follow a :class:`~gnn.splits.Split` for users and
products (so they match the evaluation harness) and the sorted ids of the tables for the
rest. Edge types, each with its reverse ``rev_<name>`` so messages flow both ways:

* ``(user, interacted, product)``: the split's **train** pairs only (never valid or test);
* ``(product, followed_by, product)``: consecutive items of the train sequences, weighted by
  how often the transition occurs (``edge_weight``);
* ``(product, in_category, category)``, ``(category, subcategory_of, category)``,
  ``(product, made_by, brand)``: the catalogue;
* ``(<head>, <relation>, <tail>)`` for the free-form ``triples`` (KGAT-style), with
  ``product`` / ``entity`` heads and tails.

``data[node_type].ids`` holds the node ids (the id maps the saved model keeps in
``id_maps.json``, :mod:`gnn.fusion_io`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch

from gnn.splits import Split
from ingest.schema import relation_type_name
from ingest.tables import GraphTables

__all__ = ["CATALOGUE_EDGES", "build_hetero"]

#: (table, src column, dst column, src type, relation, dst type) of the catalogue edges.
CATALOGUE_EDGES = (
    ("in_category", "product_id", "category_id", "product", "in_category", "category"),
    ("subcategory_of", "child_id", "parent_id", "category", "subcategory_of", "category"),
    ("made_by", "product_id", "brand_id", "product", "made_by", "brand"),
)
_LABEL_TO_TYPE = {"Product": "product", "Entity": "entity"}


def build_hetero(
    tables: GraphTables,
    split: Split,
    *,
    interactions: bool = True,
    transitions: bool = True,
    catalogue: bool = True,
    kg_triples: bool = True,
) -> Any:
    """Build the graph of ``tables`` with the train interactions of ``split``.

    Args:
        tables: the canonical tables (products must equal ``split.item_ids``).
        split: gives user and product indices and the train interactions.
        interactions: add ``(user, interacted, product)`` edges.
        transitions: add ``(product, followed_by, product)`` edges.
        catalogue: add category, category-tree and brand edges.
        kg_triples: add edges for the ``triples`` table.

    Returns:
        a validated ``torch_geometric.data.HeteroData``; every node type has ``num_nodes`` and
        ``ids``, every edge type ``edge_index`` (and ``edge_weight`` for transitions).

    Raises:
        ValueError: the tables' products differ from the split's items, or an edge names a
            node that does not exist.
    """
    from torch_geometric.data import HeteroData

    product_ids = sorted(tables.products.column("id").to_pylist())
    if product_ids != list(split.item_ids):
        raise ValueError("build_hetero: the tables' products differ from the split's items")
    data = HeteroData()
    index: dict[str, dict[str, int]] = {}

    def add_nodes(node_type: str, ids: Sequence[str]) -> None:
        data[node_type].num_nodes = len(ids)
        data[node_type].ids = list(ids)
        index[node_type] = {k: i for i, k in enumerate(ids)}

    add_nodes("user", split.user_ids)
    add_nodes("product", split.item_ids)
    if catalogue:
        add_nodes("category", sorted(tables.categories.column("id").to_pylist()))
        add_nodes("brand", sorted(tables.brands.column("id").to_pylist()))
    if kg_triples and tables.entities.num_rows:
        add_nodes("entity", sorted(tables.entities.column("id").to_pylist()))

    def add_edges(
        src: str, rel: str, dst: str, s: np.ndarray, d: np.ndarray, w: np.ndarray | None = None
    ) -> None:
        edge_index = torch.as_tensor(np.stack([s, d]).astype(np.int64))
        data[src, rel, dst].edge_index = edge_index
        data[dst, f"rev_{rel}", src].edge_index = edge_index.flip(0)
        if w is not None:
            weight = torch.as_tensor(w, dtype=torch.float32)
            data[src, rel, dst].edge_weight = weight
            data[dst, f"rev_{rel}", src].edge_weight = weight

    if interactions:
        users, items = split.train_pairs()
        add_edges("user", "interacted", "product", users, items)
    if transitions:
        a, b, w = _transitions(split)
        add_edges("product", "followed_by", "product", a, b, w)
    if catalogue:
        for table, sc, dc, st, rel, dt in CATALOGUE_EDGES:
            t = getattr(tables, table)
            s = _lookup(index[st], t.column(sc).to_pylist(), table, sc)
            d = _lookup(index[dt], t.column(dc).to_pylist(), table, dc)
            add_edges(st, rel, dt, s, d)
    if kg_triples and tables.triples.num_rows:
        _add_triples(tables, index, add_edges)
    data.validate(raise_on_error=True)
    return data


def _transitions(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct ``a -> b`` consecutive train pairs (``a != b``) with their counts."""
    sizes = np.fromiter((s.size for s in split.train_sequences), np.int64)
    items = np.concatenate([*split.train_sequences, np.zeros(0, np.int64)]).astype(np.int64)
    owner = np.repeat(np.arange(sizes.size), sizes)
    same = (owner[:-1] == owner[1:]) & (items[:-1] != items[1:])
    key = items[:-1][same] * split.n_items + items[1:][same]
    uniq, counts = np.unique(key, return_counts=True)
    return uniq // split.n_items, uniq % split.n_items, counts.astype(np.float32)


def _lookup(index: dict[str, int], keys: list[str], table: str, column: str) -> np.ndarray:
    out = np.empty(len(keys), np.int64)
    for row, key in enumerate(keys):
        pos = index.get(key)
        if pos is None:
            raise ValueError(f"build_hetero: {table}.{column} row {row}: unknown node {key!r}")
        out[row] = pos
    return out


def _add_triples(tables: GraphTables, index: dict[str, dict[str, int]], add_edges: Any) -> None:
    t = tables.triples
    rels = t.column("relation")
    for rel in pc.unique(rels).to_pylist():
        part = t.filter(pc.equal(rels, rel))
        for hl in pc.unique(part.column("head_label")).to_pylist():
            for tl in pc.unique(part.column("tail_label")).to_pylist():
                mask = pc.and_(
                    pc.equal(part.column("head_label"), hl), pc.equal(part.column("tail_label"), tl)
                )
                rows = part.filter(mask)
                if not rows.num_rows or hl not in _LABEL_TO_TYPE or tl not in _LABEL_TO_TYPE:
                    continue
                st, dt = _LABEL_TO_TYPE[hl], _LABEL_TO_TYPE[tl]
                s = _lookup(index[st], rows.column("head_id").to_pylist(), "triples", "head_id")
                d = _lookup(index[dt], rows.column("tail_id").to_pylist(), "triples", "tail_id")
                add_edges(st, relation_type_name(rel).lower(), dt, s, d)
