"""Product input features of the fusion model: BERT text vectors and KG embeddings.

Both are aligned to a list of product ids (the split's item order) and L2-normalised per row,
so neither input dominates by scale. A product without a vector gets a zero row and is
counted in the returned info.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ingest.tables import GraphTables

__all__ = ["align_rows", "kge_features", "text_features"]


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


def kge_features(folder: str | Path, ids: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Product vectors of a KG-embedding artifact (see :mod:`kg.embeddings.artifact`).

    Args:
        folder: the artifact folder written by ``kgrec embed``.
        ids: product ids in the wanted row order.

    Returns:
        ``(vectors, info)`` with the artifact's model, dim, layout, fingerprint and the number
        of products without a vector.
    """
    from kg.embeddings.artifact import KGEmbeddings

    emb = KGEmbeddings.load(folder)
    keys, vectors = emb.vectors("Product")
    out, missing = align_rows(ids, keys, vectors)
    info = {
        "folder": str(folder),
        "model": emb.config.get("model"),
        "layout": emb.layout,
        "fingerprint": emb.config.get("data", {}).get("fingerprint"),
        "missing": missing,
        "dim": int(out.shape[1]),
    }
    return out, info
