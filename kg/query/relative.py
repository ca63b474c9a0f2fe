"""One user's ``m(u, ·)``, whole or only where it reaches a threshold.

``m(u, j)`` is the model's final score of product ``j`` divided by the best product's
(:meth:`gnn.scoring.FusionScorer.relative`). The pruned ranking
(:mod:`kg.query.pruning`) only needs the products with ``m >= θ``. For a model without
similarity terms those come from ``m`` of every product, which costs one ``(P, d)`` scan.

A model with similarity terms adds ``sim(u, j) = Σ_f τ_f c_f(j) · s_f(u)`` (unit rows ``c_f``,
the user's profile ``s_f``) in log space: ``m = exp(b + sim - max(b + sim))``, where ``b`` is
everything else. Its scan is twice as wide as the model's (128 dims against 64), and
``|sim(u, j)| <= R = Σ_f ‖s_f‖ · max_j ‖c_f(j)‖``. :class:`SimilarityBound` therefore
computes ``b`` for every product but ``sim`` only where it can matter:

* the maximum: it is at least ``L = b + sim`` of the product with the best ``b``, so only the
  products with ``b >= L - R`` can hold it;
* ``m >= θ`` needs ``b + sim >= max + log θ``, so ``b >= max + log θ - R``; with a category
  filter, only the products it lets through.

Every ``sim`` it computes is bit for bit what computing all of them gives (:func:`row_dots`),
and ``m`` goes through the same float32 steps, so the pruned and the full ranking agree
exactly. On the 100k-product bench shop with two 64-dim terms this computes ``sim`` for about
1,200 products per ``recommend`` instead of 100,000.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from gnn.scoring import FusionScorer, row_dots, to_ratio

__all__ = [
    "MAX_SUPERSET",
    "Dense",
    "RelativeScores",
    "SimilarityBound",
    "Where",
    "relative_scores",
]

#: :class:`SimilarityBound` gives up (the caller scores every product) when more than this
#: fraction of the catalogue may reach the threshold.
MAX_SUPERSET = 1 / 8
#: ``where(products) -> bool mask`` of :meth:`RelativeScores.above`.
Where = Callable[[np.ndarray], np.ndarray]
#: Margin of the bound for float32 rounding (log scores are at most a few tens).
_TOLERANCE = 1e-4


class RelativeScores:
    """``m(u, ·)`` of one user over ``size`` products."""

    size: int

    def full(self) -> np.ndarray:
        """``(size,)`` float32 ``m`` of every product (once: it may reuse its buffers)."""
        raise NotImplementedError

    def above(
        self, theta: float, limit: int, where: Where | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The products with ``m >= θ`` (``θ <= 1``): ``(products ascending, their m)``.

        Args:
            theta: the threshold.
            limit: most products wanted: ``None`` comes back when more are (or may be) above.
            where: ``where(products) -> bool mask``: the products that count; the others may
                be left out (every product counts when ``None``).
        """
        raise NotImplementedError

    def at(self, products: np.ndarray) -> np.ndarray:
        """``(n,)`` float32 ``m`` of ``products``, exactly as :meth:`full` gives them."""
        return self.full()[products]


