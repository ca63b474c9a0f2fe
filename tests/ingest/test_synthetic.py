"""Synthetic shop: shape, determinism, history rules, and the planted structure is recoverable."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from ingest.sources.synthetic import (
    PRESETS,
    PlantedTruth,
    SyntheticConfig,
    generate_shop,
    generate_shop_with_truth,
)
from ingest.tables import GraphTables

Shop = tuple[GraphTables, PlantedTruth]


@pytest.fixture(scope="module")
def tiny() -> Shop:
    return generate_shop_with_truth(SyntheticConfig.preset("tiny"), show_progress=False)


@pytest.fixture(scope="module")
def demo() -> Shop:
    return generate_shop_with_truth(SyntheticConfig.preset("demo"), show_progress=False)


def _numbers(column: list[str]) -> np.ndarray:
    """``["u3", "u10"]`` -> ``[3, 10]``."""
    return np.array([int(v[1:]) for v in column], np.int64)


def _history(tables: GraphTables) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    it = tables.interactions
    return (
        _numbers(it.column("user_id").to_pylist()),
        _numbers(it.column("product_id").to_pylist()),
        it.column("order").to_numpy(),
        it.column("ts").to_numpy(),
    )


# --------------------------------------------------------------------------- shape
@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_counts_match_config_and_tables_validate(preset: str, request: pytest.FixtureRequest):
    tables, truth = request.getfixturevalue(preset)
    cfg = SyntheticConfig.preset(preset)
    tables.validate()
    counts = tables.counts()
    assert counts["users"] == cfg.n_users
    assert counts["products"] == cfg.n_products
    assert counts["interactions"] == cfg.n_interactions
    assert counts["brands"] == cfg.n_brands
    assert counts["in_category"] == counts["made_by"] == cfg.n_products
    assert counts["entities"] == counts["triples"] == 0
    assert counts["subcategory_of"] == counts["categories"] - cfg.branching[0]
    assert tables.meta["source"] == "synthetic"
    assert tables.meta["config"]["n_products"] == cfg.n_products
    assert tables.meta["config"]["seed"] == cfg.seed
    assert truth.product_leaf.shape == (cfg.n_products,)
    assert truth.user_leaves.shape == (cfg.n_users, 2)
    assert len(truth.department_ids) == cfg.branching[0]


def test_products_have_text_and_prices(tiny: Shop):
    products = tiny[0].products.to_pylist()
    assert len({p["id"] for p in products}) == len(products)
    for p in products:
        assert re.fullmatch(r"p\d+", p["id"])
        assert len(p["title"].split()) >= 4
        assert p["description"].endswith(".") and 1 <= p["description"].count(".") <= 3
        assert 0 < p["price"] < 100_000
    assert all(re.fullmatch(r"u\d+", u) for u in tiny[0].users.column("id").to_pylist())


def test_brand_is_named_in_title_and_made_by(tiny: Shop):
    tables, truth = tiny
    made_by = dict(
        zip(
            *(tables.made_by.column(c).to_pylist() for c in tables.made_by.column_names),
            strict=True,
        )
    )
    for p in tables.products.slice(0, 50).to_pylist():
        number = int(p["id"][1:])
        assert made_by[p["id"]] == truth.brand_ids[truth.product_brand[number]]
        assert p["title"].startswith(made_by[p["id"]] + " ")


# --------------------------------------------------------------------- determinism
def test_same_config_gives_identical_tables(tiny: Shop):
    again, truth = generate_shop_with_truth(SyntheticConfig.preset("tiny"), show_progress=False)
    assert again.fingerprint() == tiny[0].fingerprint()
    assert np.array_equal(truth.complement, tiny[1].complement)
    assert generate_shop(SyntheticConfig.preset("tiny"), show_progress=False).fingerprint() == (
        tiny[0].fingerprint()
    )


def test_other_seed_gives_other_tables(tiny: Shop):
    other = generate_shop(SyntheticConfig.preset("tiny", seed=1), show_progress=False)
    assert other.fingerprint() != tiny[0].fingerprint()
    assert other.interactions.column("product_id") != tiny[0].interactions.column("product_id")
    assert other.products.column("title") != tiny[0].products.column("title")


def test_progress_bar_does_not_change_output(tiny: Shop):
    shown = generate_shop(SyntheticConfig.preset("tiny"), show_progress=True)
    assert shown.fingerprint() == tiny[0].fingerprint()


def test_tiny_is_fast(tiny: Shop):
    start = time.perf_counter()
    generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)
    assert time.perf_counter() - start < 1.0


# ----------------------------------------------------------------------- histories
@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_histories_are_leave_one_out_ready(preset: str, request: pytest.FixtureRequest):
    tables, _ = request.getfixturevalue(preset)
    cfg = SyntheticConfig.preset(preset)
    user, product, order, ts = _history(tables)
    lengths = np.bincount(user, minlength=cfg.n_users)
    assert lengths.min() >= cfg.min_history
    assert lengths.max() <= cfg.max_history
    # no product twice in one history
    pairs = user * cfg.n_products + product
    assert np.unique(pairs).size == pairs.size
    # order is 0..n-1 per user and ts strictly increases along it
    by = np.lexsort((order, user))
    u, o, t = user[by], order[by], ts[by]
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    assert np.array_equal(o, np.arange(u.size) - starts[u])
    same_user = u[1:] == u[:-1]
    assert (t[1:][same_user] > t[:-1][same_user]).all()
    assert (t >= cfg.start_ts).all()


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_every_product_is_interacted_with(preset: str, request: pytest.FixtureRequest):
    tables, _ = request.getfixturevalue(preset)
    _, product, _, _ = _history(tables)
    assert np.bincount(product, minlength=tables.products.num_rows).min() >= 1


def test_kinds_weights_and_popularity_skew(demo: Shop):
    tables, _ = demo
    kinds = tables.interactions.column("kind").to_pylist()
    assert set(kinds) == {"purchase", "view"}
    assert 0.05 < kinds.count("view") / len(kinds) < 0.2
    assert set(tables.interactions.column("weight").to_pylist()) == {1.0}
    counts = np.sort(np.bincount(_history(tables)[1]))[::-1]
    top_share = counts[: counts.size // 10].sum() / counts.sum()
    assert top_share > 0.25  # the top 10% of products take far more than 10% of interactions


# ---------------------------------------------------------------------------- tree
def _check_tree(tables: GraphTables, depth: int) -> None:
    cats = {c["id"]: c for c in tables.categories.to_pylist()}
    parent = dict(
        zip(
            tables.subcategory_of.column("child_id").to_pylist(),
            tables.subcategory_of.column("parent_id").to_pylist(),
            strict=True,
        )
    )
    parents = set(parent.values())
    for cid, c in cats.items():
        parts = cid.split(" > ")
        assert c["name"] == parts[-1]
        assert c["level"] == len(parts)
        if c["level"] == 1:
            assert cid not in parent
        else:
            assert parent[cid] == " > ".join(parts[:-1])
            assert cats[parent[cid]]["level"] == c["level"] - 1
        if cid not in parents:
            assert c["level"] == depth, f"leaf {cid!r} is not at the deepest level"
    leaves_used = set(tables.in_category.column("category_id").to_pylist())
    assert leaves_used == {cid for cid in cats if cid not in parents}


def test_category_tree_is_consistent(tiny: Shop):
    tables, truth = tiny
    _check_tree(tables, depth=3)
    assert truth.department_ids[:2] == ("Electrical", "Lab & Scientific")
    in_category = dict(
        zip(
            *(tables.in_category.column(c).to_pylist() for c in ("product_id", "category_id")),
            strict=True,
        )
    )
    for j in range(0, tables.products.num_rows, 7):
        assert in_category[f"p{j}"] == truth.leaf_ids[truth.product_leaf[j]]
    for i, leaf_id in enumerate(truth.leaf_ids):
        department = truth.department_ids[truth.leaf_department[i]]
        assert leaf_id.startswith(department + " > ")


@pytest.mark.parametrize("branching", [(12, 2, 2, 3), (3, 9)])
def test_trees_beyond_the_vocabulary(branching: tuple[int, ...]):
    cfg = SyntheticConfig(400, 60, 600, branching, n_brands=12)
    tables, truth = generate_shop_with_truth(cfg, show_progress=False)
    _check_tree(tables, depth=len(branching))
    assert len(truth.department_ids) == branching[0]
    names = tables.categories.column("name").to_pylist()
    assert all(" > " not in n and n for n in names)
    if branching[0] > 10:
        assert any(d.split()[0] == "Standard" for d in truth.department_ids)


# ------------------------------------------------------------------ planted structure
def test_truth_is_well_formed(tiny: Shop):
    _, truth = tiny
    n_leaves = len(truth.leaf_ids)
    assert truth.complement.shape == (n_leaves,)
    assert (truth.leaf_department[truth.complement] != truth.leaf_department).all()
    assert np.array_equal(truth.user_department, truth.leaf_department[truth.user_leaves[:, 0]])
    second = truth.user_leaves[:, 1]
    assert ((second == -1) | ((second >= 0) & (second < n_leaves))).all()
    assert (second != truth.user_leaves[:, 0]).all()
    assert set(truth.complement_ids()) == set(truth.leaf_ids)
    focus = truth.brand_departments
    assert (focus[:, 0] >= 0).all() and (focus[:, 0] != focus[:, 1]).all()
    product_dept = truth.leaf_department[truth.product_leaf]
    assert ((focus[truth.product_brand] == product_dept[:, None]).any(axis=1)).all()


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_users_stay_in_their_department(preset: str, request: pytest.FixtureRequest):
    tables, truth = request.getfixturevalue(preset)
    user, product, _, _ = _history(tables)
    dept = truth.leaf_department[truth.product_leaf[product]]
    share = (dept == truth.user_department[user]).mean()
    chance = 1 / len(truth.department_ids)
    assert share > 0.45
    assert share > 2.0 * chance


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_next_item_follows_the_complement_map(preset: str, request: pytest.FixtureRequest):
    tables, truth = request.getfixturevalue(preset)
    user, product, order, _ = _history(tables)
    by = np.lexsort((order, user))
    user, leaf = user[by], truth.product_leaf[product[by]]
    same = user[1:] == user[:-1]
    prev, nxt = leaf[:-1][same], leaf[1:][same]
    rate = (truth.complement[prev] == nxt).mean()
    shuffled = (truth.complement[prev] == np.random.default_rng(0).permutation(nxt)).mean()
    assert rate > 0.2
    assert rate > 4 * shuffled


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_text_carries_the_leaf_category(preset: str, request: pytest.FixtureRequest):
    tables, truth = request.getfixturevalue(preset)
    titles = tables.products.column("title").to_pylist()
    descriptions = tables.products.column("description").to_pylist()
    words = [
        set(re.findall(r"[a-z0-9]+", f"{t} {d}".lower()))
        for t, d in zip(titles, descriptions, strict=True)
    ]
    leaf = truth.product_leaf
    rng = np.random.default_rng(0)

    def jaccard(a: int, b: int) -> float:
        return len(words[a] & words[b]) / len(words[a] | words[b])

    same, other = [], []
    for a in rng.integers(len(words), size=400):
        siblings = np.flatnonzero(leaf == leaf[a])
        siblings = siblings[siblings != a]
        if siblings.size:
            same.append(jaccard(a, rng.choice(siblings)))
        b = int(rng.integers(len(words)))
        if leaf[b] != leaf[a]:
            other.append(jaccard(a, b))
    assert np.mean(same) > np.mean(other) + 0.1
    assert np.mean(same) > 1.8 * np.mean(other)


# ------------------------------------------------------------------------- config
def test_presets():
    assert set(PRESETS) == {"tiny", "default", "demo", "bench", "large", "xl"}
    assert SyntheticConfig.preset("default") == SyntheticConfig()
    assert SyntheticConfig.preset("tiny", seed=5).seed == 5
    bench, large = SyntheticConfig.preset("bench"), SyntheticConfig.preset("large")
    assert (bench.n_products, bench.n_interactions) == (100_000, 1_000_000)
    assert (large.n_products, large.n_interactions) == (1_000_000, 10_000_000)
    assert SyntheticConfig().depth == 3
    with pytest.raises(ValueError, match="unknown preset"):
        SyntheticConfig.preset("huge")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_interactions": 10},  # fewer than min_history per user
        {"branching": (1, 4)},  # one department: no cross-department complements
        {"branching": (6,)},  # a tree needs two levels
        {"n_brands": 3},  # fewer brands than departments
        {"p_complement": 0.6, "p_favourite": 0.6},
        {"n_products": 20, "n_users": 10, "n_interactions": 300},  # histories over the cap
        {"min_history": 0},
    ],
)
def test_bad_configs_are_refused(kwargs: dict):
    with pytest.raises(ValueError, match="SyntheticConfig"):
        SyntheticConfig(**kwargs)


def test_more_leaves_than_products_is_refused():
    cfg = SyntheticConfig(n_products=30, n_users=5, n_interactions=25, branching=(6, 4, 4))
    with pytest.raises(ValueError, match="leaves"):
        generate_shop(cfg, show_progress=False)
