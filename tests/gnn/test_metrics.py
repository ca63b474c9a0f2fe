"""Ranking metrics against hand-computed cases, tie-breaking, exclusion, and the harness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnn.evaluate import EvalResult, Scorer, aggregate, evaluate
from gnn.metrics import (
    catalogue_coverage,
    mask_excluded,
    metrics_from_ranks,
    ranking_metrics,
    target_ranks,
    top_k,
)
from gnn.splits import Split


def _exclude(n_items: int, *rows: list[int]) -> sp.csr_matrix:
    """A (len(rows), n_items) exclusion matrix with the listed items of each row."""
    r = [i for i, items in enumerate(rows) for _ in items]
    c = [item for items in rows for item in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def test_hand_computed_one_user_five_items() -> None:
    # Scores of items 0..4; item 1 (the best score) is in the user's history, so excluded.
    # Targets: items 0 and 3. Ranking of the rest: 3 (0.7), 4 (0.5), 2 (0.3), 0 (0.1), so the
    # targets have ranks 1 and 4.
    #   K=2: hits = 1 (item 3) -> recall 1/2, hit 1.
    #        DCG  = 1/log2(1+1) = 1
    #        IDCG = 1/log2(2) + 1/log2(3) = 1 + 0.63093 = 1.63093   (min(K, |T|) = 2 slots)
    #        NDCG = 1 / 1.63093 = 0.61315
    #   K=4: hits = 2 -> recall 1.
    #        DCG  = 1/log2(2) + 1/log2(4+1) = 1 + 0.43068 = 1.43068; NDCG = 1.43068/1.63093
    #        = 0.87722
    #   MRR = 1/1 (item 3 is first).
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.7, 0.5]])
    metrics, top = ranking_metrics(scores, _exclude(5, [1]), [np.array([0, 3])], ks=(2, 4))
    idcg = 1 + 1 / math.log2(3)
    assert metrics["recall@2"][0] == pytest.approx(0.5)
    assert metrics["hit@2"][0] == 1.0
    assert metrics["ndcg@2"][0] == pytest.approx(1 / idcg)
    assert metrics["ndcg@2"][0] == pytest.approx(0.61315, abs=1e-5)
    assert metrics["recall@4"][0] == pytest.approx(1.0)
    assert metrics["ndcg@4"][0] == pytest.approx((1 + 1 / math.log2(5)) / idcg)
    assert metrics["ndcg@4"][0] == pytest.approx(0.87722, abs=1e-5)
    assert metrics["mrr"][0] == pytest.approx(1.0)
    assert top.tolist() == [[3, 4, 2, 0]]


def test_hand_computed_single_target_at_rank_three() -> None:
    # Ranking: 4 (0.9), 1 (0.8), 2 (0.5), 0 (0.2), 3 (0.1); the target 2 is third.
    # NDCG@5 = (1/log2(3+1)) / (1/log2(2)) = 0.5; nothing in the top 2; MRR = 1/3.
    scores = np.array([[0.2, 0.8, 0.5, 0.1, 0.9]])
    metrics, _ = ranking_metrics(scores, _exclude(5, []), [np.array([2])], ks=(2, 5))
    assert metrics["ndcg@5"][0] == pytest.approx(0.5)
    assert metrics["ndcg@2"][0] == 0.0
    assert metrics["recall@2"][0] == 0.0
    assert metrics["hit@5"][0] == 1.0
    assert metrics["mrr"][0] == pytest.approx(1 / 3)


def test_recall_divides_by_all_targets_even_above_k() -> None:
    # Three targets ranked 1, 2, 3; K = 2: recall = 2/3 (not 2/min(K, 3) = 1), NDCG@2 = 1.
    scores = np.array([[3.0, 2.0, 1.0, 0.0]])
    metrics, _ = ranking_metrics(scores, _exclude(4, []), [np.array([0, 1, 2])], ks=(2,))
    assert metrics["recall@2"][0] == pytest.approx(2 / 3)
    assert metrics["ndcg@2"][0] == pytest.approx(1.0)


def test_ties_broken_by_lowest_item_index() -> None:
    scores = torch.tensor([[1.0, 2.0, 2.0, 0.0, 2.0]])
    masked = mask_excluded(scores, _exclude(5, []))
    assert top_k(masked, 2).tolist() == [[1, 2]]
    assert top_k(masked, 4).tolist() == [[1, 2, 4, 0]]
    _, ranks = target_ranks(masked, _exclude(5, []), [np.array([4, 0, 2])])
    assert ranks.tolist() == [3, 4, 2]
    # All equal, item 1 excluded: the order is 0, 2, 3, 4.
    flat = torch.zeros((1, 5))
    ex = _exclude(5, [1])
    masked = mask_excluded(flat, ex)
    assert top_k(masked, 3).tolist() == [[0, 2, 3]]
    assert target_ranks(masked, ex, [np.array([3])])[1].tolist() == [3]


def test_ties_match_a_lexsort_reference() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (6, 40)).astype(np.float32)  # many ties
    rows = [list(rng.choice(40, 5, replace=False)) for _ in range(6)]
    ex = _exclude(40, *rows)
    masked = mask_excluded(torch.as_tensor(scores), ex)
    top = top_k(masked, 12).numpy()
    targets = [np.setdiff1d(np.arange(40), r)[:7] for r in rows]
    _, ranks = target_ranks(masked, ex, targets)
    for u in range(6):
        allowed = np.setdiff1d(np.arange(40), rows[u])
        order = allowed[np.lexsort((allowed, -scores[u, allowed]))]  # score desc, index asc
        assert top[u].tolist() == order[:12].tolist()
        expected = [int(np.flatnonzero(order == t)[0]) + 1 for t in targets[u]]
        assert ranks[u * 7 : (u + 1) * 7].tolist() == expected


def test_excluded_items_never_outrank_a_target() -> None:
    # The scorer gives -inf to target 2 itself; the excluded item 0 must still not count.
    scores = torch.tensor([[5.0, 4.0, float("-inf"), 1.0]])
    ex = _exclude(4, [0])
    metrics, top = ranking_metrics(scores, ex, [np.array([2])], ks=(3,))
    assert metrics["mrr"][0] == pytest.approx(1 / 3)  # after items 1 and 3
    assert top.tolist() == [[1, 3, 2]]


def test_excluded_target_and_nan_are_errors() -> None:
    with pytest.raises(ValueError, match="excluded"):
        ranking_metrics(np.ones((1, 3)), _exclude(3, [1]), [np.array([1])])
    with pytest.raises(ValueError, match="NaN"):
        ranking_metrics(np.array([[0.0, np.nan, 1.0]]), _exclude(3, []), [np.array([0])])


def test_catalogue_coverage() -> None:
    top = np.array([[0, 1], [1, 2]])
    assert catalogue_coverage(top, 10, 1) == pytest.approx(0.2)
    assert catalogue_coverage(top, 10, 2) == pytest.approx(0.3)


# ------------------------------------------------------------------------------ harness
def _toy_split() -> Split:
    """3 users x 5 items; user 2 has no test target."""
    train = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 0, 0, 0, 0]], float))
    seqs = [np.array([0, 1]), np.array([2]), np.array([0])]
    empty = np.zeros(0, np.int64)
    return Split(
        user_ids=["a", "b", "c"],
        item_ids=["i0", "i1", "i2", "i3", "i4"],
        train_sequences=seqs,
        test_history=seqs,
        valid=[empty, empty, empty],
        test=[np.array([3]), np.array([0, 4]), empty],
        train=train,
        known_test=train,
    )


class _Fixed:
    """Scores item i as 5 - i for everyone: items with low indices first."""

    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> _Fixed:
        return self

    def score(self, user_indices: np.ndarray, split: Split, on: str) -> np.ndarray:
        return np.tile(5.0 - np.arange(split.n_items), (len(user_indices), 1))


def test_evaluate_excludes_history_and_averages_over_users_with_targets() -> None:
    split = _toy_split()
    assert isinstance(_Fixed(), Scorer)
    result = evaluate(_Fixed(), split, on="test", ks=(1, 2), show_progress=False)
    # User a: items 0, 1 excluded -> ranking 2, 3, 4: target 3 at rank 2.
    # User b: item 2 excluded -> ranking 0, 1, 3, 4: targets 0 (rank 1) and 4 (rank 4).
    assert result.users.tolist() == [0, 1]
    assert result.n_users == 2
    assert result.per_user["mrr"].tolist() == pytest.approx([0.5, 1.0])
    assert result.per_user["recall@2"].tolist() == pytest.approx([1.0, 0.5])
    b_ndcg2 = 1.0 / (1 + 1 / math.log2(3))
    assert result.per_user["ndcg@2"].tolist() == pytest.approx([1 / math.log2(3), b_ndcg2])
    assert result["hit@1"] == pytest.approx(0.5)
    # Top-1 lists: a -> 2, b -> 0; top-2: {2, 3, 0, 1}.
    assert result["coverage@1"] == pytest.approx(2 / 5)
    assert result["coverage@2"] == pytest.approx(4 / 5)
    small = evaluate(_Fixed(), split, ks=(1, 2), batch_size=1, show_progress=False)
    assert small.metrics == result.metrics
    assert result.to_dict()["n_users"] == 2


def test_evaluate_batches_fewer_users_on_large_catalogues(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default a batch holds at most SCORE_CELLS scores (users x items): a million-product
    catalogue is scored 64 users at a time, not 1,024 (4 GB a copy)."""
    import gnn.evaluate as ev

    seen: list[int] = []

    class Counting(_Fixed):
        def score(self, user_indices: np.ndarray, split: Split, on: str) -> np.ndarray:
            seen.append(len(user_indices))
            return super().score(user_indices, split, on)

    split = _toy_split()
    whole = evaluate(Counting(), split, ks=(1, 2), show_progress=False)
    assert seen == [2]
    monkeypatch.setattr(ev, "SCORE_CELLS", 5)  # one user's 5 scores per batch
    seen.clear()
    assert evaluate(Counting(), split, ks=(1, 2), show_progress=False).metrics == whole.metrics
    assert seen == [1, 1]


