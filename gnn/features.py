"""Product input features of the fusion model: BERT text vectors and KG embeddings.

Both are aligned to a list of product ids (the split's item order) and L2-normalised per row,
so neither input dominates by scale. A product without a vector gets a zero row and is
counted in the returned info.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ingest.tables import GraphTables

__all__ = ["EntityVectors", "align_rows", "kge_features", "text_features"]


class EntityVectors(Protocol):
    """KG embeddings as :func:`kge_features` reads them: what a
    :class:`kg.embeddings.artifact.KGEmbeddings` (``kgrec embed``'s artifact) offers. ``gnn``
    takes them as arrays so that it never imports ``kg`` (``kg`` reads the artifact)."""

    config: dict[str, Any]

    @property
    def layout(self) -> str:
        """How the vectors are laid out (``"real"`` or ``"complex_re_im"``)."""
        ...

    def vectors(self, label: str) -> tuple[list[str], np.ndarray]:
        """Keys and vectors of every entity with Neo4j label ``label``."""
        ...


def align_rows(
    ids: Sequence[str], source_ids: Sequence[str], vectors: np.ndarray
) -> tuple[np.ndarray, int]:
    """Rows of ``vectors`` (keyed by ``source_ids``) in the order of ``ids``, L2-normalised.

    Returns:
        ``(float32 (len(ids), dim) array, number of ids without a vector)``; missing rows are 0.
    """
    row = {k: i for i, k in enumerate(source_ids)}
    out = np.zeros((len(ids), vectors.shape[1]), np.float32)
    missing = 0
    for i, key in enumerate(ids):
        j = row.get(key)
        if j is None:
            missing += 1
        else:
            out[i] = vectors[j]
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norm, out=out, where=norm > 0)
    return out, missing


def text_features(
    tables: GraphTables,
    ids: Sequence[str],
    cache_dir: str | Path,
    *,
    model_path: str | Path | None = None,
    show_progress: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """BERT vectors of the products ``ids`` through the text cache (see :mod:`gnn.text`).

    Args:
        tables: the graph (product text, brand and category path).
        ids: product ids in the wanted row order.
        cache_dir: the text cache root.
        model_path: a local BERT folder; ``None`` for the bundled all-MiniLM-L6-v2.
        show_progress: progress bar while encoding.

    Returns:
        ``(vectors, info)`` with the encoder's description and the number of missing rows.
    """
    from gnn.text import TextEncoder, encode_products

    encoder = TextEncoder(model_path) if model_path is not None else TextEncoder()
    source_ids, vectors = encode_products(tables, cache_dir, encoder, show_progress=show_progress)
    out, missing = align_rows(ids, source_ids, vectors)
    return out, {"encoder": encoder.describe(), "missing": missing, "dim": int(out.shape[1])}


def kge_features(emb: EntityVectors, ids: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """The product vectors of KG embeddings (e.g. ``KGEmbeddings.load(folder)``).

    Args:
        emb: the embeddings.
        ids: product ids in the wanted row order.

    Returns:
        ``(vectors, info)`` with the embeddings' model, dim, layout, data fingerprint and the
        number of products without a vector.
    """
    keys, vectors = emb.vectors("Product")
    out, missing = align_rows(ids, keys, vectors)
    info = {
        "model": emb.config.get("model"),
        "layout": emb.layout,
        "fingerprint": emb.config.get("data", {}).get("fingerprint"),
        "missing": missing,
        "dim": int(out.shape[1]),
    }
    return out, info
