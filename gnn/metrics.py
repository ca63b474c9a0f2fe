"""Full-ranking metrics on a batch of score rows.

Every function ranks **all** items: the items in a user's exclusion set (their known history)
are pushed to the bottom, everything else is ranked by score.

Definitions (``rank`` is 1-based; ``T`` is the user's target set, ``K`` the cutoff):

* ``hits@K``   = number of targets with ``rank <= K``.
* ``recall@K`` = ``hits@K / |T|`` (the standard definition; it cannot reach 1 when
  ``|T| > K``).
* ``ndcg@K``   = DCG / IDCG with DCG = sum over targets with ``rank <= K`` of
  ``1 / log2(rank + 1)`` and IDCG = sum over ``r = 1 .. min(K, |T|)`` of ``1 / log2(r + 1)``.
* ``hit@K``    = 1 when ``hits@K > 0``, else 0.
* ``mrr``      = ``1 / rank`` of the best-ranked target in the full ranking (no cutoff).
* ``coverage@K`` = share of all items that are in at least one evaluated user's top-K.

Ties: items with equal scores are ranked by item index, lowest first, everywhere (ranks of
targets and top-K lists alike), so results do not depend on the sort algorithm or the device.
Scores must not be NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "catalogue_coverage",
    "mask_excluded",
    "metrics_from_ranks",
    "ranking_metrics",
    "target_ranks",
    "top_k",
]

#: Pairs (user row, item) compared at once when ranking targets: bounds memory per chunk.
_RANK_CHUNK_CELLS = 1 << 24


def _count(mask: torch.Tensor) -> torch.Tensor:
    """True cells per row of a 2-D bool tensor, int64 (a uint8 -> int32 sum is the fast one)."""
    return mask.view(torch.uint8).sum(dim=1, dtype=torch.int32).long()


def mask_excluded(scores: torch.Tensor, exclude: sp.csr_matrix) -> torch.Tensor:
    """A copy of ``scores`` with excluded cells set to ``-inf``.

    Args:
        scores: ``(B, n_items)`` scores (integers are cast to float32).
        exclude: ``(B, n_items)`` sparse matrix; every stored cell is excluded.

    Returns:
        The masked copy on the device of ``scores``. A ``-inf`` the scorer gave is raised to
        the lowest finite value, so only excluded cells are ``-inf``.

    Raises:
        ValueError: shapes differ or a score is NaN.
    """
    if tuple(exclude.shape) != tuple(scores.shape):
        raise ValueError(f"exclude has shape {exclude.shape}, scores {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        row = int(torch.isnan(scores).any(dim=1).nonzero()[0, 0])
        raise ValueError(f"scores of batch row {row} contain NaN")
    if not scores.is_floating_point():
        scores = scores.float()
    # A scorer's own -inf becomes the lowest finite value, so excluded items stay below it.
    lowest = torch.finfo(scores.dtype).min
    out = scores.clone()
    if torch.isneginf(out).any():
        out[torch.isneginf(out)] = lowest
    coo = exclude.tocoo()
    rows = torch.as_tensor(coo.row.astype(np.int64), device=scores.device)
    cols = torch.as_tensor(coo.col.astype(np.int64), device=scores.device)
    out[rows, cols] = float("-inf")
    return out


def top_k(masked: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` best items of each row, best first, ties broken by lowest item index.

    Args:
        masked: ``(B, n_items)`` scores, excluded items already ``-inf``.
        k: list length, ``1 <= k <= n_items``.

    Returns:
        ``(B, k)`` int64 item indices.
    """
    b, n = masked.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    threshold = masked.topk(k, dim=1).values[:, -1:]
    chosen = masked >= threshold
    extra = _count(chosen) > k  # rows where ties at the threshold must be cut by index
    if extra.any():
        rows = masked[extra]
        thr = threshold[extra]
        tied = rows == thr
        need = k - _count(rows > thr)[:, None]
        chosen[extra] = (rows > thr) | (tied & (tied.cumsum(dim=1) <= need))
    items = chosen.nonzero()[:, 1].view(b, k)  # each row: exactly k items, by index
    order = masked.gather(1, items).sort(dim=1, descending=True, stable=True).indices
    return items.gather(1, order)


