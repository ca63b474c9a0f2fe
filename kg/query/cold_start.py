"""A new product's fused vector from its text, category and brand, without retraining.

The method (also in :mod:`kg.query.scoring`): the product is written as one text exactly like
the catalogue's text features (:func:`gnn.text.product_texts`) and encoded with the same BERT
encoder; its ``cold_neighbours`` nearest catalogue products by text cosine lend their fused
vectors, weighted by that cosine (negative cosines count 0); the mean fused vector of the
products under its category and of its brand's products are mixed in; the weighted sum of the
three unit vectors, normalised, is the new product's vector in the fused space.

The catalogue's text vectors come from the model's own input features when it was trained with
text and the encoder is the same (fingerprint match), else they are encoded once through the
text cache (:func:`gnn.text.encode_products`); the encoder is loaded on first use only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ingest.tables import GraphTables
from kg.query.index import GraphIndex
from kg.query.scoring import ScoreWeights

__all__ = ["NewProductEncoder"]


def _unit(x: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(x))
    return x / norm if norm > 0 else x


class NewProductEncoder:
    """Maps a new product's text, category and brand into the fused space.

    Args:
        index: the graph index.
        vectors: ``(P, d)`` L2-normalised fused product vectors.
        tables: the graph (product texts, when the catalogue must be encoded).
        feature_info: the model's ``feature_info`` (its ``"text"`` entry names the encoder).
        features: ``(P, d_in)`` the model's input features (text columns first), or ``None``.
        text_model: a local BERT folder; ``None``: the model's text encoder, else the default.
        text_cache: the text cache root; ``None``: ``~/.kgrec/cache/text``.
    """

    def __init__(
        self,
        index: GraphIndex,
        vectors: np.ndarray,
        tables: GraphTables,
        *,
        feature_info: dict[str, Any] | None = None,
        features: np.ndarray | None = None,
        text_model: str | Path | None = None,
        text_cache: str | Path | None = None,
    ) -> None:
        self.index = index
        self.vectors = vectors
        self.tables = tables
        self.feature_info = dict(feature_info or {})
        self.features = features
        self.text_model = text_model
        self.text_cache = text_cache
        self._encoder: Any = None
        self._text_vectors: np.ndarray | None = None

    @property
    def encoder(self) -> Any:
        """The :class:`gnn.text.TextEncoder` (built on first use)."""
        if self._encoder is None:
            # one text at a time (a new product, a search query): ONNX Runtime, see gnn.text_onnx
            self._encoder = self._text_encoder(runtime="onnx")
        return self._encoder

    def _text_encoder(self, **options: Any) -> Any:
        """The model's text encoder (its ``max_length`` and normalisation) with ``options``."""
        from gnn.text import TextEncoder

        enc = self.feature_info.get("text", {}).get("encoder", {})
        path = self.text_model if self.text_model is not None else enc.get("model_path")
        options |= {k: enc[k] for k in ("max_length", "normalize") if k in enc}
        return TextEncoder(path, **options)

    def preload(self) -> None:
        """Load the text encoder now, which the first new product would otherwise wait for
        (the torch and transformers imports and the weights: about 10 s on this project's
        2-core machine), and the catalogue's text vectors when the model's features hold them.
        (Otherwise the first new product encodes the catalogue, cached on disk: at 100k
        products, hours on a CPU.)"""
        self.encoder.load()
        if self._text_vectors is None:
            self._text_vectors = self._saved_text_vectors()

    def _saved_text_vectors(self) -> np.ndarray | None:
        """The catalogue's text vectors from the model's features, when this encoder made
        them; else ``None``."""
        info = self.feature_info.get("text")
        if info is None or self.features is None:
            return None
        if info.get("encoder", {}).get("model_fingerprint") != self.encoder.model_fingerprint:
            return None
        return np.ascontiguousarray(self.features[:, : int(info["dim"])], np.float32)

    def text_vectors(self, show_progress: bool = False) -> np.ndarray:
        """``(P, d_text)`` L2-normalised text vectors of the catalogue, in product order."""
        if self._text_vectors is None:
            saved = self._saved_text_vectors()
            if saved is not None:
                self._text_vectors = saved
            else:
                from gnn.features import align_rows
                from gnn.pipeline import default_text_cache
                from gnn.text import encode_products

                cache = self.text_cache if self.text_cache is not None else default_text_cache()
                # batches of long texts: torch, with every core (and the same cache key)
                batch = self._text_encoder(device="cpu")
                ids, vecs = encode_products(self.tables, cache, batch, show_progress=show_progress)
                self._text_vectors = align_rows(self.index.product_ids, ids, vecs)[0]
        return self._text_vectors

    def encode_new(
        self, products: Sequence[tuple[str, str | None, int | None, int | None]]
    ) -> np.ndarray:
        """``(n, t)`` L2-normalised text vectors of new products given as ``(title,
        description, category index or None, brand index or None)``, written like the
        catalogue's texts."""
        texts = [self.text_of(*p) for p in products]
        out = self.encoder.encode(texts, show_progress=False).astype(np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def add_products(self, vectors: np.ndarray, text_vectors: np.ndarray) -> None:
        """After products were appended (live): the fused vectors of all products, and the
        new products' text vectors."""
        tv = self.text_vectors()
        self.vectors = vectors
        self._text_vectors = np.ascontiguousarray(np.vstack([tv, text_vectors]), np.float32)

    def text_of(
        self, title: str, description: str | None, category: int | None, brand: int | None
    ) -> str:
        """The new product as one text, in the catalogue's format."""
        from gnn.text import product_texts

        ix = self.index
        data: dict[str, dict[str, list[Any]]] = {
            "products": {"id": ["new"], "title": [title], "description": [description]}
        }
        if brand is not None:
            data["brands"] = {"id": [ix.brand_ids[brand]], "name": [ix.brand_names[brand]]}
            data["made_by"] = {"product_id": ["new"], "brand_id": [ix.brand_ids[brand]]}
        if category is not None:
            data["in_category"] = {
                "product_id": ["new"],
                "category_id": [ix.category_ids[category]],
            }
        return product_texts(GraphTables.from_pydict(data))[1][0]

    def vector(
        self,
        title: str,
        description: str | None,
        category: int | None,
        brand: int | None,
        weights: ScoreWeights,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """The new product's unit vector ``(d,)`` and how it was made.

        Args:
            title: the product title.
            description: its description, or ``None``.
            category: a category index (any level), or ``None``.
            brand: a brand index, or ``None``.
            weights: ``cold_text``, ``cold_category``, ``cold_brand``, ``cold_neighbours``.

        Returns:
            ``(vector, info)``; ``info["neighbours"]`` lists ``(product_id, text cosine)`` of the
            text neighbours, ``info["parts"]`` the weight each part got.
        """
        text = self.text_of(title, description, category, brand)
        t = _unit(self.encoder.encode([text], show_progress=False)[0].astype(np.float32))
        tv = self.text_vectors()
        sims = tv @ t
        m = min(weights.cold_neighbours, sims.size)
        near = np.argpartition(-sims, m - 1)[:m]
        near = near[np.argsort(-sims[near], kind="stable")]
        a = np.clip(sims[near], 0.0, None)
        parts: list[tuple[float, np.ndarray, str]] = []
        if a.sum() > 0:
            parts.append((weights.cold_text, _unit(a @ self.vectors[near]), "text"))
        if category is not None:
            members = self.index.under([category])[self.index.leaf]
            if members.any():
                mean = self.vectors[members].mean(axis=0)
                parts.append((weights.cold_category, _unit(mean), "category"))
        if brand is not None:
            members = self.index.brand == brand
            if members.any():
                mean = self.vectors[members].mean(axis=0)
                parts.append((weights.cold_brand, _unit(mean), "brand"))
        total = sum(w for w, _, _ in parts)
        if total <= 0:
            raise ValueError("new product: no text neighbour, category or brand to place it by")
        v = _unit(sum(w / total * x for w, x, _ in parts))
        info = {
            "text": text,
            "neighbours": [(self.index.product_ids[i], float(sims[i])) for i in near],
            "parts": {name: w / total for w, _, name in parts},
        }
        return v.astype(np.float32), info
