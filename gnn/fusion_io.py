"""Saving and loading a :class:`~gnn.fusion.FusionRecommender`: ``config.json`` +
``model.safetensors`` + ``id_maps.json`` (no pickle). The tensors file holds the network's
weights, the product (and user node) vectors, the graph's edge indices, the product features,
the reduced vectors of the similarity terms, the co-occurrence matrix as CSR arrays and the
item popularity, so a loaded model scores and
recomputes its vectors without tables or retraining.

:class:`FusionArrays` reads what scoring needs as numpy arrays, without importing PyTorch
(the query layer runs in numpy; importing torch took about 4 s of a one-shot ``kgrec``
query on this project's 2-core machine). This module imports torch only inside the functions
that need it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ingest.atomic import write_atomic

if TYPE_CHECKING:
    from gnn.fusion import FusionRecommender

__all__ = ["FORMAT_VERSION", "MODEL_NAME", "FusionArrays", "load_fusion", "save_fusion"]

FORMAT_VERSION = 1
#: ``FusionRecommender.name``, the ``"model"`` entry of its ``config.json``.
MODEL_NAME = "fusion"


def save_fusion(model: FusionRecommender, folder: str | Path) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``id_maps.json`` to ``folder``."""
    import torch
    from safetensors.torch import save

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
    write_atomic(folder / "model.safetensors", save(tensors))
    write_atomic(folder / "id_maps.json", json.dumps(model.node_ids))
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
    write_atomic(folder / "config.json", json.dumps(meta, indent=2, sort_keys=True))
    return folder


def load_fusion(
    cls: type[FusionRecommender], folder: str | Path, *, device: str | None = None
) -> FusionRecommender:
    """Read a model written by :meth:`save`; no tables or retraining needed.

    Raises:
        ValueError: the folder holds another model or format version.
    """
    from safetensors.torch import load_file

    from gnn.device import device as resolve_device
    from gnn.model import FusionConfig, FusionGNN
    from gnn.similarity import SimilarityTerms

    folder = Path(folder)
    meta = _read_config(folder, "FusionRecommender")
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


def _read_config(folder: Path, reader: str) -> dict[str, Any]:
    from gnn.model_files import read_model_config

    return read_model_config(folder, model=MODEL_NAME, format_version=FORMAT_VERSION, reader=reader)


@dataclass(eq=False)
class FusionArrays:
    """What scoring a fusion model needs, as numpy arrays (see the module docstring): the
    inputs of :class:`~kg.query.model_scores.ModelScorer` and the query layer.

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

    @classmethod
    def load(cls, folder: str | Path) -> FusionArrays:
        """Read a model written by :func:`save_fusion` (numpy only: no torch import).

        Raises:
            ValueError: the folder holds another model or format version.
        """
        from safetensors.numpy import load_file

        folder = Path(folder)
        meta = _read_config(folder, "FusionArrays")
        t = load_file(str(folder / "model.safetensors"))
        n = int(meta["n_items"])
        config = meta["config"]
        return cls(
            node_ids=json.loads((folder / "id_maps.json").read_text()),
            product_vectors=t["product_vectors"],
            item_bias=t["module.item_bias"],
            position_logits=t["module.position_logits"],
            history_proj_weight=t["module.history_proj.weight"],
            history_proj_bias=t["module.history_proj.bias"],
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
        )

    @classmethod
    def of(cls, model: FusionArrays | FusionRecommender) -> FusionArrays:
        """The arrays of a fitted or loaded model in memory (copied to the CPU); arrays are
        returned as they are."""
        if isinstance(model, FusionArrays):
            return model
        if model.module is None or model.product_vectors is None or model.cooc is None:
            raise ValueError("FusionArrays needs a fitted or loaded FusionRecommender")
        assert model.popularity is not None

        def numpy(x: Any) -> Any:
            return None if x is None else x.detach().cpu().numpy()

        module, terms = model.module, model.similarity
        return cls(
            node_ids=model.node_ids,
            product_vectors=numpy(model.product_vectors),
            item_bias=numpy(module.item_bias),
            position_logits=numpy(module.position_logits),
            history_proj_weight=numpy(module.history_proj.weight),
            history_proj_bias=numpy(module.history_proj.bias),
            user_node_vectors=numpy(model.user_node_vectors),
            cooc=sp.csr_matrix(model.cooc),
            popularity=np.asarray(model.popularity),
            cooc_config=dict(model.cooc_config),
            blend=float(model.blend),
            blend_mode=str(getattr(model, "blend_mode", "linear")),
            similarity={} if terms is None else {k: numpy(v) for k, v in terms.vectors.items()},
            similarity_weights=dict(model.similarity_weights),
            similarity_recent=model.config.similarity_recent if terms is None else terms.n_recent,
            similarity_decay=model.config.similarity_decay if terms is None else terms.decay,
            history_len=int(model.config.history_len),
            features=numpy(model.features),
            feature_info=model.feature_info,
        )
