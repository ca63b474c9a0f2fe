"""The query layer's API contract on a small fusion model of the synthetic ``tiny`` shop."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pytest

from gnn.scoring import FusionScorer
from ingest.tables import GraphTables
from kg.query import GraphPath, Recommendation, Recommender, ScoreWeights, UnknownIdError
from tests.kg.query_helpers import TinyRun


def _column_map(table: object, key: str, value: str) -> dict[str, str]:
    return dict(
        zip(table.column(key).to_pylist(), table.column(value).to_pylist(), strict=True)  # type: ignore[attr-defined]
    )


@pytest.fixture(scope="module")
def leaf_of(tables: GraphTables) -> dict[str, str]:
    return _column_map(tables.in_category, "product_id", "category_id")


@pytest.fixture(scope="module")
def brand_of(tables: GraphTables) -> dict[str, str]:
    return _column_map(tables.made_by, "product_id", "brand_id")


@pytest.fixture(scope="module")
def histories(tables: GraphTables) -> dict[str, list[str]]:
    rows = sorted(tables.interactions.to_pylist(), key=lambda r: (r["user_id"], r["order"]))
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["user_id"], []).append(r["product_id"])
    return out


def _check_ranking(results: list[Recommendation], k: int) -> None:
    assert len(results) == k
    assert all(isinstance(r, Recommendation) for r in results)
    assert [r.rank for r in results] == list(range(1, k + 1))
    scores = [r.score for r in results]
    assert all(isinstance(s, float) for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert len({r.product_id for r in results}) == k
    for r in results:
        assert sum(r.terms.values()) == pytest.approx(r.score, abs=1e-4)
        assert r.reason


def _levels(category_id: str) -> list[str]:
    """Category ids of the synthetic shop are root-to-leaf paths: "A > B > C"."""
    parts = category_id.split(" > ")
    return [" > ".join(parts[: i + 1]) for i in range(len(parts))]


def _proximity(a: str, b: str) -> float:
    la, lb = _levels(a), _levels(b)
    shared = sum(x == y for x, y in zip(la, lb, strict=False))
    return shared / max(len(la), len(lb))


# -------------------------------------------------------------------------------- load
def test_load_refuses_other_products(run: TinyRun, tables: GraphTables) -> None:
    fewer = dataclasses.replace(tables, products=tables.products.slice(1))
    with pytest.raises(ValueError, match="products"):
        Recommender.load(run.run, fewer)
    with pytest.raises(ValueError, match="tables"):
        Recommender.load(run.run)


def test_load_from_tables_folder(run: TinyRun, rec: Recommender) -> None:
    again = Recommender.load(run.run, run.tables)
    assert again.related("p3", k=5) == rec.related("p3", k=5)


# ----------------------------------------------------------------------------- related
def test_related_contract_and_formula(
    rec: Recommender, leaf_of: dict[str, str], brand_of: dict[str, str]
) -> None:
    results = rec.related("p0", k=10)
    _check_ranking(results, 10)
    assert "p0" not in {r.product_id for r in results}
    # Recompute the score from the model's vectors, its co-occurrence and the raw tables.
    model = rec.model
    ids = model.node_ids["product"]
    v = model.product_vectors / np.linalg.norm(model.product_vectors, axis=1, keepdims=True)
    cooc = model.cooc.toarray()
    i = ids.index("p0")
    w = rec.weights
    for r in results:
        j = ids.index(r.product_id)
        co = cooc[i, j] / cooc[i].max() if cooc[i].max() > 0 else 0.0
        expected = (
            w.vector * float(v[i] @ v[j])
            + w.co_interaction * co
            + w.brand * (brand_of["p0"] == brand_of[r.product_id])
            + w.category * _proximity(leaf_of["p0"], leaf_of[r.product_id])
        )
        assert r.score == pytest.approx(expected, abs=1e-4)
        assert r.category_id == leaf_of[r.product_id] and r.brand_id == brand_of[r.product_id]
    # Nothing outside the top 10 scores higher than the 10th.
    everything = rec.related("p0", k=rec.n_products - 1)
    assert [r.product_id for r in everything[:10]] == [r.product_id for r in results]


def test_related_same_category_and_exclude(rec: Recommender, leaf_of: dict[str, str]) -> None:
    n = rec.n_products
    same = rec.related("p0", k=n, same_category=True)
    other = rec.related("p0", k=n, same_category=False)
    both = rec.related("p0", k=n)
    assert same and all(leaf_of[r.product_id] == leaf_of["p0"] for r in same)
    assert all(leaf_of[r.product_id] != leaf_of["p0"] for r in other)
    assert len(same) + len(other) == len(both) == n - 1
    top = [r.product_id for r in both[:3]]
    rest = rec.related("p0", k=5, exclude=top)
    assert not set(top) & {r.product_id for r in rest}
    assert [r.product_id for r in rest] == [r.product_id for r in both[3:8]]


def test_related_with_paths_link_the_two_products(rec: Recommender) -> None:
    results = rec.related("p0", k=10, paths=True)
    linked = [r for r in results if r.path is not None]
    assert linked
    for r in linked:
        assert r.path is not None
        assert r.path.nodes[0].id == "p0" and r.path.nodes[-1].id == r.product_id


# ------------------------------------------------------------------------------- bounds
@pytest.mark.parametrize("k", [0, -1, 10_000, 2.5, True])
def test_bad_k_is_a_value_error(rec: Recommender, k: object) -> None:
    with pytest.raises(ValueError, match="k must be"):
        rec.related("p0", k=k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        rec.recommend("u0", k=k)  # type: ignore[arg-type]


def test_k_up_to_the_catalogue(rec: Recommender, histories: dict[str, list[str]]) -> None:
    n = rec.n_products
    assert len(rec.related("p0", k=n)) == n - 1
    assert len(rec.recommend("u0", k=n)) == n - len(set(histories["u0"]))
    assert len(rec.recommend("u0", k=n, exclude_seen=False)) == n


def test_unknown_ids_are_named(rec: Recommender) -> None:
    calls = [
        (lambda: rec.related("nope"), "nope"),
        (lambda: rec.related("p0", exclude=["gone"]), "gone"),
        (lambda: rec.recommend("ghost"), "ghost"),
        (lambda: rec.recommend(["p0", "zz"]), "zz"),
        (lambda: rec.recommend("u0", categories=["No > Such"]), "No > Such"),
        (lambda: rec.cross_category("ghost"), "ghost"),
        (lambda: rec.explain("u0", "nope"), "nope"),
        (lambda: rec.related_to_new_product("x", brand_id="NoBrand"), "NoBrand"),
    ]
    for call, bad in calls:
        with pytest.raises(UnknownIdError) as info:
            call()
        assert isinstance(info.value, KeyError)
        assert info.value.id == bad and repr(bad) in str(info.value)


# ---------------------------------------------------------------------------- recommend
def test_recommend_excludes_history_and_extra(
    rec: Recommender, histories: dict[str, list[str]]
) -> None:
    for user in ("u0", "u5", "u17"):
        results = rec.recommend(user, k=20)
        _check_ranking(results, 20)
        assert not set(histories[user]) & {r.product_id for r in results}
    top = [r.product_id for r in rec.recommend("u0", k=2)]
    assert not set(top) & {r.product_id for r in rec.recommend("u0", k=10, exclude=top)}


def test_recommend_without_graph_terms_is_the_model_ranking(
    run: TinyRun, tables: GraphTables, rec: Recommender, histories: dict[str, list[str]]
) -> None:
    # the model's final distribution, as evaluation computes it (gnn.scoring)
    model = FusionScorer.load(run.run)
    plain = Recommender(model.arrays, tables, weights=ScoreWeights(brand=0.0, category=0.0))
    ids = model.arrays.node_ids["product"]
    for user in ("u0", "u9"):
        history = np.array([ids.index(p) for p in histories[user]])
        probs = model.score_histories([history])[0]
        unseen = probs.copy()
        unseen[history] = -np.inf
        expected = [ids[j] for j in np.argsort(-unseen, kind="stable")[:10]]
        got = plain.recommend(user, k=10)
        assert [r.product_id for r in got] == expected
        # m(u, j) = p(u, j) / max p(u, ·), the max over all products
        assert [r.score for r in got] == pytest.approx(
            [probs[ids.index(p)] / probs.max() for p in expected], rel=1e-4
        )


def test_graph_terms_move_the_ranking(rec: Recommender, tables: GraphTables) -> None:
    strong = Recommender(rec.model, tables, weights=ScoreWeights(category=5.0))
    leaf = strong.recommend(["p0"], k=5)
    assert all(r.reason.startswith("close to the history's categories") for r in leaf)
    assert (
        len({r.category_id for r in leaf}) == 1
        and leaf[0].category_id == strong.related("p0", k=1, same_category=True)[0].category_id
    )


def test_recommend_category_filter(rec: Recommender, leaf_of: dict[str, str]) -> None:
    dept = _levels(leaf_of["p0"])[0]
    leaf = leaf_of["p7"]
    results = rec.recommend("u3", k=15, categories=[dept])
    assert all(_levels(leaf_of[r.product_id])[0] == dept for r in results)
    results = rec.recommend("u3", k=300, categories=[leaf, dept])
    assert results and all(
        leaf_of[r.product_id] == leaf or leaf_of[r.product_id].startswith(dept + " > ")
        for r in results
    )


def test_cold_start_user_is_a_history(rec: Recommender, histories: dict[str, list[str]]) -> None:
    assert rec.model.user_node_vectors is None  # then a history says all about a user
    known = rec.recommend("u4", k=10)
    new = rec.recommend(histories["u4"], k=10)
    assert [r.product_id for r in new] == [r.product_id for r in known]
    assert [r.score for r in new] == pytest.approx([r.score for r in known])
    with_paths = rec.recommend(["p0", "p1"], k=5, paths=True)
    for r in with_paths:
        assert r.path is None or r.path.nodes[0].label == "Product"
    with pytest.raises(ValueError, match="at least one product"):
        rec.recommend([], k=5)


# ------------------------------------------------------------------------ cross-category
@pytest.mark.parametrize("level", [1, 2])
def test_cross_category_leaves_the_users_categories(
    rec: Recommender,
    histories: dict[str, list[str]],
    leaf_of: dict[str, str],
    level: int,
) -> None:
    every = {_levels(c)[level - 1] for c in leaf_of.values()}
    mine = {u: {_levels(leaf_of[p])[level - 1] for p in h} for u, h in histories.items()}
    everywhere = [u for u in sorted(histories) if mine[u] == every]
    if everywhere:  # a user with items in every category of the level gets nothing
        assert rec.cross_category(everywhere[0], k=10, level=level) == []
    users = [u for u in sorted(histories) if mine[u] != every][:5]
    checked = 0
    for user in users:
        results = rec.cross_category(user, k=10, level=level)
        _check_ranking(results, 10)
        scores = {r.product_id: r.score for r in rec.recommend(user, k=rec.n_products)}
        for r in results:
            assert _levels(leaf_of[r.product_id])[level - 1] not in mine[user]
            assert r.score == pytest.approx(scores[r.product_id])  # the same score
            assert r.reason.startswith(f"new to you at level {level}")
            if r.path is not None:
                assert r.path.nodes[0].id == user and r.path.nodes[-1].id == r.product_id
                assert r.path.nodes[1].id in histories[user]
                checked += 1
    assert checked >= 10  # paths are there for most results


def test_cross_category_default_level_under_one_root(
    run: TinyRun, tables: GraphTables, histories: dict[str, list[str]], leaf_of: dict[str, str]
) -> None:
    # The tiny shop's tree has several top-level categories: the default level is 1.
    default = Recommender.load(run.run, tables)
    assert default.index.branching_level == 1
    assert [r.product_id for r in default.cross_category("u3", k=10)] == [
        r.product_id for r in default.cross_category("u3", k=10, level=1)
    ]
    # The same catalogue under one root (as Amazon's "Industrial & Scientific > ..."): at
    # level 1 every user has bought in the root, so the default compares level 2.
    tops = sorted({_levels(c)[0] for c in leaf_of.values()})
    cats = tables.categories.to_pydict()
    cats = {"id": ["All", *cats["id"]], "name": ["All", *cats["name"]],
            "level": [1] + [level + 1 for level in cats["level"]]}  # fmt: skip
    up = pa.table(
        {"child_id": tops, "parent_id": ["All"] * len(tops)}, schema=tables.subcategory_of.schema
    )
    rooted = dataclasses.replace(
        tables,
        categories=pa.table(cats, schema=tables.categories.schema),
        subcategory_of=pa.concat_tables([tables.subcategory_of, up]),
    )
    rec = Recommender.load(run.run, rooted)
    assert rec.index.branching_level == 2
    assert rec.cross_category("u3", k=10, level=1) == []
    results = rec.cross_category("u3", k=10)
    _check_ranking(results, 10)
    assert [r.product_id for r in results] == [
        r.product_id for r in rec.cross_category("u3", k=10, level=2)
    ]
    mine = {_levels(leaf_of[p])[0] for p in histories["u3"]}
    for r in results:
        assert _levels(leaf_of[r.product_id])[0] not in mine
        assert r.reason.startswith("new to you at level 2")


def test_cross_category_bad_level(rec: Recommender) -> None:
    for level in (0, 4):
        with pytest.raises(ValueError, match="level"):
            rec.cross_category("u0", level=level)


# ------------------------------------------------------------------------------ explain
def _edges(tables: GraphTables, histories: dict[str, list[str]]) -> dict[str, set[tuple[str, str]]]:
    co = set()
    for items in histories.values():
        co |= {(a, b) for a in items for b in items if a != b}
    return {
        "INTERACTED": set(zip(*(tables.interactions.column(c).to_pylist() for c in ("user_id", "product_id")), strict=True)),
        "CO_INTERACTED": co,
        "MADE_BY": set(zip(*(tables.made_by.column(c).to_pylist() for c in ("product_id", "brand_id")), strict=True)),
        "IN_CATEGORY": set(zip(*(tables.in_category.column(c).to_pylist() for c in ("product_id", "category_id")), strict=True)),
        "SUBCATEGORY_OF": set(zip(*(tables.subcategory_of.column(c).to_pylist() for c in ("child_id", "parent_id")), strict=True)),
    }  # fmt: skip


def _check_path(path: GraphPath, edges: dict[str, set[tuple[str, str]]]) -> None:
    assert isinstance(path, GraphPath) and path.weight > 0
    assert 2 <= len(path) <= 5
    for a, b in zip(path.steps, path.steps[1:], strict=False):
        assert a.target == b.source
    for step in path.steps:
        assert (step.start.id, step.end.id) in edges[step.rel_type], str(step)


def test_explain_paths_exist_in_the_graph(
    rec: Recommender, tables: GraphTables, histories: dict[str, list[str]]
) -> None:
    edges = _edges(tables, histories)
    kinds = set()
    for user in ("u0", "u1", "u7", "u30"):
        targets = [r.product_id for r in rec.recommend(user, k=5)] + ["p0", "p150", "p299"]
        for product in targets:
            paths = rec.explain(user, product, max_paths=4)
            assert len(paths) <= 4
            weights = [p.weight for p in paths]
            assert weights == sorted(weights, reverse=True)
            for p in paths:
                _check_path(p, edges)
                assert p.nodes[0].label == "User" and p.nodes[0].id == user
                assert p.steps[0].rel_type == "INTERACTED" and p.nodes[-1].id == product
                kinds.add(p.kind)
                json.dumps(p.to_dict())
    assert kinds == {"co_interaction", "co_interaction_2hop", "brand", "category"}
    with pytest.raises(ValueError, match="max_paths"):
        rec.explain("u0", "p0", max_paths=0)


def test_explain_weight_formula(rec: Recommender, histories: dict[str, list[str]]) -> None:
    ids = rec.model.node_ids["product"]
    cooc = rec.model.cooc.toarray()
    recent = histories["u0"][::-1]
    found = 0
    for product in ids[:80]:
        for p in rec.explain("u0", product, max_paths=4):
            if p.kind != "co_interaction":
                continue
            h = p.nodes[1].id
            k = recent.index(h)
            row = cooc[ids.index(h)]
            expected = 0.8**k * 0.5 * row[ids.index(product)] / row.max()
            assert p.weight == pytest.approx(expected, rel=1e-4)
            found += 1
    assert found


def test_records_are_frozen_and_serialisable(rec: Recommender) -> None:
    r = rec.cross_category("u0", k=3)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.score = 0.0  # type: ignore[misc]
    data = json.loads(json.dumps(r.to_dict()))
    assert data["product_id"] == r.product_id and data["rank"] == 1
    assert set(data) == {
        "product_id", "score", "rank", "reason", "title", "category_id", "brand_id", "path",
        "terms",
    }  # fmt: skip
    if r.path is not None:
        assert data["path"]["text"] == str(r.path) and str(r.path).startswith("(User u0)")


def test_related_many_equals_related(rec: Recommender) -> None:
    ids = ["p0", "p5", "p77", "p299", "p150"]
    many = dict(rec.related_many(ids, k=7, block=2))
    assert list(many) == ids
    for pid in ids:
        one = rec.related(pid, k=7)
        assert [r.product_id for r in many[pid]] == [r.product_id for r in one]
        assert [r.score for r in many[pid]] == pytest.approx([r.score for r in one], abs=1e-5)
        assert [r.reason for r in many[pid]] == [r.reason for r in one]


def test_batched_best_paths_equal_the_single_target_search(rec: Recommender) -> None:
    from kg.query.paths import PathSearch

    rng = np.random.default_rng(0)
    n_linked = 0
    for u in rng.choice(rec.index.user_ids, 40, replace=False):
        history, _ = rec._history(str(u))
        sources = history[::-1][: rec.explain_history]
        search = PathSearch(rec.index, rec.cooc, rec.weights, sources, user=str(u))
        targets = rng.choice(rec.n_products, 25, replace=False)
        targets[:3] = sources[:3]  # a history item as target: its own paths are left out
        batched = search.best_paths(targets)
        for t, got in zip(targets, batched, strict=True):
            single = search.paths(int(t), 1)
            assert got == (single[0] if single else None)
            n_linked += got is not None
    assert n_linked > 100  # most targets are linked by some path in the tiny shop


def test_batched_best_paths_equal_the_single_target_search_for_co_interaction(
    rec: Recommender,
) -> None:
    """Only co-interaction terms, recommended targets: the direct and two-hop lookups of the
    batched search (all targets at once) against the single-target search."""
    from dataclasses import replace

    from kg.query.paths import PathSearch

    weights = replace(rec.weights, brand=0.0, category=0.0)
    rng = np.random.default_rng(1)
    kinds: dict[str, int] = {}
    for u in rng.choice(rec.index.user_ids, 40, replace=False):
        history, _ = rec._history(str(u))
        sources = history[::-1][: rec.explain_history]
        search = PathSearch(rec.index, rec.cooc, weights, sources, user=str(u))
        top = [r.product_id for r in rec.recommend(str(u), k=20)]
        targets = np.array([rec.index.product_index[p] for p in top], np.int64)
        for t, got in zip(targets, search.best_paths(targets), strict=True):
            single = search.paths(int(t), 1)
            assert got == (single[0] if single else None)
            if got is not None:
                kinds[got.kind] = kinds.get(got.kind, 0) + 1
    assert set(kinds) == {"co_interaction", "co_interaction_2hop"}
    assert min(kinds.values()) >= 10


def test_cooc_strongest_rows_are_each_rows_largest_entries() -> None:
    import scipy.sparse as sp

    from kg.query.paths import CoocIndex

    rng = np.random.default_rng(3)
    dense = rng.integers(0, 4, (40, 40)).astype(np.float64) * (rng.random((40, 40)) < 0.5)
    cooc = CoocIndex(sp.csr_matrix(dense))
    indptr, indices, values = cooc.strongest(5)
    for i in range(40):
        js, co = cooc.row(i)
        # strongest first, ties: lower column first
        expected = sorted(zip(js.tolist(), co.tolist(), strict=True), key=lambda e: (-e[1], e[0]))
        got = list(zip(indices[indptr[i] : indptr[i + 1]].tolist(),
                       values[indptr[i] : indptr[i + 1]].tolist(), strict=True))  # fmt: skip
        assert got == expected[:5]
    assert cooc.strongest(5)[1] is indices  # computed once
