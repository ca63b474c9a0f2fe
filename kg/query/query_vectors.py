"""Text vectors of search queries, with a bounded cache of the repeated ones.

A query's vector is one forward pass of the catalogue's text encoder (MiniLM, on the CPU) over
the query; ``bench/bench_search.py`` measures what that costs. Shops see the same queries again
and again, so :class:`QueryVectors` keeps the vectors of the last :attr:`size` distinct queries
(least recently used first out). Queries that differ only in case or spacing share a vector:
the key is the query lower-cased with runs of whitespace made one space, which the encoder
(an uncased WordPiece model) would not tell apart anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["CACHE_SIZE", "QueryVectors", "query_key"]

#: Distinct queries whose vectors are kept.
CACHE_SIZE = 4096


def query_key(query: str) -> str:
    """The cache key of ``query``: lower-cased, whitespace runs made one space, stripped."""
    return " ".join(query.lower().split())


class QueryVectors:
    """Unit text vectors of queries through an LRU cache.

    Args:
        encoder: returns the text encoder (:class:`gnn.text.TextEncoder`); called on the first
            query, so the model loads only when a query comes (or :meth:`load`).
        size: distinct queries kept.
    """

    def __init__(self, encoder: Callable[[], Any], size: int = CACHE_SIZE) -> None:
        self._encoder = encoder
        self.size = size
        self._cached = lru_cache(maxsize=size)(self._encode)

    def load(self) -> None:
        """Load the encoder's model now."""
        self._encoder().load()

    def vector(self, query: str) -> np.ndarray:
        """``(d,)`` float32 unit vector of ``query`` (read-only: it is shared)."""
        return self._cached(query_key(query))

    def cache_info(self) -> Any:
        """Hits, misses and size of the cache (:func:`functools.lru_cache`'s)."""
        return self._cached.cache_info()

    def cache_clear(self) -> None:
        """Forget every cached vector."""
        self._cached.cache_clear()

    def _encode(self, key: str) -> np.ndarray:
        v = self._encoder().encode([key], show_progress=False)[0].astype(np.float32)
        norm = float(np.linalg.norm(v))
        if norm > 0:
            v /= norm
        v.setflags(write=False)
        return v
