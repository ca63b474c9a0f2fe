"""The approximate candidate search (:mod:`kg.query.candidates`): the cluster index, and the
recommender with ``approximate=`` (related, and the personalised queries)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import numpy as np
import pytest

from gnn.fusion_io import FusionArrays
from ingest.tables import GraphTables
from kg.query import ApproximateSearch, Recommender
from kg.query.candidates import ClusterIndex
from tests.kg.query_helpers import TinyRun


@pytest.fixture(scope="module")
def model(run: TinyRun) -> FusionArrays:
    return FusionArrays.load(run.run)


@pytest.fixture(scope="module")
def users(tables: GraphTables) -> list[str]:
    with_history = sorted({r["user_id"] for r in tables.interactions.to_pylist()})
    return with_history[::7][:12]


def test_cluster_index_partitions_and_scans_exactly() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    index = ClusterIndex(x, ApproximateSearch(n_lists=9, iterations=5, train_size=200))
    assert index.n_lists == 9 and index.centroids.shape == (9, 6)
    assert np.array_equal(np.sort(index.order), np.arange(500))  # each product once
    for c in range(9):
        members = index.order[index.starts[c] : index.starts[c + 1]]
        assert np.all(index.assign[members] == c) and np.all(np.diff(members) > 0)
    # Each product sits in the cluster of its nearest centroid.
    d = ((x[:, None, :] - index.centroids[None]) ** 2).sum(2)
    assert np.array_equal(index.assign, d.argmin(1))
    q = rng.normal(size=6).astype(np.float32)
    probed = index.probe(q, 3)
    assert set(probed) == set(np.argsort(-(index.centroids @ q))[:3].tolist())
    extra = np.array([0, 7, 499, int(index.order[index.starts[probed[0]]])])
    products, scores = index.search(q, probed, extra)
    expected = set(np.flatnonzero(np.isin(index.assign, probed))) | set(extra.tolist())
    assert products.tolist() == sorted(expected)  # ascending, no repeats
    np.testing.assert_allclose(scores, x[products] @ q, rtol=1e-5, atol=1e-6)
    everything, all_scores = index.search(q, index.probe(q, 9))
    assert np.array_equal(everything, np.arange(500))
    np.testing.assert_allclose(all_scores, x @ q, rtol=1e-5, atol=1e-6)


def test_cluster_index_is_seeded() -> None:
    x = np.random.default_rng(1).normal(size=(300, 4)).astype(np.float32)
    a = ClusterIndex(x, ApproximateSearch(n_lists=5, seed=3))
    b = ClusterIndex(x, ApproximateSearch(n_lists=5, seed=3))
    assert np.array_equal(a.assign, b.assign) and np.array_equal(a.centroids, b.centroids)
    assert ApproximateSearch().lists_for(100_000) == 316
    # More clusters than products, or than the k-means sample: as many as there are.
    assert ClusterIndex(x[:3], ApproximateSearch(n_lists=10)).n_lists == 3
    assert ClusterIndex(x, ApproximateSearch(n_lists=50, train_size=20)).n_lists == 20
    # Identical vectors leave clusters without members: they are dropped, so a probe never
    # lands on an empty cluster.
    twins = np.repeat(x[:2], 50, axis=0)
    index = ClusterIndex(twins, ApproximateSearch(n_lists=5))
    assert index.n_lists == 2 and np.all(index.sizes > 0)
    assert set(index.search(x[0], index.probe(x[0], 1))[0]) in ({*range(50)}, {*range(50, 100)})
    with pytest.raises(ValueError):
        ApproximateSearch(n_probe=0)


@pytest.fixture(scope="module")
def everything(model: FusionArrays, tables: GraphTables) -> Recommender:
    """Every cluster probed: must rank exactly as the exact recommender."""
    return Recommender(model, tables, approximate=ApproximateSearch(n_lists=6, n_probe=6))


@pytest.fixture(scope="module")
def narrow(model: FusionArrays, tables: GraphTables) -> Recommender:
    """One cluster of 20 probed: a real approximation."""
    return Recommender(model, tables, approximate=ApproximateSearch(n_lists=20, n_probe=1))


def _same(a: list, b: list) -> None:
    assert [r.product_id for r in a] == [r.product_id for r in b]
    np.testing.assert_allclose([r.score for r in a], [r.score for r in b], rtol=1e-5, atol=1e-6)
    assert [r.terms.keys() for r in a] == [r.terms.keys() for r in b]


def test_probing_every_cluster_is_the_exact_ranking(
    rec: Recommender, everything: Recommender, users: list[str], tables: GraphTables
) -> None:
    products = tables.products.column("id").to_pylist()[::37]
    for p in products:
        _same(everything.related(p, 10), rec.related(p, 10))
        _same(everything.related(p, 5, same_category=True), rec.related(p, 5, same_category=True))
    for u in users:
        _same(everything.recommend(u, 10), rec.recommend(u, 10))
        _same(everything.cross_category(u, 10, level=1), rec.cross_category(u, 10, level=1))
        ex = [r.path for r in rec.cross_category(u, 10, level=2)]
        assert [r.path for r in everything.cross_category(u, 10, level=2)] == ex


def test_narrow_probe_keeps_the_contract(
    rec: Recommender, narrow: Recommender, users: list[str], tables: GraphTables
) -> None:
    assert narrow.product_clusters is not None and narrow.product_clusters.n_lists == 20
    assert narrow.search_mode == "approximate: 1 of 20 clusters"
    overlap = []
    for p in tables.products.column("id").to_pylist()[::13]:
        got = narrow.related(p, 10)
        assert len(got) == 10 and [r.rank for r in got] == list(range(1, 11))
        assert all(a.score >= b.score for a, b in itertools.pairwise(got))
        assert p not in {r.product_id for r in got}
        exact = {r.product_id for r in rec.related(p, 10)}
        overlap.append(len(exact & {r.product_id for r in got}) / 10)
        # More than one cluster's candidates: the probe widens until k are found.
        assert len(narrow.related(p, 60)) == 60
    assert np.mean(overlap) > 0.5  # far above chance (10 of 300 products)
    # Personalised queries are exact in catalogues this small (PRUNE_ABOVE products or fewer).
    assert narrow.user_clusters is None
    for u in users:
        assert narrow.recommend(u, 10) == rec.recommend(u, 10)
        assert narrow.cross_category(u, 10, level=1) == rec.cross_category(u, 10, level=1)


def test_narrow_related_scores_are_exact_scores(
    rec: Recommender, narrow: Recommender, tables: GraphTables
) -> None:
    """Related scores have no normaliser: each candidate's score is its exact score."""
    for p in tables.products.column("id").to_pylist()[::29]:
        exact = {r.product_id: r.score for r in rec.related(p, rec.n_products - 1)}
        got = narrow.related(p, 10)
        assert len(got) == 10 and p not in {r.product_id for r in got}
        for r in got:
            assert r.score == pytest.approx(exact[r.product_id], rel=1e-5, abs=1e-6)


