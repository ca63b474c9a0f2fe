"""An on-disk cache of text embeddings, keyed by encoder and text hash.

One cache folder holds the vectors of one encoder (see :attr:`gnn.text.TextEncoder.cache_key`):

``index.json``
    ``{"format_version", "key", "dim", "meta", "shards": [file, ...],
    "rows": {sha256(text): [shard number, row]}}``.
``shard-<hash>.safetensors``
    one ``embeddings`` tensor, float32 ``(rows, dim)``, per batch of new texts.

Every file is written to a temporary name and moved into place with :func:`os.replace`, shard
first and index last, so an interrupted run leaves the cache as it was. Two processes writing the
same cache at once do not corrupt it, but the index written last may miss the other's new rows,
which are then encoded again on a later run. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ingest.atomic import write_atomic

__all__ = ["CACHE_FORMAT_VERSION", "TextEmbeddingCache", "text_hash"]

CACHE_FORMAT_VERSION = 1
#: Above this many shards, :meth:`TextEmbeddingCache.put` merges them into one.
MAX_SHARDS = 32
_TENSOR = "embeddings"


def text_hash(text: str) -> str:
    """SHA-256 hex digest of ``text`` encoded as UTF-8: the cache key of one text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TextEmbeddingCache:
    """Embeddings of texts by text hash, stored in ``folder`` (created when missing).

    Args:
        folder: the cache folder of one encoder.
        key: the encoder's cache key; an existing folder with another key is an error.
        dim: vector length; an existing folder with another length is an error.
        meta: free-form JSON description of the encoder, stored in the index.
    """

    def __init__(
        self, folder: str | Path, *, key: str, dim: int, meta: Mapping[str, Any] | None = None
    ) -> None:
        self.folder = Path(folder)
        self.key = key
        self.dim = int(dim)
        self.meta = dict(meta or {})
        self.folder.mkdir(parents=True, exist_ok=True)
        self._shards, self._rows = self._read_index()

    @property
    def index_path(self) -> Path:
        """The JSON index file."""
        return self.folder / "index.json"

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, digest: object) -> bool:
        return digest in self._rows

    def missing(self, digests: Sequence[str]) -> list[str]:
        """The distinct digests of ``digests`` that are not cached, in first-seen order."""
        return [d for d in dict.fromkeys(digests) if d not in self._rows]

    def get(self, digests: Sequence[str]) -> np.ndarray:
        """Cached vectors of ``digests``, float32 ``(len(digests), dim)``, in the same order.

        Raises:
            KeyError: a digest is not cached.
        """
        from safetensors import safe_open

        out = np.empty((len(digests), self.dim), np.float32)
        by_shard: dict[int, tuple[list[int], list[int]]] = {}
        for i, digest in enumerate(digests):
            try:
                shard, row = self._rows[digest]
            except KeyError:
                raise KeyError(f"{self.index_path}: no cached vector for text {digest}") from None
            targets, rows = by_shard.setdefault(shard, ([], []))
            targets.append(i)
            rows.append(row)
        for shard, (targets, rows) in by_shard.items():
            path = self.folder / self._shards[shard]
            if not path.exists():
                raise FileNotFoundError(f"{self.index_path} names shard {path}, which is missing")
            with safe_open(str(path), framework="numpy") as f:
                out[targets] = f.get_tensor(_TENSOR)[rows]
        return out

    def put(self, digests: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors`` (``(len(digests), dim)``) under ``digests``; known ones are skipped."""
        vectors = np.asarray(vectors, np.float32)
        if vectors.shape != (len(digests), self.dim):
            raise ValueError(
                f"vectors have shape {vectors.shape}, expected ({len(digests)}, {self.dim})"
            )
        first: dict[str, int] = {}
        for i, digest in enumerate(digests):
            if digest not in self._rows:
                first.setdefault(digest, i)
        if not first:
            return
        new = list(first)
        name = self._write_shard(vectors[list(first.values())], new)
        # Another process may have added rows since we read the index: keep them.
        self._shards, self._rows = self._read_index()
        shard = len(self._shards)
        self._shards.append(name)
        for row, digest in enumerate(new):
            self._rows.setdefault(digest, (shard, row))
        self._write_index()
        if len(self._shards) > MAX_SHARDS:
            self.compact()

    def compact(self) -> None:
        """Merge all shards into one and delete the old shard files."""
        if len(self._shards) <= 1:
            return
        digests = list(self._rows)
        vectors = self.get(digests)
        old = list(self._shards)
        name = self._write_shard(vectors, digests)
        self._shards = [name]
        self._rows = {d: (0, i) for i, d in enumerate(digests)}
        self._write_index()
        for shard in old:
            if shard != name:
                (self.folder / shard).unlink(missing_ok=True)

    # ---------------------------------------------------------------- private
    def _read_index(self) -> tuple[list[str], dict[str, tuple[int, int]]]:
        if not self.index_path.exists():
            return [], {}
        index = json.loads(self.index_path.read_text())
        for field, want in (
            ("format_version", CACHE_FORMAT_VERSION),
            ("key", self.key),
            ("dim", self.dim),
        ):
            if index.get(field) != want:
                raise ValueError(
                    f"{self.index_path}: {field} is {index.get(field)!r}, expected {want!r}"
                )
        rows = {d: (int(s), int(r)) for d, (s, r) in index["rows"].items()}
        return list(index["shards"]), rows

    def _write_index(self) -> None:
        index = {
            "format_version": CACHE_FORMAT_VERSION,
            "key": self.key,
            "dim": self.dim,
            "meta": self.meta,
            "shards": self._shards,
            "rows": {d: [s, r] for d, (s, r) in self._rows.items()},
        }
        write_atomic(self.index_path, json.dumps(index, sort_keys=True).encode())

    def _write_shard(self, vectors: np.ndarray, digests: Sequence[str]) -> str:
        from safetensors.numpy import save

        name = f"shard-{hashlib.sha256(''.join(digests).encode()).hexdigest()[:16]}.safetensors"
        data = save(
            {_TENSOR: np.ascontiguousarray(vectors, np.float32)}, metadata={"key": self.key}
        )
        write_atomic(self.folder / name, data)
        return name
