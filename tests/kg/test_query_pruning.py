"""The pruned exact ranking (:mod:`kg.query.pruning`, :mod:`kg.query.relative`) gives what
scoring every product gives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import kg.query.pruning as pruning
import kg.query.relative as relative
from gnn.fusion_io import FusionArrays
from gnn.scoring import FusionScorer, row_dots
from ingest.tables import GraphTables
from kg.query import Recommendation, Recommender
from tests.kg.query_helpers import TinyRun


def _queries(rec: Recommender) -> list[Callable[[], list[Recommendation]]]:
    ix = rec.index
    users = [u for i, u in enumerate(ix.user_ids) if ix.hist_indptr[i + 1] > ix.hist_indptr[i]]
    categories = ix.category_ids
    calls: list[Callable[[], list[Recommendation]]] = []
    for n, user in enumerate(users):
        category = categories[n % len(categories)]
        calls += [
            lambda u=user: rec.recommend(u, k=10),
            lambda u=user: rec.recommend(u, k=1, exclude_seen=False),
            lambda u=user: rec.recommend(u, k=40),
            lambda u=user, c=category: rec.recommend(u, k=5, categories=[c]),
            lambda u=user: rec.cross_category(u, k=10, level=1),
            lambda u=user: rec.cross_category(u, k=10, level=2),
        ]
    return calls


def _run(calls: list[Callable[[], list[Recommendation]]]) -> list[list[dict[str, Any]]]:
    return [[r.to_dict() for r in call()] for call in calls]


@pytest.mark.parametrize(
    ("blend", "tau"),
    [(None, None), (("linear", 0.5), 1.0), (("log", 0.6), 3.0)],
    ids=["as-trained", "text-term-linear", "text-term-log"],
)
def test_pruned_ranking_is_the_full_ranking(
    run: TinyRun,
    tables: GraphTables,
    blend: tuple[str, float] | None,
    tau: float | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recommender.load(run.run, tables)
    if blend is not None:  # with the text similarity term: m from SimilarityBound
        rec.model.blend_mode, rec.model.blend = blend
        rec.model.similarity_weights = {"text": tau}
        rec.scorer = FusionScorer(rec.model)
        history = rec.index.history(0)
        assert isinstance(relative.relative_scores(rec.scorer, history), relative.SimilarityBound)
    calls = _queries(rec)
    monkeypatch.setattr(pruning, "PRUNE_ABOVE", 10**9)  # every product scored
    full = _run(calls)
    outcomes: list[bool] = []
    pruned = pruning._pruned

    def counted(*args: Any) -> Any:
        found = pruned(*args)
        outcomes.append(found is not None)
        return found

    monkeypatch.setattr(pruning, "PRUNE_ABOVE", 0)
    monkeypatch.setattr(pruning, "MAX_FRACTION", 0.5)  # a 300-product shop
    monkeypatch.setattr(pruning, "MAX_K_FRACTION", 0.5)
    monkeypatch.setattr(relative, "MAX_SUPERSET", 1.0)
    monkeypatch.setattr(pruning, "_pruned", counted)
    assert _run(calls) == full  # same products, scores, terms, reasons and paths, same order
    assert len(outcomes) == len(calls)
    assert sum(outcomes) > 0.5 * len(calls)  # most queries took the pruned path
    assert not all(outcomes)  # and some fell back (a filter leaving few products)


def test_similarity_terms_are_computed_where_they_can_matter(
    run: TinyRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relative, "MAX_SUPERSET", 1.0)  # a 300-product shop

    model = FusionArrays.load(run.run)
    model.blend_mode, model.blend = "log", 0.6
    model.similarity_weights = {"text": 1.0}
    scorer = FusionScorer(model)
    rng = np.random.default_rng(0)
    computed = []
    for h in [rng.integers(0, 300, n) for n in (1, 3, 8, 20)]:
        full = scorer.relative(h)
        lazy = relative.relative_scores(scorer, h)
        assert isinstance(lazy, relative.SimilarityBound)
        for theta in (0.5, 0.125, 0.01):
            found = lazy.above(theta, full.size)
            assert found is not None
            products, m = found
            assert np.array_equal(products, np.flatnonzero(full >= np.float32(theta)))
            assert np.array_equal(m, full[products])  # bit for bit
        computed.append(int(lazy.known.sum()))
        assert lazy.above(0.01, 2) is None or (full >= np.float32(0.01)).sum() <= 2
        np.testing.assert_array_equal(lazy.full(), full)
    assert min(computed) < 0.5 * full.size  # the bound spared most of the similarity terms


@pytest.mark.parametrize("n", [1, 2, 3, 5, 17, 100, 299, 300])
def test_row_dots_and_exp_round_each_row_alike_whichever_rows_are_asked(n: int) -> None:
    rng = np.random.default_rng(n)
    matrix = rng.normal(size=(300, 128)).astype(np.float32)
    vector = rng.normal(size=128).astype(np.float32)
    rows = np.sort(rng.choice(300, n, replace=False))
    every = row_dots(matrix, vector)
    assert np.array_equal(row_dots(matrix, vector, rows), every[rows])
    assert np.array_equal(row_dots(matrix, vector, rows[-1:]), every[rows[-1:]])
    assert np.array_equal(np.exp(every[rows]), np.exp(every)[rows])
