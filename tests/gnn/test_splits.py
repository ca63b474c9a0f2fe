"""Leave-one-out and given splits on tiny hand-built tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gnn.splits import given_split, leave_one_out
from ingest.sources.kgat import read_kgat
from ingest.tables import GraphTables

KGAT_FIXTURE = Path(__file__).resolve().parents[1] / "ingest" / "data" / "kgat"


def _shop() -> GraphTables:
    # Rows deliberately out of order: the split must sort by `order`, not by row.
    rows = [
        ("a", "p2", 3),
        ("a", "p3", 0),
        ("a", "p5", 2),
        ("a", "p1", 1),
        ("b", "p2", 1),
        ("b", "p1", 0),
        ("c", "p2", 2),  # a repeat of c's first item: cannot be a "new" test target
        ("c", "p4", 1),
        ("c", "p2", 0),
        ("d", "p3", 2),
        ("d", "p1", 0),
        ("d", "p2", 1),
    ]
    return GraphTables.from_pydict(
        {
            "users": {"id": ["a", "b", "c", "d", "e"]},
            "products": {"id": ["p6", "p1", "p2", "p3", "p4", "p5"]},
            "interactions": {
                "user_id": [r[0] for r in rows],
                "product_id": [r[1] for r in rows],
                "order": [r[2] for r in rows],
            },
        }
    ).validate()


def _lists(arrays: list[np.ndarray], ids: list[str]) -> list[list[str]]:
    return [[ids[i] for i in a] for a in arrays]


def test_leave_one_out() -> None:
    s = leave_one_out(_shop())
    assert s.user_ids == ["a", "b", "c", "d", "e"]
    assert s.item_ids == ["p1", "p2", "p3", "p4", "p5", "p6"]  # all products, sorted
    ids = s.item_ids
    assert _lists(s.train_sequences, ids) == [["p3", "p1"], ["p1", "p2"], ["p2"], ["p1"], []]
    assert _lists(s.valid, ids) == [["p5"], [], ["p4"], ["p2"], []]
    # c's last item p2 repeats its train item: dropped, so c has no test target.
    assert _lists(s.test, ids) == [["p2"], [], [], ["p3"], []]
    assert s.meta["dropped_repeat_targets"] == {"valid": 0, "test": 1}
    assert _lists(s.test_history, ids) == [
        ["p3", "p1", "p5"],
        ["p1", "p2"],
        ["p2", "p4"],
        ["p1", "p2"],
        [],
    ]
    assert s.history("valid") is s.train_sequences
    assert s.history("test") is s.test_history
    assert s.eval_users("valid").tolist() == [0, 2, 3]
    assert s.eval_users("test").tolist() == [0, 3]
    assert s.train.toarray().tolist() == [
        [1, 0, 1, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    # Test exclusions = train + valid: the valid item of a (p5) is known when testing.
    assert s.known("test")[0].toarray().tolist() == [[1, 0, 1, 0, 1, 0]]
    assert s.known("valid")[0].toarray().tolist() == [[1, 0, 1, 0, 0, 0]]
    for on in ("valid", "test"):
        known = s.known(on)
        for u, targets in enumerate(s.targets(on)):
            assert not known[u, targets].toarray().any(), "a target leaks into the history"
    assert s.item_popularity().tolist() == [3, 2, 1, 0, 0, 0]
    users, items = s.train_pairs()
    assert list(zip(users.tolist(), items.tolist(), strict=True)) == [
        (0, 0),
        (0, 2),
        (1, 0),
        (1, 1),
        (2, 1),
        (3, 0),
    ]
    with pytest.raises(ValueError, match="on must be"):
        s.targets("train")  # type: ignore[arg-type]


def test_given_split_on_kgat_fixture() -> None:
    s = given_split(read_kgat(KGAT_FIXTURE, show_progress=False))
    assert s.user_ids == ["0", "1", "2", "3"]
    assert s.item_ids == ["0", "1", "2"]
    assert _lists(s.train_sequences, s.item_ids) == [["0", "1"], ["2"], [], []]
    assert _lists(s.test, s.item_ids) == [["2"], ["0"], [], []]
    assert s.eval_users("valid").size == 0
    assert s.meta["protocol"] == "given"


def _kgat_like() -> GraphTables:
    train = {"0": ["0", "1", "2", "3", "4", "5", "6", "7"], "1": ["1"], "2": ["0", "2"]}
    test = {"0": ["8", "9"], "1": ["2", "2"]}
    rows = []
    for split, lines in (("train", train), ("test", test)):
        for user, items in lines.items():
            start = sum(1 for r in rows if r[0] == user)
            rows += [(user, item, start + k, split) for k, item in enumerate(items)]
    return GraphTables.from_pydict(
        {
            "users": {"id": ["0", "1", "2"]},
            "products": {"id": [str(i) for i in range(10)]},
            "interactions": {
                "user_id": [r[0] for r in rows],
                "product_id": [r[1] for r in rows],
                "order": [r[2] for r in rows],
                "split": [r[3] for r in rows],
            },
        }
    ).validate()


def test_given_split_with_valid_fraction_is_deterministic_and_disjoint() -> None:
    tables = _kgat_like()
    plain = given_split(tables)
    assert _lists(plain.test, plain.item_ids) == [["8", "9"], ["2"], []]  # duplicate collapsed
    s = given_split(tables, valid_fraction=0.25, seed=3)
    again = given_split(tables, valid_fraction=0.25, seed=3)
    other = given_split(tables, valid_fraction=0.25, seed=4)
    assert [v.tolist() for v in s.valid] == [v.tolist() for v in again.valid]
    # User 0: round(0.25 * 8) = 2 valid items; user 1 (one train row): none; user 2: at least 1.
    assert [v.size for v in s.valid] == [2, 0, 1]
    assert any(a.tolist() != b.tolist() for a, b in zip(s.valid, other.valid, strict=True))
    for u in range(3):
        train, valid = set(s.train_sequences[u].tolist()), set(s.valid[u].tolist())
        assert not train & valid
        assert train | valid == set(plain.train_sequences[u].tolist())
        # The test history keeps the original order of train and valid rows.
        assert s.test_history[u].tolist() == plain.train_sequences[u].tolist()
    assert _lists(s.test, s.item_ids) == _lists(plain.test, plain.item_ids)


def test_given_split_needs_a_split_on_every_row() -> None:
    shop = _shop()  # no split column: all null
    with pytest.raises(ValueError, match="split is None"):
        given_split(shop)
    with pytest.raises(ValueError, match="valid_fraction"):
        given_split(_kgat_like(), valid_fraction=1.0)