def _pairs(
    n: int, exclude: sp.csr_matrix, targets: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) of every target, checked: in range and not excluded."""
    b = len(targets)
    sizes = np.fromiter((len(t) for t in targets), np.int64, b)
    row = np.repeat(np.arange(b, dtype=np.int64), sizes)
    item = np.concatenate([np.asarray(t, np.int64) for t in targets]) if b else np.zeros(0, int)
    if item.size and (item.min() < 0 or item.max() >= n):
        raise ValueError(f"target item out of range [0, {n}): {item.min()}..{item.max()}")
    if item.size:
        hit = np.asarray(exclude[row, item]).ravel() != 0
        if hit.any():
            bad = int(np.flatnonzero(hit)[0])
            raise ValueError(f"target item {item[bad]} of batch row {row[bad]} is excluded")
    return row, item


def _exact_ranks(masked: torch.Tensor, row: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Full-ranking rank of each (row, item) pair; see :func:`target_ranks`."""
    n = masked.shape[1]
    ranks = np.empty(item.size, np.int64)
    dev = masked.device
    index = torch.arange(n, device=dev)
    step = max(1, _RANK_CHUNK_CELLS // max(n, 1))
    for lo in range(0, item.size, step):
        r = torch.as_tensor(row[lo : lo + step], device=dev)
        t = torch.as_tensor(item[lo : lo + step], device=dev)
        rows = masked[r]
        s = rows.gather(1, t[:, None])  # finite: targets are never excluded
        rank = _count(rows > s) + 1
        tied = rows == s
        shared = _count(tied) > 1  # the target shares its score: lower indices go first
        if shared.any():
            before = tied[shared] & (index[None, :] < t[shared, None])
            rank[shared] += _count(before)
        ranks[lo : lo + step] = rank.cpu().numpy()
    return ranks


def target_ranks(
    masked: torch.Tensor, exclude: sp.csr_matrix, targets: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank of every target in its row's full ranking.

    ``rank(t) = 1 + #{j allowed: s_j > s_t} + #{j allowed: s_j == s_t and j < t}``, where the
    allowed items are those not excluded (``-inf`` in ``masked``), so they never outrank a
    target.

    Args:
        masked: ``(B, n_items)`` scores, excluded items ``-inf`` (see :func:`mask_excluded`).
        exclude: ``(B, n_items)`` exclusion matrix used for ``masked``.
        targets: ``B`` arrays of target item indices; none may be excluded.

    Returns:
        ``(row, rank)``: batch row and rank of each target, int64 arrays of equal length, in
        the order of ``targets``.

    Raises:
        ValueError: a target is excluded or out of range.
    """
    if len(targets) != masked.shape[0]:
        raise ValueError(f"{len(targets)} target arrays for {masked.shape[0]} score rows")
    row, item = _pairs(masked.shape[1], exclude, targets)
    return row, _exact_ranks(masked, row, item)


def _ranks_for_metrics(
    masked: torch.Tensor, top: torch.Tensor, row: np.ndarray, item: np.ndarray
) -> np.ndarray:
    """Ranks that give the same metrics as :func:`target_ranks`, computed faster.

    A target in the top list gets its position there; each row's best target (highest score,
    then lowest index) gets its exact full rank (for MRR); any other target gets
    ``n_items + 1``, below every real rank (targets outside a full top list only exist when
    ``max(ks) < n_items``, so no cutoff counts it).
    """
    b, kmax = top.shape
    n = masked.shape[1]
    ranks = np.full(item.size, n + 1, np.int64)
    if item.size == 0:
        return ranks
    top_keys = (np.arange(b, dtype=np.int64)[:, None] * n + top.cpu().numpy()).ravel()
    order = np.argsort(top_keys)
    sorted_keys = top_keys[order]
    keys = row * n + item
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    found = sorted_keys[pos] == keys
    ranks[found] = order[pos[found]] % kmax + 1
    dev = masked.device
    score = masked[torch.as_tensor(row, device=dev), torch.as_tensor(item, device=dev)]
    score = score.cpu().numpy()
    by_row = np.lexsort((item, -score.astype(np.float64), row))
    first = by_row[np.r_[True, row[by_row][1:] != row[by_row][:-1]]]
    ranks[first] = _exact_ranks(masked, row[first], item[first])
    return ranks


def metrics_from_ranks(
    row: np.ndarray, ranks: np.ndarray, n_targets: np.ndarray, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Per-user ``recall@K``, ``ndcg@K``, ``hit@K`` and ``mrr`` from target ranks.

    Args:
        row: user row of each target, int64 ``(P,)``.
        ranks: 1-based rank of each target, int64 ``(P,)``.
        n_targets: number of targets per user, ``(B,)``, all >= 1.
        ks: cutoffs.

    Returns:
        ``{name: (B,) float64}``.
    """
    b = n_targets.size
    if (n_targets < 1).any():
        raise ValueError("every evaluated user needs at least one target")
    out: dict[str, np.ndarray] = {}
    gain = 1.0 / np.log2(ranks + 1.0)
    for k in ks:
        hit = ranks <= k
        hits = np.bincount(row[hit], minlength=b).astype(np.float64)
        dcg = np.bincount(row[hit], weights=gain[hit], minlength=b)
        ideal_discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
        idcg = ideal_discounts[np.minimum(k, n_targets) - 1]
        out[f"recall@{k}"] = hits / n_targets
        out[f"ndcg@{k}"] = dcg / idcg
        out[f"hit@{k}"] = (hits > 0).astype(np.float64)
    best = np.full(b, np.iinfo(np.int64).max)
    np.minimum.at(best, row, ranks)
    out["mrr"] = 1.0 / best
    return out


def ranking_metrics(
    scores: torch.Tensor | np.ndarray,
    exclude: sp.csr_matrix,
    targets: Sequence[np.ndarray],
    ks: Sequence[int] = (10, 20),
) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """Per-user metrics and top-``max(ks)`` lists of one batch.

    Args:
        scores: ``(B, n_items)`` scores, higher is better.
        exclude: ``(B, n_items)`` sparse exclusion matrix (the users' known items).
        targets: ``B`` non-empty arrays of target item indices.
        ks: cutoffs.

    Returns:
        ``(metrics, top)``: ``{name: (B,) float64}`` as in :func:`metrics_from_ranks`, and the
        ``(B, max(ks))`` int64 top lists (for :func:`catalogue_coverage`).
    """
    masked = mask_excluded(torch.as_tensor(scores), exclude)
    if len(targets) != masked.shape[0]:
        raise ValueError(f"{len(targets)} target arrays for {masked.shape[0]} score rows")
    row, item = _pairs(masked.shape[1], exclude, targets)
    top = top_k(masked, min(max(ks), masked.shape[1]))
    ranks = _ranks_for_metrics(masked, top, row, item)
    n_targets = np.fromiter((len(t) for t in targets), np.int64, len(targets))
    return metrics_from_ranks(row, ranks, n_targets, ks), top


def catalogue_coverage(top: np.ndarray | torch.Tensor, n_items: int, k: int) -> float:
    """Share of the ``n_items`` items that appear in the first ``k`` columns of ``top``.

    Args:
        top: ``(U, >= k)`` top lists, best first.
        n_items: catalogue size.
        k: cutoff.
    """
    top_np = np.asarray(top.cpu() if isinstance(top, torch.Tensor) else top)
    if top_np.size == 0:
        return 0.0
    return float(np.unique(top_np[:, :k]).size / n_items)
