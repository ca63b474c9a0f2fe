"""The query layer's numpy index, term functions and top-k on hand-made graphs (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.tables import GraphTables
from kg.query._results import top_k
from kg.query.index import build_index
from kg.query.scoring import ScoreWeights, category_proximity, history_terms

CATS = ["A", "A>B", "A>B>x", "A>B>y", "A>C", "A>C>z", "D"]


def _tables(**overrides: dict) -> GraphTables:
    data = {
        "users": {"id": ["u1", "u2", "u3"]},
        "products": {"id": ["p1", "p2", "p3", "p4", "p5"], "title": ["t1", "t2", "t3", "t4", None]},
        "categories": {"id": CATS, "name": [c.split(">")[-1] for c in CATS]},
        "brands": {"id": ["b1", "b2"], "name": ["One", "Two"]},
        "subcategory_of": {
            "child_id": ["A>B", "A>B>x", "A>B>y", "A>C", "A>C>z"],
            "parent_id": ["A", "A>B", "A>B", "A", "A>C"],
        },
        # p1 sits in a leaf and in its grandparent: the deepest wins. p5 has no category.
        "in_category": {
            "product_id": ["p1", "p1", "p2", "p3", "p4"],
            "category_id": ["A", "A>B>x", "A>B>y", "A>C>z", "D"],
        },
        "made_by": {"product_id": ["p1", "p2", "p2", "p3"], "brand_id": ["b1", "b2", "b1", "b2"]},
        # rows out of order: histories follow ``order``
        "interactions": {
            "user_id": ["u1", "u1", "u1", "u2", "u2"],
            "product_id": ["p3", "p1", "p2", "p5", "p4"],
            "order": [2, 0, 1, 1, 0],
        },
    }
    data.update(overrides)
    return GraphTables.from_pydict(data).validate()


def test_index_arrays() -> None:
    ix = build_index(_tables(), ["p1", "p2", "p3", "p4", "p5"])
    c = ix.category_index
    assert ix.category_ids == sorted(CATS) and ix.max_depth == 3
    assert ix.leaf.tolist() == [c["A>B>x"], c["A>B>y"], c["A>C>z"], c["D"], ix.n_categories]
    assert ix.cat_path[c["A>B>y"]].tolist() == [c["A"], c["A>B"], c["A>B>y"]]
    assert ix.cat_path[c["D"]].tolist() == [c["D"], -1, -1]
    assert ix.cat_path[ix.n_categories].tolist() == [-1, -1, -1]
    assert ix.cat_depth[[c["A"], c["A>C"], c["A>C>z"], ix.n_categories]].tolist() == [1, 2, 3, 0]
    b = ix.brand_index
    assert ix.brand.tolist() == [b["b1"], b["b1"], b["b2"], 2, 2]  # p2: smallest brand id
    assert ix.products_of_brand(b["b1"]).tolist() == [0, 1]
    assert ix.user_ids == ["u1", "u2", "u3"]
    assert [ix.product_ids[i] for i in ix.history(0)] == ["p1", "p2", "p3"]
    assert [ix.product_ids[i] for i in ix.history(1)] == ["p4", "p5"]
    assert ix.history(2).size == 0
    assert ix.ancestor_at(1)[ix.leaf].tolist() == [c["A"], c["A"], c["A"], c["D"], -1]
    under = ix.under([c["A>B"]])
    assert sorted(np.asarray(ix.category_ids)[under[:-1]]) == ["A>B", "A>B>x", "A>B>y"]
    with pytest.raises(ValueError, match="level"):
        ix.ancestor_at(4)


def test_index_refuses_other_products_and_cycles() -> None:
    with pytest.raises(ValueError, match="products"):
        build_index(_tables(), ["p1", "p2"])
    cyclic = _tables(subcategory_of={"child_id": ["A", "A>B"], "parent_id": ["A>B", "A"]})
    with pytest.raises(ValueError, match="cycle"):
        build_index(cyclic, ["p1", "p2", "p3", "p4", "p5"])


def test_category_proximity_and_history_terms() -> None:
    ix = build_index(_tables(), ["p1", "p2", "p3", "p4", "p5"])
    c = ix.category_index
    prox = category_proximity(ix, c["A>B>x"])
    expected = {"A>B>x": 1.0, "A>B>y": 2 / 3, "A>C>z": 1 / 3, "A": 1 / 3, "A>B": 2 / 3, "D": 0.0}
    for cat, value in expected.items():
        assert prox[c[cat]] == pytest.approx(value)
    assert prox[ix.n_categories] == 0.0
    assert not category_proximity(ix, ix.n_categories).any()
    w = ScoreWeights(n_recent=2, recency_decay=0.5)
    # latest first: p3 (weight 2/3), p2 (1/3); p1 is beyond n_recent
    ba, cp = history_terms(ix, np.array([2, 1, 0]), w)
    assert ba.tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert cp[c["A>B>y"]] == pytest.approx(2 / 3 * 1 / 3 + 1 / 3 * 1.0)
    assert cp[c["D"]] == 0.0 and cp[ix.n_categories] == 0.0
    # a product without a category (p5) adds nothing; the terms equal the per-leaf sums
    w3 = ScoreWeights(n_recent=3, recency_decay=0.5)
    _, cp = history_terms(ix, np.array([4, 3, 0]), w3)
    r = np.array([4, 2, 1]) / 7
    expected_cp = r[1] * category_proximity(ix, c["D"]) + r[2] * category_proximity(ix, c["A>B>x"])
    assert cp == pytest.approx(expected_cp)
    _, cp = history_terms(ix, np.array([4]), w3)
    assert not cp.any()


def test_history_terms_cache_of_the_proximity_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    import kg.query.scoring as scoring

    ix = build_index(_tables(), ["p1", "p2", "p3", "p4", "p5"])
    w = ScoreWeights(n_recent=3, recency_decay=0.5)
    histories = [np.array(h) for h in ([2, 1, 0], [4, 3, 0], [3, 3, 1], [4], [0, 2])]
    cached = [history_terms(ix, h, w) for h in histories]
    assert scoring._PROXIMITY[ix].shape == (ix.n_categories + 1,) * 2  # the whole matrix
    monkeypatch.setattr(scoring, "_CACHED_CATEGORIES", 0)  # a tree too big to cache
    for h, (ba, cp) in zip(histories, cached, strict=True):
        ba_rows, cp_rows = history_terms(ix, h, w)
        assert np.array_equal(ba, ba_rows) and np.array_equal(cp, cp_rows)


def test_top_k_orders_ties_and_drops_excluded() -> None:
    scores = np.array([0.5, 2.0, 0.5, -np.inf, 1.0], np.float32)
    assert top_k(scores, 3).tolist() == [1, 4, 0]
    assert top_k(scores, 5).tolist() == [1, 4, 0, 2]
    assert top_k(np.full(3, -np.inf, np.float32), 2).size == 0


@pytest.mark.parametrize("minus_inf", [0.0, 0.5, 0.95, 0.9999, 1.0])
@pytest.mark.parametrize("k", [1, 10, 300])
def test_top_k_equals_a_full_sort_on_long_arrays_with_ties(minus_inf: float, k: int) -> None:
    """The sampled-threshold path (long arrays) gives what a stable full sort gives: best
    first, ties by lower index, -inf dropped; scores drawn from few values so ties abound."""
    rng = np.random.default_rng(int(minus_inf * 1000) + k)
    for n in (5_000, 50_000):
        scores = rng.integers(0, 40, n).astype(np.float32) / 7
        scores[rng.random(n) < minus_inf] = -np.inf
        finite = np.flatnonzero(np.isfinite(scores))
        expected = finite[np.lexsort((finite, -scores[finite]))][:k]
        assert top_k(scores, k).tolist() == expected.tolist()


def test_score_weights_are_checked() -> None:
    for bad in ({"brand": -1.0}, {"recency_decay": 0.0}, {"n_recent": 0}):
        with pytest.raises(ValueError):
            ScoreWeights(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cold"):
        ScoreWeights(cold_text=0.0, cold_category=0.0, cold_brand=0.0)
