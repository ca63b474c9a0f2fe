"""A product the model has not seen, placed in the model's terms without retraining.

A product listed after training (a live catalogue event) has text, a category and a brand, but
no interactions and no row in the model. :func:`place_product` gives it what the final score
(:mod:`gnn.scoring`) reads of a product, so it can be scored with the others:

* its product vector: the direction of ``α_text · unit(Σ_n a_n v_n) + α_category · unit(mean v
  under its category) + α_brand · unit(mean v of its brand)`` over its ``n`` nearest catalogue
  products by text cosine (weights ``a_n = max(cos, 0)``), with the neighbours' mean length;
* its item bias: the neighbours' weighted mean bias;
* its reduced similarity vectors (text, KGE): the unit direction of the neighbours' weighted
  sum;
* its co-occurrence in the model's blend, borrowed: ``C[h, new] = Σ_n a'_n C[h, n]`` over the
  same neighbours (``a'`` the weights normalised to sum 1), so that a user whose latest items
  co-occur with its look-alikes gets its share of the blend's co-occurrence term instead of
  none (without it, a blend with ``β > 0`` ranks every new product near the bottom). Real
  interactions add real counts on top. The query layer's co-interaction term and paths use
  real counts only;
* no popularity (it has no interactions yet).

Parts that do not exist (no category, no brand, no text neighbour with a positive cosine) drop
out; with none at all the product cannot be placed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gnn.fusion_io import FusionArrays

__all__ = ["NewProductParts", "place_product"]


@dataclass(frozen=True)
class NewProductParts:
    """A new product's arrays in a model's terms (what
    :meth:`gnn.scoring.FusionScorer.add_products` appends).

    Attributes:
        vector: ``(d,)`` float32 product vector (the scale of the model's own).
        bias: its item bias.
        similarity: ``{feature: (s,) float32}`` reduced similarity vectors.
        borrow: ``(product indices, weights summing to 1)`` whose co-occurrence columns its own
            is the weighted mean of, or ``None``.
        info: how it was placed (neighbours, parts and their weights).
    """

    vector: np.ndarray
    bias: float
    similarity: dict[str, np.ndarray] = field(default_factory=dict)
    borrow: tuple[np.ndarray, np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _unit(x: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(x))
    return x / norm if norm > 0 else x


def place_product(
    arrays: FusionArrays,
    text_vectors: np.ndarray,
    text: np.ndarray,
    *,
    category_members: np.ndarray | None = None,
    brand_members: np.ndarray | None = None,
    neighbours: int = 10,
    weights: tuple[float, float, float] = (0.5, 0.3, 0.2),
) -> NewProductParts:
    """Place one new product (module docstring).

    Args:
        arrays: the model's arrays (only its catalogue products are used).
        text_vectors: ``(P, t)`` L2-normalised text vectors of the model's products.
        text: ``(t,)`` the new product's L2-normalised text vector (the same encoder).
        category_members: product indices under its category, or ``None``.
        brand_members: product indices of its brand, or ``None``.
        neighbours: text neighbours it is placed by.
        weights: ``(α_text, α_category, α_brand)``.

    Raises:
        ValueError: nothing to place it by.
    """
    vectors = arrays.product_vectors
    n = vectors.shape[0]
    cos = text_vectors[:n] @ text
    m = min(neighbours, n)
    near = np.argpartition(-cos, m - 1)[:m]
    near = near[np.argsort(-cos[near], kind="stable")]
    a = np.clip(cos[near], 0.0, None).astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    parts: list[tuple[float, np.ndarray, str]] = []
    if a.sum() > 0:
        parts.append((weights[0], _unit(a @ vectors[near]), "text"))
    for members, alpha, name in ((category_members, weights[1], "category"),
                                 (brand_members, weights[2], "brand")):  # fmt: skip
        if members is not None and members.size:
            parts.append((alpha, _unit(vectors[members].mean(axis=0)), name))
    total = sum(w for w, _, _ in parts)
    if total <= 0:
        raise ValueError("new product: no text neighbour, category or brand to place it by")
    direction = _unit(sum(w / total * x for w, x, _ in parts))
    lend = a if a.sum() > 0 else np.ones(near.size)
    lend = lend / lend.sum()
    length = float(lend @ norms[near])
    bias = float(lend @ arrays.item_bias[near])
    similarity = {
        name: _unit(lend @ rows[near]).astype(np.float32)
        for name, rows in arrays.similarity.items()
    }
    borrow = None
    if a.sum() > 0:
        keep = a > 0
        borrow = (near[keep].astype(np.int64), a[keep] / a[keep].sum())
    info = {
        "neighbours": [(int(i), float(cos[i])) for i in near],
        "parts": {name: w / total for w, _, name in parts},
    }
    return NewProductParts((direction * length).astype(np.float32), bias, similarity, borrow, info)