def test_evaluate_rejects_wrong_shape_and_users_without_targets() -> None:
    class Bad(_Fixed):
        def score(self, user_indices: np.ndarray, split: Split, on: str) -> np.ndarray:
            return np.zeros((len(user_indices), 2))

    split = _toy_split()
    with pytest.raises(ValueError, match="shape"):
        evaluate(Bad(), split, show_progress=False)
    with pytest.raises(ValueError, match="no test targets"):
        evaluate(_Fixed(), split, users=np.array([2]), show_progress=False)


def test_aggregate_mean_and_std_over_runs() -> None:
    def run(v: float) -> EvalResult:
        return EvalResult("test", (10,), np.arange(2), {"mrr": np.array([v, v])}, {10: 0.5})

    summary = aggregate([run(0.2), run(0.4)])
    assert summary["mrr"][0] == pytest.approx(0.3)
    assert summary["mrr"][1] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert summary["coverage@10"] == (0.5, 0.0)


@pytest.mark.parametrize("ties", [False, True])
def test_batch_metrics_equal_metrics_from_exact_ranks(ties: bool) -> None:
    # ranking_metrics only computes the exact rank of each user's best target; its metrics
    # must equal those from the exact ranks of all targets.
    rng = np.random.default_rng(1)
    n_users, n_items = 30, 60
    scores = rng.integers(0, 5, (n_users, n_items)) if ties else rng.random((n_users, n_items))
    scores = torch.as_tensor(scores, dtype=torch.float32)
    known = [
        rng.choice(n_items, rng.integers(0, 10), replace=False).tolist() for _ in range(n_users)
    ]
    ex = _exclude(n_items, *known)
    targets = [
        rng.choice(np.setdiff1d(np.arange(n_items), k), rng.integers(1, 6), replace=False)
        for k in known
    ]
    metrics, _ = ranking_metrics(scores, ex, targets, ks=(1, 5, 10))
    row, ranks = target_ranks(mask_excluded(scores, ex), ex, targets)
    n_targets = np.array([len(t) for t in targets])
    expected = metrics_from_ranks(row, ranks, n_targets, (1, 5, 10))
    assert metrics.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(metrics[name], expected[name], err_msg=name)


def test_early_stopping_keeps_best_state_and_stops_after_patience() -> None:
    from gnn.early_stopping import EarlyStopping

    states = iter(range(100))
    stopper = EarlyStopping(2, lambda: {"n": next(states)})
    assert stopper.best_state == {"n": 0}
    assert not stopper.update(1, 0.2)
    assert not stopper.update(2, 0.3)
    assert not stopper.update(3, 0.25)
    assert stopper.update(4, 0.3)  # equal is not better: second stale validation
    assert (stopper.best, stopper.best_epoch, stopper.best_state) == (0.3, 2, {"n": 2})
