"""Parallel writes: the lanes of a round never share a node, and a load with several workers
gives the graph a load with one gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from ingest.neo4j_parallel import edge_rounds, row_rounds
from ingest.neo4j_writer import graph_counts, write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from ingest.tables import GraphTables


def _edges(n: int, seed: int, same_label: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    src = [f"u{i}" for i in rng.integers(50, size=n)]
    prefix = "u" if same_label else "p"
    dst = [f"{prefix}{i}" for i in rng.zipf(1.5, size=n) % 80]
    return pa.table({"src": src, "dst": dst, "row": np.arange(n)})


@pytest.mark.parametrize("lanes", [1, 2, 3, 4])
@pytest.mark.parametrize("same_label", [False, True])
def test_blocks_of_a_round_share_no_node(lanes: int, same_label: bool) -> None:
    table = _edges(5_000, lanes, same_label)
    rounds = edge_rounds(table, "src", "dst", lanes, same_nodes=same_label)
    assert all(len(r) == lanes for r in rounds)
    assert len(rounds) == (2 * lanes - 1 if same_label and lanes > 1 else lanes)
    rows = sorted(x for r in rounds for block in r for x in block.column("row").to_pylist())
    assert rows == list(range(5_000))  # every row once
    for blocks in rounds:
        nodes = [
            set(b.column("src").to_pylist()) | set(b.column("dst").to_pylist()) for b in blocks
        ]
        for i in range(lanes):
            for j in range(i + 1, lanes):
                assert not nodes[i] & nodes[j]
    if lanes > 1:  # the work is shared out, not left to one lane
        sizes = [b.num_rows for r in rounds for b in r]
        assert max(sizes) < 0.5 * table.num_rows


def test_row_lanes_have_disjoint_keys() -> None:
    table = pa.table({"id": [f"k{i % 37}" for i in range(1_000)]})
    (lanes,) = row_rounds(table, "id", 3)
    keys = [set(t.column("id").to_pylist()) for t in lanes]
    assert sum(t.num_rows for t in lanes) == 1_000
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])


@pytest.mark.neo4j
def test_parallel_load_equals_serial_load(neo4j_db: Any) -> None:
    from ingest.neo4j_export import export_graph

    shop = generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)
    write_graph(neo4j_db, shop, workers=1, batch_size=128, show_progress=False)
    serial = export_graph(neo4j_db, show_progress=False)
    counts = graph_counts(neo4j_db)
    from tests.conftest import clear_database

    clear_database(neo4j_db)
    write_graph(neo4j_db, shop, workers=4, batch_size=128, show_progress=False)
    assert graph_counts(neo4j_db) == counts
    parallel = export_graph(neo4j_db, show_progress=False)
    assert parallel.fingerprint() == serial.fingerprint() == shop.fingerprint()
    # a parallel re-load of a changed shop (MERGE path, prune in lanes) equals a fresh load
    changed = GraphTables(
        **{n: shop.table(n) for n in ("users", "products", "categories", "brands")},
        interactions=shop.interactions.slice(0, 2_000),
        in_category=shop.in_category,
        subcategory_of=shop.subcategory_of,
        made_by=shop.made_by,
    )
    write_graph(neo4j_db, changed, workers=3, batch_size=100, show_progress=False)
    assert export_graph(neo4j_db, show_progress=False).fingerprint() == changed.fingerprint()