@pytest.fixture(scope="module")
def log_model(model: FusionArrays) -> FusionArrays:
    """The tiny model with the ``log`` blend (it chose ``linear``, which has no inner-product
    form): the approximate personalised search's case."""
    assert model.blend > 0
    return dataclasses.replace(model, blend_mode="log")


@pytest.fixture(scope="module")
def log_rec(log_model: FusionArrays, tables: GraphTables) -> Recommender:
    return Recommender(log_model, tables)


@pytest.fixture(scope="module")
def personal(
    log_model: FusionArrays, tables: GraphTables
) -> Iterator[tuple[Recommender, Recommender]]:
    """Approximate personalised search on the tiny shop (the size floor lowered): every cluster
    probed, and 1 of 20."""
    import kg.query.base

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kg.query.base, "PRUNE_ABOVE", 0)
        every = Recommender(
            log_model, tables, approximate=ApproximateSearch(n_lists=6, n_probe=6, n_probe_user=6)
        )
        one = Recommender(
            log_model, tables, approximate=ApproximateSearch(n_lists=20, n_probe=1, n_probe_user=1)
        )
        yield every, one


def test_linear_blend_keeps_personal_queries_exact(
    model: FusionArrays, tables: GraphTables
) -> None:
    import kg.query.base

    assert model.blend_mode == "linear"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kg.query.base, "PRUNE_ABOVE", 0)
        rec = Recommender(model, tables, approximate=ApproximateSearch(n_lists=6, n_probe=1))
    assert rec.scorer.inner_product_rows() is None and rec.user_clusters is None


def test_inner_product_rows_give_the_model_score(log_rec: Recommender, tables: GraphTables) -> None:
    """``rows @ query`` is the model's log score up to the co-occurrence votes and a constant,
    and ``log_scores_at`` is the exact one at any products."""
    rec = log_rec
    scorer = rec.scorer
    rows = scorer.inner_product_rows()
    assert rows is not None and rows.shape[0] == rec.n_products
    for u in tables.interactions.column("user_id").to_pylist()[::97][:6]:
        history = rec.history_of(u)
        user_index = rec._model_users.get(u)
        z = scorer.base(history, user_index)
        profile = scorer.profile(history)
        if profile is not None:
            z = z + scorer.sim_matrix @ profile
        voted = set(scorer.votes(history)[0].tolist()) if scorer.weights.beta > 0 else set()
        plain = np.array([j for j in range(rec.n_products) if j not in voted])
        diff = z[plain] - (rows @ scorer.inner_product_query(history, user_index))[plain]
        np.testing.assert_allclose(diff, diff[0], atol=1e-3)  # one constant per user
        some = np.sort(np.random.default_rng(0).choice(rec.n_products, 40, replace=False))
        some = np.union1d(some, np.array(sorted(voted), np.int64)[:5])
        np.testing.assert_allclose(
            scorer.log_scores_at(history, some, user_index), z[some], rtol=1e-5, atol=1e-4
        )


