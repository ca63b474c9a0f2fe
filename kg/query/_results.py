"""Top-k selection and :class:`~kg.query.types.Recommendation` records (internal)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from kg.query.types import GraphPath, Recommendation

if TYPE_CHECKING:
    from kg.query.recommender import Recommender

__all__ = ["build", "leave_out", "top_k"]


#: Above this many scores :func:`top_k` first narrows the candidates with a sampled threshold.
_SAMPLE_ABOVE = 4096
#: One score in this many is sampled for the threshold.
_SAMPLE_STEP = 64


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best finite ``scores``, best first (ties: lower index first).

    Products left out carry ``-inf``; fewer than ``k`` come back when fewer are finite.

    ``np.argpartition`` slows down about twentyfold (0.2 to 4 ms at 100k scores) when most
    scores are equal, as they are when a category filter sets most of them to ``-inf``. So for
    long arrays a threshold ``t`` is taken first: the ``k``-th best of every 64th score. At
    least ``k`` scores are ``>= t`` (those samples), so the top ``k`` are the scores ``> t`` (about
    ``64 k`` of them) completed, when they are fewer than ``k``, by the lowest indices equal
    to ``t``; the exact selection then runs on those few.
    """
    n = scores.size
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, np.int64)
    sample = scores[::_SAMPLE_STEP]
    if n > _SAMPLE_ABOVE and sample.size > k:
        t = np.partition(sample, sample.size - k)[sample.size - k]
        above = np.flatnonzero(scores > t)
        if above.size < k:
            part = np.concatenate([above, np.flatnonzero(scores == t)[: k - above.size]])
        else:
            part = above[_select(scores[above], k)]
    else:
        part = _select(scores, k)
    part = part[np.isfinite(scores[part])]
    return part[np.lexsort((part, -scores[part]))]


def leave_out(scores: np.ndarray, products: np.ndarray | None, blocked: np.ndarray) -> None:
    """Set the scores of the ``blocked`` product indices to ``-inf``, in place; ``scores`` is
    over all products, or over ``products`` (ascending) where those are given."""
    if products is None:
        scores[blocked] = -np.inf
        return
    if blocked.size == 0 or products.size == 0:
        return
    at = np.minimum(np.searchsorted(products, blocked), products.size - 1)
    scores[at[products[at] == blocked]] = -np.inf


def _select(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` best scores, unordered (ties at the cut: the lowest indices)."""
    n = scores.size
    if k >= n:
        return np.arange(n)
    part = np.argpartition(scores, n - k)[n - k :]
    cut = scores[part].min()
    if np.isfinite(cut):  # ties at the cut: the lowest indices, whatever the partition
        above = part[scores[part] > cut]
        part = np.concatenate([above, np.flatnonzero(scores == cut)[: k - above.size]])
    return part


def build(
    rec: Recommender,
    top: np.ndarray,
    scores: np.ndarray,
    parts: Mapping[str, np.ndarray],
    mode: str,
    query: str | None,
    paths: Sequence[GraphPath | None] | None,
    *,
    level: int | None = None,
    reasons: Sequence[str] | None = None,
) -> list[Recommendation]:
    """One record per product of ``top``, ranked 1.. in that order.

    Args:
        rec: the recommender (for ids and names).
        top: product indices, best first.
        scores: the score of each product of ``top``.
        parts: the weighted score terms at ``top``, by name (each ``(len(top),)``).
        mode: ``"related"``, ``"recommend"``, ``"cross_category"`` (wording of reasons) or
            ``"search"`` (with ``reasons``).
        query: the query product id (``related``) or user id.
        paths: one path (or ``None``) per result, or ``None``.
        level: the tree level of a cross-category query.
        reasons: one reason per product, instead of the largest term in words.
    """
    ix = rec.index
    top = np.asarray(top, np.int64)
    # plain Python values up front: indexing numpy arrays one scalar at a time is slow
    columns = [(name, np.asarray(values).tolist()) for name, values in parts.items()]
    leaves, brands = ix.leaf[top].tolist(), ix.brand[top].tolist()
    ancestors = None if level is None else ix.cat_path[ix.leaf[top], level - 1].tolist()
    out = []
    for row, (j, score) in enumerate(zip(top.tolist(), np.asarray(scores).tolist(), strict=True)):
        terms = {name: float(values[row]) for name, values in columns}
        positive = [n for n in terms if terms[n] > 0]
        term = max(positive, key=terms.__getitem__) if positive else None
        leaf, brand = leaves[row], brands[row]
        if reasons is not None:
            reason = reasons[row]
        else:
            reason = _reason(rec, mode, term, leaf, brand, query)
        if ancestors is not None:
            a = ancestors[row]
            reason = f"new to you at level {level}: {ix.category_names[a] or ix.category_ids[a]}; {reason}"
        out.append(
            Recommendation(
                product_id=ix.product_ids[j],
                score=float(score),
                rank=row + 1,
                reason=reason,
                title=ix.titles[j],
                category_id=ix.category_ids[leaf] if leaf < ix.n_categories else None,
                brand_id=ix.brand_ids[brand] if brand < ix.n_brands else None,
                path=None if paths is None else paths[row],
                terms=terms,
            )
        )
    return out


def _reason(
    rec: Recommender, mode: str, term: str | None, leaf: int, brand: int, query: str | None
) -> str:
    """The largest score term in words; ``leaf`` and ``brand`` are the product's."""
    ix = rec.index
    if term is None:
        return "no positive score term (ranked last by the score)"
    if term == "vector":
        return "similar in the fused embedding"
    if term == "co_interaction":
        return f"often bought with {query}"
    if term == "model":
        return "fits the recent history (fusion model)"
    if term == "brand":
        name = ix.brand_names[brand] or ix.brand_ids[brand]
        return f"same brand: {name}" if mode == "related" else f"a brand of the history: {name}"
    name = ix.category_names[leaf] or ix.category_ids[leaf]
    if mode == "related":
        return f"same or nearby category: {name}"
    return f"close to the history's categories: {name}"
