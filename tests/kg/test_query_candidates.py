"""The approximate candidate search (:mod:`kg.query.candidates`): the cluster index, the model's
scores over candidates, and the recommender with ``approximate=``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gnn.fusion import FusionRecommender
from ingest.tables import GraphTables
from kg.query import ApproximateSearch, Recommender
from kg.query.candidates import ClusterIndex
from kg.query.model_scores import ModelScorer
from tests.kg.query_helpers import TinyRun


@pytest.fixture(scope="module")
def model(run: TinyRun) -> FusionRecommender:
    return FusionRecommender.load(run.run, device="cpu")


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


@pytest.mark.parametrize(
    ("blend", "mode", "tau"),
    [(0.0, "linear", 0.0), (0.5, "linear", 0.0), (0.4, "linear", 1.0), (0.6, "log", 3.0)],
)
def test_model_scores_over_candidates(run: TinyRun, blend: float, mode: str, tau: float) -> None:
    model = FusionRecommender.load(run.run, device="cpu")
    model.blend, model.blend_mode = blend, mode
    model.similarity_weights = {"text": tau} if tau else {}
    scorer = ModelScorer(model)
    clusters = ClusterIndex(scorer.augmented(), ApproximateSearch(n_lists=12))
    rng = np.random.default_rng(0)
    for h in [rng.integers(0, 300, n) for n in (1, 4, 30)]:
        exact = scorer.relative(h)
        # Every cluster probed: the exact scores of every product.
        products, m = scorer.candidates(h, None, clusters, 12)
        assert np.array_equal(products, np.arange(exact.size))
        np.testing.assert_allclose(m, exact, rtol=2e-4, atol=1e-7)
        # Two clusters: the probed members and the co-occurrence neighbours of the history.
        products, m = scorer.candidates(h, None, clusters, 2)
        assert np.all(np.diff(products) > 0) and products.size < exact.size
        if blend > 0:  # the co-occurrence term only counts in a blend
            assert set(scorer._votes(h)[0].tolist()) <= set(products.tolist())
        if mode == "log" or blend == 0:  # no normaliser: the same ratios, rescaled
            ratio = m / exact[products]
            np.testing.assert_allclose(ratio, ratio[0], rtol=2e-4)
        assert m.max() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def everything(model: FusionRecommender, tables: GraphTables) -> Recommender:
    """Every cluster probed: must rank exactly as the exact recommender."""
    return Recommender(model, tables, approximate=ApproximateSearch(n_lists=6, n_probe=6))


@pytest.fixture(scope="module")
def narrow(model: FusionRecommender, tables: GraphTables) -> Recommender:
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
    assert narrow.user_clusters is not None and narrow.user_clusters.n_lists == 20
    history = {
        u: {r["product_id"] for r in tables.interactions.to_pylist() if r["user_id"] == u}
        for u in users
    }
    overlap = []
    for u in users:
        got = narrow.recommend(u, 10)
        assert len(got) == 10 and [r.rank for r in got] == list(range(1, 11))
        assert all(a.score >= b.score for a, b in itertools.pairwise(got))
        assert not {r.product_id for r in got} & history[u]
        exact = {r.product_id for r in rec.recommend(u, 10)}
        overlap.append(len(exact & {r.product_id for r in got}) / 10)
        # A category filter leaves few candidates: the probe widens until k are found.
        cross = narrow.cross_category(u, 40, level=1)
        assert len(cross) == len(rec.cross_category(u, 40, level=1))
        assert not {r.product_id for r in cross} & history[u]
    assert np.mean(overlap) > 0.5  # far above chance (10 of 300 products)


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