class Dense(RelativeScores):
    """``m`` already computed for every product (``where`` is not applied: filtering
    would cost a pass over every product)."""

    def __init__(self, m: np.ndarray) -> None:
        self.m = m
        self.size = m.size

    def full(self) -> np.ndarray:
        return self.m

    def above(
        self, theta: float, limit: int, where: Where | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        products = np.flatnonzero(self.m >= np.float32(theta))
        return None if products.size > limit else (products, self.m[products])


class SimilarityBound(RelativeScores):
    """``m = exp(b + sim - max)`` with ``sim`` computed only where it can matter (module
    docstring).

    Args:
        base: ``(P,)`` float32 ``b``, the log scores without the similarity terms (owned).
        matrix: ``(P, D)`` float32 similarity rows, the terms stacked.
        profile: ``(D,)`` float32 the user's profile, ``sim = matrix @ profile``.
        blocks: ``(start, stop, largest row norm)`` of each term's columns.
    """

    def __init__(
        self,
        base: np.ndarray,
        matrix: np.ndarray,
        profile: np.ndarray,
        blocks: list[tuple[int, int, float]],
    ) -> None:
        self.base, self.matrix, self.profile = base, matrix, profile
        self.size = base.size
        p = profile.astype(np.float64)
        bound = sum(float(np.linalg.norm(p[lo:hi])) * norm for lo, hi, norm in blocks)
        self.bound = bound * (1.0 + 1e-4) + 1e-6  # the float32 dot products may round up
        self.z = np.empty(self.size, np.float32)  # b + sim where known
        self.known = np.zeros(self.size, bool)
        self.top: float | None = None  # max(b + sim), once known

    def full(self) -> np.ndarray:
        x = self.base
        x += row_dots(self.matrix, self.profile)
        return to_ratio(x)

    def above(
        self, theta: float, limit: int, where: Where | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        top = self._maximum()
        if top is None:
            return None
        # m >= θ needs b + sim >= max + log θ, so b >= max + log θ - R
        maybe = self._reaching(top + math.log(min(theta, 1.0)) - self.bound)
        if where is not None:
            maybe = maybe[where(maybe)]
        if maybe.size > max(limit, MAX_SUPERSET * self.size):
            return None
        m = self._ratios(maybe)
        keep = m >= np.float32(theta)
        products = maybe[keep]
        return None if products.size > limit else (products, m[keep])

    def at(self, products: np.ndarray) -> np.ndarray:
        if self._maximum() is None:
            return self.full()[products]
        return self._ratios(np.asarray(products, np.int64))

    def _maximum(self) -> float | None:
        """``max(b + sim)``; ``None`` when too many products may hold it."""
        if self.top is None:
            # the maximum is at least b + sim of the best b, so it is among the products
            # with b >= that - R
            best = np.array([int(np.argmax(self.base))])
            lead = self._reaching(float(self._exact(best)[0]) - self.bound)
            if lead.size > MAX_SUPERSET * self.size:
                return None
            self.top = float(self._exact(lead).max())
        return self.top

    def _ratios(self, products: np.ndarray) -> np.ndarray:
        """``m`` of ``products``: ``exp(b + sim - max)`` (after :meth:`_maximum`)."""
        assert self.top is not None
        z = self._exact(products)
        z -= self.top  # the same float32 steps as to_ratio over every product
        return np.exp(z, out=z)

    def _reaching(self, level: float) -> np.ndarray:
        """The products with ``b >= level`` (less a rounding margin), ascending."""
        level -= _TOLERANCE * (1.0 + abs(level))
        return np.flatnonzero(self.base >= np.float32(level))

    def _exact(self, products: np.ndarray) -> np.ndarray:
        """``b + sim`` of ``products`` (a copy), computing the ``sim`` not yet known."""
        new = products[~self.known[products]]
        if new.size:
            self.z[new] = self.base[new] + row_dots(self.matrix, self.profile, new)
            self.known[new] = True
        return self.z[products]


def relative_scores(
    scorer: FusionScorer, history: np.ndarray, user_index: int | None = None
) -> RelativeScores:
    """One user's ``m``: with similarity terms a :class:`SimilarityBound` that computes them
    only for the products that can reach a threshold; without, every product's (:class:`Dense`).

    Args:
        scorer: the model's scorer.
        history: product indices, oldest first.
        user_index: the user's index in the model (``None`` for a new user).
    """
    profile = scorer.profile(history)
    if profile is None:
        return Dense(scorer.relative(history, user_index))
    assert scorer.sim_matrix is not None
    return SimilarityBound(
        scorer.base(history, user_index), scorer.sim_matrix, profile, scorer.sim_blocks
    )
