"""The pruned exact ranking (:mod:`kg.query.pruning`) gives what scoring every product gives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import kg.query.pruning as pruning
from kg.query import Recommendation, Recommender


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


def test_pruned_ranking_is_the_full_ranking(
    rec: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    monkeypatch.setattr(pruning, "_pruned", counted)
    assert _run(calls) == full  # same products, scores, terms, reasons and paths, same order
    assert len(outcomes) == len(calls)
    assert sum(outcomes) > 0.5 * len(calls)  # most queries took the pruned path
    assert not all(outcomes)  # and some fell back (a filter leaving few products)
