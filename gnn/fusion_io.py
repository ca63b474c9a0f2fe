"""Saving and loading a :class:`~gnn.fusion.FusionRecommender`: ``config.json`` +
``model.safetensors`` + ``id_maps.json`` (no pickle). The tensors file holds the network's
weights, the product (and user node) vectors, the graph's edge indices, the product features,
the reduced vectors of the similarity terms, the co-occurrence matrix as CSR arrays and the
item popularity, so a loaded model scores and
recomputes its vectors without tables or retraining.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from gnn.device import device as resolve_device
from gnn.model import FusionConfig, FusionGNN
from gnn.similarity import SimilarityTerms

if TYPE_CHECKING:
    from gnn.fusion import FusionRecommender

__all__ = ["FORMAT_VERSION", "load_fusion", "save_fusion"]

FORMAT_VERSION = 1


def save_fusion(model: FusionRecommender, folder: str | Path) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``id_maps.json`` to ``folder``."""
    from safetensors.torch import save_file

    from kg.versions import library_versions

    if model.module is None or model.product_vectors is None or model.cooc is None:
        raise RuntimeError("FusionRecommender.save before fit")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"module.{k}": v.cpu().contiguous() for k, v in model._state().items()}
    tensors["product_vectors"] = model.product_vectors.cpu().contiguous()
    if model.user_node_vectors is not None:
        tensors["user_node_vectors"] = model.user_node_vectors.cpu().contiguous()
    if model.features is not None:
        tensors["features"] = model.features.cpu().contiguous()
    for i, ei in enumerate(model.edge_index.values()):
        tensors[f"edge_index.{i}"] = ei.cpu().contiguous()
    cooc = model.cooc.tocsr()
    tensors["cooc.indptr"] = torch.as_tensor(cooc.indptr.astype(np.int64))
    tensors["cooc.indices"] = torch.as_tensor(cooc.indices.astype(np.int64))
    tensors["cooc.data"] = torch.as_tensor(cooc.data.astype(np.float64))
    if model.similarity is not None:
        for name, vectors in model.similarity.vectors.items():
            tensors[f"similarity.{name}"] = vectors.cpu().contiguous()
    assert model.popularity is not None
    tensors["popularity"] = torch.as_tensor(model.popularity.astype(np.float64))
    tmp = folder / "model.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(folder / "model.safetensors")
    (folder / "id_maps.json").write_text(json.dumps(model.node_ids))
    meta = {
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "config": asdict(model.config),
        "edge_types": [list(et) for et in model.edge_index],
        "feature_dim": 0 if model.features is None else int(model.features.shape[1]),
        "features": model.feature_info,
        "n_users": model.shape[0],
        "n_items": model.shape[1],
        "ids_sha256": model.ids_sha256,
        "blend": model.blend,
        "blend_mode": model.blend_mode,
        "similarity_weights": model.similarity_weights,
        "cooccurrence": model.cooc_config,
        "fit": model.fit_info,
        "versions": library_versions(),
    }
    (folder / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return folder


def load_fusion(
    cls: type[FusionRecommender], folder: str | Path, *, device: str | None = None
) -> FusionRecommender:
    """Read a model written by :meth:`save`; no tables or retraining needed.

    Raises:
        ValueError: the folder holds another model or format version.
    """
    from safetensors.torch import load_file

    from gnn.model_files import read_model_config

    folder = Path(folder)
    meta = read_model_config(
        folder, model=cls.name, format_version=FORMAT_VERSION, reader="FusionRecommender"
    )
    known = {f.name for f in fields(FusionConfig)}
    config = FusionConfig(**{k: v for k, v in meta["config"].items() if k in known})
    if device is not None:
        config = replace(config, device=device)
    dev = resolve_device(config.device)
    tensors = load_file(str(folder / "model.safetensors"), device=str(dev))
    model = cls.__new__(cls)
    cls.__init__(
        model,
        None,
        replace(config, use_text=False, use_kge=False, use_id=True),
        feature_info=meta.get("features"),
    )
    model.config = config
    model.node_ids = json.loads((folder / "id_maps.json").read_text())
    edge_types = [tuple(et) for et in meta["edge_types"]]
    model.edge_index = {et: tensors[f"edge_index.{i}"] for i, et in enumerate(edge_types)}
    model.features = tensors.get("features")
    num_nodes = {nt: len(ids) for nt, ids in model.node_ids.items()}
    module = FusionGNN(config, num_nodes, edge_types, int(meta["feature_dim"]), build_layers=False)
    model.module = module.to(dev)
    state = {k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")}
    layers = {k: v for k, v in state.items() if k.startswith(("convs.", "norms."))}
    module.load_state_dict({k: v for k, v in state.items() if k not in layers})
    module.defer_layers(layers)  # scoring needs no message passing (see gnn.model)
    module.eval()
    model.product_vectors = tensors["product_vectors"]
    model.user_node_vectors = tensors.get("user_node_vectors")
    n = int(meta["n_items"])
    model.cooc = sp.csr_matrix(
        (
            tensors["cooc.data"].cpu().numpy(),
            tensors["cooc.indices"].cpu().numpy(),
            tensors["cooc.indptr"].cpu().numpy(),
        ),
        shape=(n, n),
    )
    model.popularity = tensors["popularity"].cpu().numpy()
    model.cooc_config = meta["cooccurrence"]
    model.blend = float(meta["blend"])
    model.blend_mode = str(meta.get("blend_mode", "linear"))
    similarity = {
        k[len("similarity.") :]: v for k, v in tensors.items() if k.startswith("similarity.")
    }
    if similarity:
        model.similarity = SimilarityTerms(
            similarity, n_recent=config.similarity_recent, decay=config.similarity_decay
        )
    model.similarity_weights = {
        str(k): float(v) for k, v in meta.get("similarity_weights", {}).items()
    }
    model.shape = (int(meta["n_users"]), n)
    model.ids_sha256 = meta["ids_sha256"]
    model.fit_info = meta.get("fit", {})
    return model
