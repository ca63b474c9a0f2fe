"""Exact personalised ranking that adds the graph terms to a few products only.

The personalised score (:mod:`kg.query.scoring`) is
``s(u, j) = w_model · m(u, j) + w_brand · ba(u, j) + w_category · cp(u, j)``, with ``m`` the
model's score divided by its maximum. The graph terms are bounded: no allowed product gets more
than ``G = max_c w_category · cp(u, c)`` (over the allowed categories) ``+ max_b w_brand ·
ba(u, b)``. So a product with ``m(u, j) < θ`` scores below ``w_model · θ + G``, and when ``k``
products with ``m >= θ`` already score above that, the top ``k`` are among those.

:func:`user_totals` therefore scores the products with ``m >= θ`` only, ``θ`` lowered until
that condition holds: one or two rounds as a rule, since the second ``θ`` comes from the
``k``-th best score of the first. It scores every product instead for long lists (``k`` above
:data:`MAX_K_FRACTION` of the catalogue), and falls back to that when the candidates grow past
:data:`MAX_FRACTION` of the catalogue (a model whose ``m`` is flat, a filter that leaves few
products) or ``θ`` falls below :data:`MIN_THRESHOLD`. The results are the same as
scoring every product: same products, same float32 scores, same order of ties (lower product
index first, as :func:`~kg.query._results.top_k`).

At 100k products this replaces three gathers over all products (categories, brands, the
category filter) and a top-k selection over 100k scores by one comparison pass.
"""

from __future__ import annotations

import numpy as np

from kg.query import _results as results
from kg.query.index import GraphIndex
from kg.query.relative import RelativeScores
from kg.query.scoring import Parts, ScoreWeights, user_scores, weighted_history_terms

__all__ = [
    "FIRST_THRESHOLD",
    "MAX_FRACTION",
    "MAX_K_FRACTION",
    "MIN_THRESHOLD",
    "PRUNE_ABOVE",
    "user_totals",
]

#: Catalogues up to this many products are scored whole (pruning gains nothing there).
PRUNE_ABOVE = 4096
#: Lists longer than this fraction of the catalogue score every product: they need many
#: candidate rounds (at 100k products pruning stopped paying between k = 300 and 390).
MAX_K_FRACTION = 1 / 512
#: The first threshold ``θ`` on ``m(u, ·)`` (the best product has ``m = 1``).
FIRST_THRESHOLD = 0.125
#: Beyond this fraction of the catalogue as candidates, every product is scored.
MAX_FRACTION = 1 / 16
#: Below this threshold every product is scored instead.
MIN_THRESHOLD = 1e-4
#: Margin on the bound for float32 rounding of the sums (scores are about 1).
_TOLERANCE = 1e-5


def user_totals(
    index: GraphIndex,
    weights: ScoreWeights,
    m: RelativeScores,
    history: np.ndarray,
    k: int,
    *,
    allowed: np.ndarray | None,
    blocked: np.ndarray,
) -> tuple[np.ndarray | None, np.ndarray, Parts]:
    """The personalised scores that decide the top ``k``: ``(products, total, parts)``.

    Args:
        index: the graph index.
        weights: the score weights.
        m: ``m(u, ·)`` (:mod:`kg.query.relative`): the pruned rounds ask it for the products
            above a threshold only, the full ranking for every product's.
        history: the user's product indices, oldest first.
        k: results wanted.
        allowed: ``(C + 1,)`` bool categories whose products may be ranked, or ``None``.
        blocked: product indices left out.

    Returns:
        ``products``: the candidates, ascending, or ``None`` when every product was scored;
        ``total``: their scores (``-inf`` for those left out); ``parts(top)`` the terms at
        positions ``top`` of ``total``. The top ``k`` of ``total`` are the top ``k`` of all.
    """
    terms = weighted_history_terms(index, history, weights)
    if m.size > PRUNE_ABOVE and weights.model > 0 and k <= MAX_K_FRACTION * m.size:
        found = _pruned(index, weights, m, history, k, allowed, blocked, terms)
        if found is not None:
            return found
    total, parts = user_scores(index, weights, m.full(), history, allowed=allowed, terms=terms)
    results.leave_out(total, None, blocked)
    return None, total, parts


def _pruned(
    index: GraphIndex,
    weights: ScoreWeights,
    m: RelativeScores,
    history: np.ndarray,
    k: int,
    allowed: np.ndarray | None,
    blocked: np.ndarray,
    terms: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, Parts] | None:
    """The candidate rounds of :func:`user_totals`; ``None`` when they grow too many."""
    ba, cp = terms
    reachable = cp if allowed is None else cp[allowed]
    bound = float(reachable.max(initial=0.0)) + float(ba.max(initial=0.0))
    limit = max(k, int(MAX_FRACTION * m.size))
    where = None if allowed is None else (lambda p: allowed[np.take(index.leaf, p)])
    theta = FIRST_THRESHOLD
    while True:
        found = m.above(theta, limit, where)
        if found is None:
            return None
        products, above = found
        total, parts = user_scores(
            index, weights, above, history, allowed=allowed, products=products, terms=terms
        )
        results.leave_out(total, products, blocked)
        local = results.top_k(total, k)
        if local.size == k:
            # every product outside scores below w_model · θ + bound (rounding aside)
            kth = float(total[local[-1]])
            if kth > weights.model * theta + bound + _TOLERANCE:
                return products, total, parts
            theta = (kth - bound - 2 * _TOLERANCE) / weights.model  # the next round ends it
        else:
            theta /= 8.0
        if theta < MIN_THRESHOLD:
            return None