def test_personal_probing_every_cluster_is_the_exact_ranking(
    log_rec: Recommender, personal: tuple[Recommender, Recommender], users: list[str]
) -> None:
    every, _ = personal
    rec = log_rec
    assert every.user_clusters is not None
    categories = rec.index.category_ids
    for n, u in enumerate(users):
        c = [categories[n % len(categories)]]
        _same(every.recommend(u, 10), rec.recommend(u, 10))
        _same(every.recommend(u, 5, categories=c), rec.recommend(u, 5, categories=c))
        _same(every.cross_category(u, 10, level=1), rec.cross_category(u, 10, level=1))


def test_personal_narrow_probe_keeps_the_contract(
    log_rec: Recommender, personal: tuple[Recommender, Recommender], users: list[str]
) -> None:
    _, one = personal
    rec = log_rec
    assert one.user_clusters is not None and one.user_clusters.n_lists == 20
    recall = []
    for u in users:
        seen = set(rec.index.product_ids[j] for j in rec.history_of(u))
        got = one.recommend(u, 10)
        assert len(got) == 10 and [r.rank for r in got] == list(range(1, 11))
        assert all(a.score >= b.score for a, b in itertools.pairwise(got))
        assert not seen & {r.product_id for r in got}
        exact = {r.product_id for r in rec.recommend(u, 10)}
        recall.append(len(exact & {r.product_id for r in got}) / 10)
        # a filter that leaves few candidates: the probe widens until k are found
        cross = one.cross_category(u, 30, level=1)
        assert len(cross) == len(rec.cross_category(u, 30, level=1))
    assert np.mean(recall) > 0.5  # far above chance (10 of 300 products)


def test_a_live_product_reaches_approximate_search(run: TinyRun) -> None:
    """Products added after the cluster indexes were built are candidates of every query."""
    import kg.query.base
    from kg.query.live import LiveState
    from tests.kg.test_query_live import _product

    tables = GraphTables.load(run.tables)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kg.query.base, "PRUNE_ABOVE", 0)
        rec = Recommender(
            dataclasses.replace(  # its own copies of what live events grow
                FusionArrays.load(run.run), blend_mode="log"
            ),
            tables,
            text_model=run.bert,
            text_cache=run.text_cache,
            approximate=ApproximateSearch(n_lists=20, n_probe=1),
        )
    ix = rec.index
    leaf, brand = ix.category_ids[int(ix.leaf[0])], ix.brand_ids[int(ix.brand[0])]
    LiveState(rec).apply([
        _product(1, "new-1", f"{ix.titles[0]} (new edition)", category=tuple(leaf.split(" > ")),
                 brand=brand),
    ])  # fmt: skip
    assert rec.n_products == 301 and rec.user_clusters is not None
    assert rec.user_clusters.assign.size == 300  # the index is as built
    assert "new-1" in {r.product_id for r in rec.related(ix.product_ids[0], k=30)}
    assert [r.product_id for r in rec.related("new-1", k=5)]
    user = next(u for u in ix.user_ids if rec.history_of(u).size)
    ranked = [
        r.product_id for r in rec.recommend(user, k=rec.n_products - rec.history_of(user).size)
    ]
    assert "new-1" in ranked
    # after live interactions (popularity and co-occurrence change) the candidates' scores
    # are still the exact log scores
    from tests.kg.test_query_live import _view

    live = rec.live
    assert live is not None
    viewed = ix.product_ids[0]  # an indexed product: its row in the index goes stale
    live.apply([_view(50 + i, user, viewed, live.max_order[user] + 1 + i) for i in range(3)])
    history = rec.history_of(user)
    index = rec._model_users.get(user)
    query = rec.scorer.inner_product_query(history, index)
    votes = rec.scorer.votes(history)
    assert rec.scorer.popularity_changed.any()
    assert rec.scorer.popularity_changed[0]
    every = rec.user_clusters.n_lists
    products, z = rec._user_candidates(history, index, query, every, votes, None)
    assert np.all(np.diff(products) > 0) and rec.n_products - 1 in products
    exact = rec.scorer.log_scores_at(history, products, index)
    np.testing.assert_allclose(z, exact, rtol=1e-4, atol=1e-3)
