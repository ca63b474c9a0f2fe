"""The saved fusion model: ``config.json`` + ``model.safetensors`` + ``id_maps.json`` (no pickle),
read by :func:`read_fusion` and written by :func:`write_fusion` only, as numpy arrays: neither
imports PyTorch (importing it took about 4 s of a one-shot ``kgrec`` query on this project's
2-core machine).

The tensors file holds the network's weights (``module.*``), the product (and user node)
vectors, the graph's edge indices, the product features, the reduced vectors of the
similarity terms, the co-occurrence matrix as CSR arrays and the item popularity.
:class:`FusionArrays` is what scoring needs (:class:`gnn.scoring.FusionScorer`, the query
layer, evaluation); the network's weights and the graph rebuild the PyTorch model for further
training (:meth:`gnn.fusion.FusionRecommender.load`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ingest.atomic import write_atomic

__all__ = [
    "FORMAT_VERSION",
    "MODEL_NAME",
    "EdgeType",
    "FusionArrays",
    "SavedFusion",
    "read_fusion",
    "write_fusion",
]

FORMAT_VERSION = 1
#: ``FusionRecommender.name``, the ``"model"`` entry of its ``config.json``.
MODEL_NAME = "fusion"
#: ``(source node type, relation, target node type)``.
EdgeType = tuple[str, str, str]


@dataclass(eq=False)
class FusionArrays:
    """What scoring a fusion model needs, as numpy arrays: every array and setting that decides
    its scores (the query layer's precomputed answers hash them all), with the product
    features new products are placed by.

    Attributes:
        node_ids: ``{node_type: [id, ...]}`` (the id maps).
        product_vectors: ``(P, d)`` float32 output vectors of the products.
        item_bias: ``(P,)`` float32 item bias of the score.
        position_logits: ``(history_len,)`` float32 history position weights (before softmax).
        history_proj_weight, history_proj_bias: ``(d, d)``, ``(d,)`` float32 history projection.
        user_node_vectors: ``(n_users, d)`` float32 user node outputs, or ``None``.
        cooc: ``(P, P)`` CSR co-occurrence counts of the blend.
        popularity: ``(P,)`` float64 item popularity.
        cooc_config: the co-occurrence settings (``n_recent``, ``recency_decay``...).
        blend, blend_mode: the co-occurrence blend weight and mode (``linear`` or ``log``).
        similarity: ``{feature: (P, s) float32}`` reduced vectors of the similarity terms.
        similarity_weights: ``{feature: τ}``.
        similarity_recent, similarity_decay: history items the terms read, and their decay.
        history_len: history items the user vector pools.
        features: ``(P, f)`` float32 product features the model was given, or ``None``.
        feature_info: how the features were made (``config.json`` ``features``).
        n_users: users of the split the model was fitted on.
        ids_sha256: fingerprint of that split's user and item ids.
    """

    node_ids: dict[str, list[str]]
    product_vectors: np.ndarray
    item_bias: np.ndarray
    position_logits: np.ndarray
    history_proj_weight: np.ndarray
    history_proj_bias: np.ndarray
    user_node_vectors: np.ndarray | None
    cooc: sp.csr_matrix
    popularity: np.ndarray
    cooc_config: dict[str, Any]
    blend: float
    blend_mode: str
    similarity: dict[str, np.ndarray]
    similarity_weights: dict[str, float]
    similarity_recent: int
    similarity_decay: float
    history_len: int
    features: np.ndarray | None
    feature_info: dict[str, Any] | None
    n_users: int
    ids_sha256: str

    @classmethod
    def load(cls, folder: str | Path) -> FusionArrays:
        """The arrays of a saved model (:func:`read_fusion`).

        Raises:
            ValueError: the folder holds another model or format version.
        """
        return read_fusion(folder).arrays


@dataclass(eq=False)
class SavedFusion:
    """Everything a model folder holds.

    Attributes:
        arrays: what scoring needs.
        meta: ``config.json``: format, ``config`` (the ``FusionConfig`` fields), edge types,
            feature width, fit information, versions...
        network: the ``FusionGNN`` state dict (``convs.0...``, ``item_bias``...).
        edge_index: ``{edge type: (2, E) int64}`` the graph messages flow over.
    """

    arrays: FusionArrays
    meta: dict[str, Any]
    network: dict[str, np.ndarray]
    edge_index: dict[EdgeType, np.ndarray]


def read_fusion(folder: str | Path) -> SavedFusion:
    """Read a model folder written by :func:`write_fusion` (numpy only).

    Raises:
        ValueError: the folder holds another model or format version.
    """
    from safetensors.numpy import load_file

    from gnn.model_files import read_model_config

    folder = Path(folder)
    meta = read_model_config(
        folder, model=MODEL_NAME, format_version=FORMAT_VERSION, reader="read_fusion"
    )
    t = load_file(str(folder / "model.safetensors"))
    n = int(meta["n_items"])
    config = meta["config"]
    network = {k[len("module.") :]: v for k, v in t.items() if k.startswith("module.")}
    arrays = FusionArrays(
        node_ids=json.loads((folder / "id_maps.json").read_text()),
        product_vectors=t["product_vectors"],
        item_bias=network["item_bias"],
        position_logits=network["position_logits"],
        history_proj_weight=network["history_proj.weight"],
        history_proj_bias=network["history_proj.bias"],
        user_node_vectors=t.get("user_node_vectors"),
        cooc=sp.csr_matrix((t["cooc.data"], t["cooc.indices"], t["cooc.indptr"]), (n, n)),
        popularity=t["popularity"],
        cooc_config=meta["cooccurrence"],
        blend=float(meta["blend"]),
        blend_mode=str(meta.get("blend_mode", "linear")),
        similarity={
            k[len("similarity.") :]: v for k, v in t.items() if k.startswith("similarity.")
        },
        similarity_weights={
            str(k): float(v) for k, v in meta.get("similarity_weights", {}).items()
        },
        # FusionConfig's defaults, for a config saved before the terms existed
        similarity_recent=int(config.get("similarity_recent", 3)),
        similarity_decay=float(config.get("similarity_decay", 0.5)),
        history_len=int(config["history_len"]),
        features=t.get("features"),
        feature_info=meta.get("features"),
        n_users=int(meta["n_users"]),
        ids_sha256=str(meta["ids_sha256"]),
    )
    edge_types = [tuple(et) for et in meta["edge_types"]]
    edge_index = {et: t[f"edge_index.{i}"] for i, et in enumerate(edge_types)}
    return SavedFusion(arrays, meta, network, edge_index)  # type: ignore[arg-type]


def write_fusion(saved: SavedFusion, folder: str | Path) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``id_maps.json`` to ``folder`` (each
    replaced atomically). ``saved.meta`` gets the format, the model name, the arrays' blend
    settings and ids and the edge types."""
    from safetensors.numpy import save

    a = saved.arrays
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"module.{k}": v for k, v in saved.network.items()}
    tensors["product_vectors"] = a.product_vectors
    if a.user_node_vectors is not None:
        tensors["user_node_vectors"] = a.user_node_vectors
    if a.features is not None:
        tensors["features"] = a.features
    for i, ei in enumerate(saved.edge_index.values()):
        tensors[f"edge_index.{i}"] = ei
    cooc = a.cooc.tocsr()
    tensors["cooc.indptr"] = cooc.indptr.astype(np.int64)
    tensors["cooc.indices"] = cooc.indices.astype(np.int64)
    tensors["cooc.data"] = cooc.data.astype(np.float64)
    for name, vectors in a.similarity.items():
        tensors[f"similarity.{name}"] = vectors
    tensors["popularity"] = np.asarray(a.popularity, np.float64)
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    write_atomic(folder / "model.safetensors", save(tensors))
    write_atomic(folder / "id_maps.json", json.dumps(a.node_ids))
    meta = {
        **saved.meta,
        "format_version": FORMAT_VERSION,
        "model": MODEL_NAME,
        "edge_types": [list(et) for et in saved.edge_index],
        "features": a.feature_info,
        "n_users": a.n_users,
        "n_items": int(a.product_vectors.shape[0]),
        "ids_sha256": a.ids_sha256,
        "blend": a.blend,
        "blend_mode": a.blend_mode,
        "similarity_weights": a.similarity_weights,
        "cooccurrence": a.cooc_config,
    }
    write_atomic(folder / "config.json", json.dumps(meta, indent=2, sort_keys=True))
    return folder
