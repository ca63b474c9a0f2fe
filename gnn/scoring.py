"""The fused model's final score, in numpy: its one implementation.

Evaluation (:meth:`FusionScorer.score`, ``kgrec evaluate``), the choice of the weights in
training (:func:`gnn.fusion_blend.choose_weights`) and the query layer (:mod:`kg.query`) all
score through :class:`FusionScorer`, which works on a model's arrays
(:class:`~gnn.fusion_io.FusionArrays`) without PyTorch. PyTorch computes the same user vector
and logits only inside the training epoch, where they need gradients
(:class:`~gnn.model.FusionGNN`).

For a user whose history ends ``h_0`` (latest), ``h_1``, ...:

* user vector ``u = W (Σ_k softmax(a)_k v_{h_k}) + c`` over the last ``history_len`` items
  (``v`` the product vectors, ``a`` the learned position logits, ``W, c`` the history
  projection), plus the user node's vector when the model has them and the user is known;
* model logits ``ℓ_j = u · v_j + b_j`` (``b`` the item bias), the model's distribution
  ``p = softmax(ℓ)``;
* co-occurrence votes ``c_j = Σ_{k < n_recent} decay^k C[h_k, j]`` and padding
  ``π_j = w_pop · pop_j + 1e-12`` (:class:`~gnn.baselines.cooccurrence.ItemCooccurrence`), the
  co-occurrence distribution ``q = (π + c) / Σ (π + c)``;
* similarity terms ``sim_j = Σ_f τ_f Σ_{k < r} γ^k c_f(h_k) · c_f(j)`` over the reduced feature
  vectors ``c_f`` (:mod:`gnn.similarity`; ``r`` = ``similarity_recent``, ``γ`` =
  ``similarity_decay``);
* the final log-score, up to a constant per user (:class:`FinalWeights`: mode, ``β``, ``τ``)::

      z = ℓ + sim                                  β = 0 (the GNN alone)
      z = (1 - β) ℓ + β log(π + c) + sim           "log": (1 - β) log p + β log q + const
      z = log((1 - β) p + β q) + sim               "linear"

  and the final distribution ``softmax(z)``.

``q`` differs from its padding only at the co-occurrence neighbours of the last few items, so
the votes are sparse corrections to dense ``(P,)`` parts computed once (the ``log`` blend's
``(1 - β) b + β log π``, the ``linear`` blend's padding). A single user is scored with 1-D
arrays (:meth:`FusionScorer.base`, :meth:`FusionScorer.relative`: the query layer), a batch
with 2-D ``(B, P)`` arrays and the same steps (:meth:`FusionScorer.score_histories`:
evaluation). Only the similarity terms are summed differently: for one user as one product
of the terms' stacked vectors with the user's ``τ``-scaled profile (:meth:`FusionScorer.profile`,
which the query layer's pruning evaluates for some products only), for a batch term by term
(:meth:`FusionScorer.parts`, which the weight search recombines under each ``τ``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from gnn.fusion_io import MODEL_NAME, FusionArrays
from gnn.new_products import NewProductParts
from gnn.splits import EvalOn, Split

__all__ = [
    "FinalWeights",
    "FusionScorer",
    "ScoreParts",
    "Votes",
    "concat_ranges",
    "history_matrix",
    "row_dots",
    "softmax",
    "to_ratio",
]


@dataclass(frozen=True)
class FinalWeights:
    """The weights of the final score (module docstring): blend ``mode``, ``beta`` and the
    similarity weights ``{feature: τ}``."""

    mode: str = "linear"
    beta: float = 0.0
    similarity: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("linear", "log"):
            raise ValueError(f"FinalWeights: unknown blend mode {self.mode!r}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"FinalWeights: beta must be in [0, 1], got {self.beta}")

    @property
    def used(self) -> list[str]:
        """The similarity terms with a non-zero weight, sorted."""
        return [name for name in sorted(self.similarity) if self.similarity[name]]


class Votes(NamedTuple):
    """Sparse co-occurrence votes ``c`` of a batch of users: ``values[i]`` for the user in row
    ``rows[i]`` and product ``products[i]`` (each row's products ascending), ``totals`` the
    sum of each row's votes."""

    rows: np.ndarray
    products: np.ndarray
    values: np.ndarray
    totals: np.ndarray

    def at(self, ndim: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The index of the votes in a ``(P,)`` (``ndim`` 1) or ``(B, P)`` score array."""
        return self.products if ndim == 1 else (self.rows, self.products)


class ScoreParts(NamedTuple):
    """The parts of the final score of a batch that do not depend on the weights.

    Attributes:
        dense: ``(B, P)`` float32 ``u · v_j`` (no bias).
        votes: the co-occurrence votes.
        similarity: ``{feature: (B, P) float32 Σ_k γ^k c_f(h_k) · c_f(j)}`` (no ``τ``).
    """

    dense: np.ndarray
    votes: Votes
    similarity: dict[str, np.ndarray]

    def rows(self, rows: np.ndarray) -> ScoreParts:
        """The parts of some rows of the batch."""
        keep = np.zeros(self.dense.shape[0], bool)
        keep[rows] = True
        new_row = np.cumsum(keep) - 1
        voted = keep[self.votes.rows]
        votes = Votes(
            new_row[self.votes.rows[voted]],
            self.votes.products[voted],
            self.votes.values[voted],
            self.votes.totals[rows],
        )
        sims = {name: s[rows] for name, s in self.similarity.items()}
        return ScoreParts(self.dense[rows], votes, sims)


def history_matrix(histories: Sequence[np.ndarray], length: int) -> np.ndarray:
    """``(len(histories), length)`` int64: the last ``length`` items of each history (oldest
    first), latest first, ``-1`` padded."""
    out = np.full((len(histories), length), -1, np.int64)
    for row, h in enumerate(histories):
        recent = np.asarray(h, np.int64)[::-1][:length]
        out[row, : recent.size] = recent
    return out


def concat_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(concatenated arange(lo[i], hi[i]), sizes)``: the positions of several CSR slices."""
    lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    sizes = hi - lo
    starts = np.repeat(lo - (np.cumsum(sizes) - sizes), sizes)
    return np.arange(int(sizes.sum()), dtype=np.int64) + starts, sizes


def row_dots(matrix: np.ndarray, vector: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """``matrix[rows] @ vector`` (all rows when ``rows`` is ``None``), float32.

    Each row's dot product is rounded the same whichever rows are asked: numpy's einsum loop
    runs per row. A BLAS matrix-vector product does not promise that (OpenBLAS computes the
    last rows of a block differently), and it is only about 25% faster here.
    """
    return np.einsum("ij,j->i", matrix if rows is None else matrix[rows], vector)


def to_ratio(x: np.ndarray) -> np.ndarray:
    """``exp(x - max x)`` in place, per row: log scores to ratios to the best (float32)."""
    x -= x.max(axis=-1, keepdims=True)
    return np.exp(x, out=x)


def softmax(x: np.ndarray) -> np.ndarray:
    """``softmax`` of each row of ``x`` in place (float32; sums in float64)."""
    e = to_ratio(x)
    e *= (1.0 / e.sum(axis=-1, dtype=np.float64, keepdims=True)).astype(np.float32)
    return e


class FusionScorer:
    """The final score of a fusion model (module docstring), from its arrays.

    Also a :class:`~gnn.evaluate.Scorer` of the evaluation harness (already fitted).

    Args:
        arrays: the model's arrays (:meth:`FusionArrays.load`, or
            :meth:`gnn.fusion.FusionRecommender.arrays`).
        weights: the final score's weights; default the model's own.

    Raises:
        ValueError: an unknown blend mode, or a similarity weight for a term the model lacks.
    """

    name = MODEL_NAME

    def __init__(self, arrays: FusionArrays, weights: FinalWeights | None = None) -> None:
        self.arrays = arrays
        self.weights = weights or FinalWeights(
            arrays.blend_mode, arrays.blend, dict(arrays.similarity_weights)
        )
        self.vectors = np.ascontiguousarray(arrays.product_vectors, np.float32)
        self.bias = arrays.item_bias.astype(np.float32)
        cooc = sp.csr_matrix(arrays.cooc)
        cooc.sort_indices()
        self.cooc = cooc
        #: rows of ``cooc`` that live interactions changed (:meth:`set_cooc_row`)
        self.cooc_rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        #: called with row indices before they are read (live: pending changes built then)
        self.before_read: Callable[[Iterable[int]], None] | None = None
        cfg = arrays.cooc_config
        self.n_recent = int(cfg.get("n_recent", 5))
        self.decay = float(cfg.get("recency_decay", 0.8))
        self.pop_weight = float(cfg.get("popularity_weight", 1e-6))
        padding = self.pop_weight * np.asarray(arrays.popularity, np.float64)
        self.padding = padding + 1e-12
        self.padding32 = self.padding.astype(np.float32)
        self.padding_sum = float(self.padding.sum())
        self.log_padding = np.log(self.padding)
        self._offsets: dict[float, np.ndarray] = {}
        #: ``(P,)`` bool: products whose popularity live interactions changed
        #: (:meth:`set_popularity`); the rows :meth:`inner_product_rows` gave before are stale
        #: for them
        self.popularity_changed = np.zeros(self.n_items, bool)
        self.history_len = arrays.history_len
        self.position_logits = arrays.position_logits.astype(np.float64)
        self.proj_weight = arrays.history_proj_weight.astype(np.float32)
        self.proj_bias = arrays.history_proj_bias.astype(np.float32)
        self.user_nodes = arrays.user_node_vectors
        self.sim_recent, self.sim_decay = arrays.similarity_recent, arrays.similarity_decay
        used = self.weights.used
        missing = [name for name in used if name not in arrays.similarity]
        if missing:
            raise ValueError(f"FusionScorer: the model has no similarity vectors {missing}")
        self.sim_matrix: np.ndarray | None = None
        self.sim_blocks: list[tuple[int, int, float]] = []
        if used:
            blocks = [arrays.similarity[n].astype(np.float32) for n in used]
            self.sim_matrix = np.ascontiguousarray(np.hstack(blocks))
            tau = self.weights.similarity
            self.sim_scale = np.concatenate(
                [np.full(b.shape[1], tau[n], np.float32) for n, b in zip(used, blocks, strict=True)]
            )
            stops = np.cumsum([b.shape[1] for b in blocks])
            self.sim_blocks = [
                (int(stop - b.shape[1]), int(stop), float(np.linalg.norm(b, axis=1).max()))
                for b, stop in zip(blocks, stops, strict=True)
            ]

    @classmethod
    def load(cls, folder: str | Path) -> FusionScorer:
        """The scorer of a saved model (:meth:`FusionArrays.load`; no PyTorch import)."""
        return cls(FusionArrays.load(folder))

    @property
    def n_items(self) -> int:
        """Number of products."""
        return int(self.vectors.shape[0])

    # ----------------------------------------------------------- evaluation harness
    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> FusionScorer:
        """Nothing to fit (the model is trained); checks that ``split`` is the model's."""
        self._check(split)
        return self

    def matches(self, split: Split) -> bool:
        """Whether ``split`` has the user and item ids the model was fitted on."""
        return split.ids_fingerprint() == self.arrays.ids_sha256

    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> np.ndarray:
        """``(len(user_indices), n_items)`` final distributions from ``split.history(on)``."""
        self._check(split)
        history = split.history(on)
        idx = np.asarray(user_indices, np.int64)
        return self.score_histories([history[u] for u in idx], user_indices=idx)

    def _check(self, split: Split) -> None:
        shape = (self.arrays.n_users, self.n_items)
        if (split.n_users, split.n_items) != shape:
            raise ValueError(
                f"fusion model was fitted on {shape} users x items, "
                f"the split has {(split.n_users, split.n_items)}"
            )

    # -------------------------------------------------------------------- batches
    def score_histories(
        self, histories: Sequence[np.ndarray], *, user_indices: np.ndarray | None = None
    ) -> np.ndarray:
        """Final distributions ``(len(histories), n_items)`` float32 of users given by their
        item histories (item indices, oldest first). ``user_indices`` adds known users' node
        vectors when the model has them; a new user is just a history."""
        return softmax(self.log_scores(self.parts(histories, user_indices=user_indices)))

    def parts(
        self,
        histories: Sequence[np.ndarray],
        *,
        user_indices: np.ndarray | None = None,
        similarity: Sequence[str] | None = None,
    ) -> ScoreParts:
        """The weight-free parts of the final score of a batch (:class:`ScoreParts`).

        Args:
            histories: item indices of each user, oldest first.
            user_indices: the users' indices in the model (``None``: new users).
            similarity: the similarity terms to compute; default those with a weight.
        """
        hist = history_matrix(histories, self.history_len)
        dense = self.user_vectors(hist, user_indices) @ self.vectors.T
        votes = [self.votes(h) for h in histories]
        sizes = np.fromiter((v[0].size for v in votes), np.int64, len(votes))
        batch = Votes(
            np.repeat(np.arange(len(votes)), sizes),
            np.concatenate([v[0] for v in votes] + [np.zeros(0, np.int64)]),
            np.concatenate([v[1] for v in votes] + [np.zeros(0)]),
            np.fromiter((v[1].sum() for v in votes), np.float64, len(votes)),
        )
        names = self.weights.used if similarity is None else list(similarity)
        sims = {}
        for name in names:
            vectors = self.arrays.similarity[name].astype(np.float32)
            sims[name] = self._profiles(vectors, hist) @ vectors.T
        return ScoreParts(dense, batch, sims)

    def log_scores(self, parts: ScoreParts, weights: FinalWeights | None = None) -> np.ndarray:
        """``z`` (module docstring) ``(B, n_items)`` float32 of a batch's parts (unchanged).

        Args:
            parts: from :meth:`parts`, with every similarity term ``weights`` uses.
            weights: default the scorer's.
        """
        weights = weights or self.weights
        z = self._blend(parts.dense.copy(), parts.votes, weights, log=True)
        for name in weights.used:
            z += np.float32(weights.similarity[name]) * parts.similarity[name]
        return z

    def user_vectors(
        self, history: np.ndarray, user_indices: np.ndarray | None = None
    ) -> np.ndarray:
        """``(B, d)`` float32 user vectors from ``(B, L)`` histories (:func:`history_matrix`),
        plus the user nodes' vectors when the model has them and ``user_indices`` is given."""
        mask = history >= 0
        a = np.where(mask, self.position_logits[: history.shape[1]], -np.inf)
        top = a.max(axis=1, keepdims=True)
        w = np.exp(a - np.where(np.isfinite(top), top, 0.0))
        w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-300)  # no history: all 0
        pooled = np.einsum("bl,bld->bd", w, self.vectors[np.maximum(history, 0)])
        u = pooled @ self.proj_weight.T + self.proj_bias
        if self.user_nodes is not None and user_indices is not None:
            u = u + self.user_nodes[np.asarray(user_indices, np.int64)]
        return u.astype(np.float32, copy=False)

    def _profiles(self, vectors: np.ndarray, history: np.ndarray) -> np.ndarray:
        """``(B, s)`` ``Σ_{k < r} γ^k c(h_k)`` of ``(B, L)`` histories for one term's vectors."""
        recent = history[:, : self.sim_recent]
        w = (self.sim_decay ** np.arange(recent.shape[1])).astype(np.float32) * (recent >= 0)
        return np.einsum("bk,bkd->bd", w, vectors[np.maximum(recent, 0)])

    # ------------------------------------------------------------------ one user
    def user_vector(self, history: np.ndarray, user_index: int | None = None) -> np.ndarray:
        """``(d,)`` float32: :meth:`user_vectors` of one history (product indices, oldest
        first; ``user_index`` ``None`` for a new user)."""
        users = None if user_index is None else np.array([user_index])
        return self.user_vectors(history_matrix([history], self.history_len), users)[0]

    def votes(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(products ascending, Σ_k decay^k C[h_k, product])`` over the last ``n_recent``
        items of a history (oldest first)."""
        recent = np.asarray(history, np.int64)[::-1][: self.n_recent]
        cooc = self.cooc
        if self.before_read is not None:
            self.before_read(recent.tolist())
        at, sizes = concat_ranges(cooc.indptr[recent], cooc.indptr[recent + 1])
        indices, data = cooc.indices[at], cooc.data[at]
        if self.cooc_rows and any(int(h) in self.cooc_rows for h in recent):
            rows = [self.cooc_row(int(h)) for h in recent]
            sizes = np.fromiter((r[0].size for r in rows), np.int64, len(rows))
            indices = np.concatenate([r[0] for r in rows])
            data = np.concatenate([r[1] for r in rows])
        if not indices.size:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        val = data * np.repeat(self.decay ** np.arange(recent.size), sizes)
        # the rows are sorted: a stable sort merges them (faster than np.unique), and sums
        # each product's votes in the same order as a bincount would
        order = np.argsort(indices, kind="stable")
        products = indices[order]
        first = np.flatnonzero(np.concatenate(([True], products[1:] != products[:-1])))
        return products[first].astype(np.int64), np.add.reduceat(val[order], first)

    def cooc_row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(products ascending, C[i, products])``: row ``i`` of the co-occurrence matrix,
        as live interactions left it (:meth:`set_cooc_row`)."""
        if self.before_read is not None:
            self.before_read((i,))
        row = self.cooc_rows.get(i)
        if row is not None:
            return row
        lo, hi = self.cooc.indptr[i], self.cooc.indptr[i + 1]
        return self.cooc.indices[lo:hi], self.cooc.data[lo:hi]

    # ------------------------------------------------------------------ live changes
    def set_cooc_row(self, i: int, products: np.ndarray, values: np.ndarray) -> None:
        """Replace row ``i`` of the co-occurrence matrix (``products`` ascending): interactions
        that came after training (:mod:`kg.query.live`)."""
        self.cooc_rows[i] = (np.asarray(products, np.int32), np.asarray(values, np.float64))

    def set_popularity(self, i: int, popularity: float) -> None:
        """Set product ``i``'s popularity (scaled as the model's: the most popular is 1), and
        so its co-occurrence padding."""
        if not self.arrays.popularity.flags.writeable:  # read from the model file
            self.arrays.popularity = self.arrays.popularity.copy()
        self.arrays.popularity[i] = popularity
        self.popularity_changed[i] = True
        old = float(self.padding[i])
        self.padding[i] = self.pop_weight * popularity + 1e-12
        self.padding32[i] = self.padding[i]
        self.log_padding[i] = np.log(self.padding[i])
        self.padding_sum += float(self.padding[i]) - old
        self._offsets.clear()

    def add_products(self, parts: Sequence[NewProductParts]) -> None:
        """Append new products (:func:`gnn.new_products.place_product`) to every per-product
        array: they are scored like the others from now on, with no co-occurrence and no
        popularity until interactions arrive."""
        if not parts:
            return
        n = len(parts)
        self.vectors = np.ascontiguousarray(
            np.vstack([self.vectors, np.stack([p.vector for p in parts]).astype(np.float32)])
        )
        self.bias = np.concatenate([self.bias, np.array([p.bias for p in parts], np.float32)])
        pad = np.full(n, 1e-12)
        self.padding = np.concatenate([self.padding, pad])
        self.padding32 = self.padding.astype(np.float32)
        self.log_padding = np.concatenate([self.log_padding, np.log(pad)])
        self.popularity_changed = np.concatenate([self.popularity_changed, np.zeros(n, bool)])
        self.padding_sum += float(pad.sum())
        self._offsets.clear()
        size = self.vectors.shape[0]
        old = self.cooc.shape[0]
        columns = sp.csc_matrix((old, n), dtype=np.float64)  # the borrowed co-occurrence
        borrowed = [(k, p.borrow) for k, p in enumerate(parts) if p.borrow is not None]
        if borrowed:
            cols, weights, owner = [], [], []
            for k, (idx, w) in borrowed:
                cols.append(idx[idx < old])
                weights.append(w[idx < old])
                owner.append(np.full(cols[-1].size, k))
            mix = sp.csr_matrix(
                (np.concatenate(weights), (np.concatenate(cols), np.concatenate(owner))),
                shape=(old, n),
            )
            columns = (self.cooc @ mix).tocsc()
        grown = sp.vstack([sp.hstack([self.cooc, columns]), sp.csr_matrix((n, size))]).tocsr()
        grown.sort_indices()
        self.cooc = grown
        for i, (products, values) in list(self.cooc_rows.items()):
            extra = columns.getrow(i) if i < old else None
            if extra is not None and extra.nnz:
                self.set_cooc_row(
                    i,
                    np.concatenate([products, extra.indices + old]),
                    np.concatenate([values, extra.data]),
                )
        if self.sim_matrix is not None:
            rows = np.stack([np.concatenate([p.similarity[name] for name in self.weights.used])
                             for p in parts]).astype(np.float32)  # fmt: skip
            self.sim_matrix = np.ascontiguousarray(np.vstack([self.sim_matrix, rows]))
        a = self.arrays
        a.product_vectors = self.vectors
        a.item_bias = self.bias
        a.popularity = np.concatenate([a.popularity, np.zeros(n)])
        for name in list(a.similarity):
            rows = np.stack([p.similarity[name] for p in parts]).astype(a.similarity[name].dtype)
            a.similarity[name] = np.vstack([a.similarity[name], rows])

    def profile(self, history: np.ndarray) -> np.ndarray | None:
        """``(D,)`` float32 the user's similarity profile ``s``, the used terms' stacked and
        scaled by ``τ``, so that ``sim = sim_matrix @ s``; ``None`` without terms."""
        if self.sim_matrix is None:
            return None
        recent = np.asarray(history, np.int64)[::-1][: self.sim_recent]
        w = (self.sim_decay ** np.arange(recent.size)).astype(np.float32)
        return (w @ self.sim_matrix[recent]) * self.sim_scale

    def base(self, history: np.ndarray, user_index: int | None = None) -> np.ndarray:
        """``(P,)`` float32 ``z`` of one user without the similarity terms (owned)."""
        votes = self._votes_of(history)
        return self._blend(self.vectors @ self.user_vector(history, user_index), votes, log=True)

    def relative(self, history: np.ndarray, user_index: int | None = None) -> np.ndarray:
        """``(P,)`` float32 the final probabilities of one user divided by their maximum (the
        best product scores 1), without normalising where the ranking does not need it.

        Args:
            history: product indices, oldest first.
            user_index: the user's index in the model (``None`` for a new user).
        """
        profile = self.profile(history)
        if profile is not None:
            z = self.base(history, user_index)
            assert self.sim_matrix is not None
            z += row_dots(self.sim_matrix, profile)
            return to_ratio(z)
        votes = self._votes_of(history)
        dense = self.vectors @ self.user_vector(history, user_index)
        scores = self._blend(dense, votes, log=False)
        if self._linear(self.weights):  # the mixture, not its log
            scores *= np.float32(1.0 / float(scores.max()))
            return scores
        return to_ratio(scores)

    # ------------------------------------------------------- approximate search
    def inner_product_rows(self) -> np.ndarray | None:
        """``(P, d + 1 + D)`` float32 rows ``r_j`` such that ``z_j = r_j · q`` for the query
        :meth:`inner_product_query` of any user, up to the sparse co-occurrence votes
        (:meth:`add_votes`): the product vectors, the constant part of the blend and the
        similarity rows. An inverted file over
        these rows finds the products with the best ``z`` without scoring all
        (:mod:`kg.query.candidates`). ``None`` for the ``linear`` blend, whose log of a sum
        is no inner product."""
        if self._linear(self.weights):
            return None
        beta = self.weights.beta
        offset = self.bias if beta == 0.0 else self._log_offset(beta)
        columns = [self.vectors, offset[:, None]]
        if self.sim_matrix is not None:
            columns.append(self.sim_matrix)
        return np.ascontiguousarray(np.hstack(columns), np.float32)

    def inner_product_query(self, history: np.ndarray, user_index: int | None = None) -> np.ndarray:
        """``(d + 1 + D,)`` float32 ``q`` of one user for :meth:`inner_product_rows`."""
        scale = 1.0 if self.weights.beta == 0.0 else 1.0 - self.weights.beta
        parts = [np.float32(scale) * self.user_vector(history, user_index), np.ones(1, np.float32)]
        profile = self.profile(history)
        if profile is not None:
            parts.append(profile)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def log_scores_at(
        self,
        history: np.ndarray,
        products: np.ndarray,
        user_index: int | None = None,
        *,
        votes: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """``(n,)`` float32 ``z`` of one user (module docstring, similarity terms included) at
        ``products`` (ascending, distinct) only, up to the same constant as :meth:`base`.
        ``votes``: :meth:`votes` of ``history``, when already computed.

        Raises:
            ValueError: the ``linear`` blend (its log needs every product's probability).
        """
        if self._linear(self.weights):
            raise ValueError("log_scores_at: the linear blend needs every product's score")
        products = np.asarray(products, np.int64)
        z = self.vectors[products] @ self.user_vector(history, user_index)
        beta = self.weights.beta
        if beta == 0.0:
            z += self.bias[products]
        else:
            z *= np.float32(1.0 - beta)
            z += self._log_offset(beta)[products]
            self.add_votes(z, products, self.votes(history) if votes is None else votes)
        profile = self.profile(history)
        if profile is not None:
            assert self.sim_matrix is not None
            z += row_dots(self.sim_matrix, profile, products)
        return z

    def add_votes(
        self, z: np.ndarray, products: np.ndarray, votes: tuple[np.ndarray, np.ndarray]
    ) -> None:
        """Add the ``log`` blend's co-occurrence correction of ``votes`` (:meth:`votes`) to
        ``z`` of ``products`` (ascending), in place: ``β (log(π + c) - log π)`` where a vote
        falls."""
        voters, values = votes
        beta = self.weights.beta
        if not voters.size or not products.size or beta == 0.0:
            return
        at = np.minimum(np.searchsorted(products, voters), products.size - 1)
        hit = products[at] == voters
        voted = voters[hit]
        correction = np.log(self.padding[voted] + values[hit])
        correction -= self.log_padding[voted]
        z[at[hit]] += (beta * correction).astype(np.float32)

    def _votes_of(self, history: np.ndarray) -> Votes | None:
        if self.weights.beta == 0.0:
            return None
        products, values = self.votes(history)
        rows = np.zeros(products.size, np.int64)
        return Votes(rows, products, values, np.array([values.sum()]))

    # ------------------------------------------------------------------ blending
    @staticmethod
    def _linear(weights: FinalWeights) -> bool:
        return weights.beta > 0.0 and weights.mode == "linear"

    def _blend(
        self,
        dense: np.ndarray,
        votes: Votes | None,
        weights: FinalWeights | None = None,
        *,
        log: bool,
    ) -> np.ndarray:
        """``z`` without the similarity terms from ``dense = u · v`` (overwritten; ``(P,)`` or
        ``(B, P)``). With ``log`` false, the ``linear`` blend returns the mixture
        ``(1 - β) p + β q`` times a constant per row instead of its log."""
        weights = weights or self.weights
        beta = weights.beta
        if beta == 0.0:
            dense += self.bias
            return dense
        assert votes is not None
        at = votes.at(dense.ndim)
        if weights.mode == "log":
            dense *= np.float32(1.0 - beta)
            dense += self._log_offset(beta)
            correction = np.log(self.padding[votes.products] + votes.values)
            correction -= self.log_padding[votes.products]
            dense[at] += (beta * correction).astype(np.float32)
            return dense
        dense += self.bias
        top = dense.max(axis=-1, keepdims=True)
        dense -= top
        e = np.exp(dense, out=dense)
        norm = e.sum(axis=-1, dtype=np.float64, keepdims=True)
        e *= ((1.0 - beta) / norm).astype(np.float32)
        scale = beta / (self.padding_sum + votes.totals)  # (B,)
        e += scale.astype(np.float32).reshape(norm.shape) * self.padding32
        e[at] += (scale[votes.rows] * votes.values).astype(np.float32)
        return np.log(e, out=e) if log else e

    def _log_offset(self, beta: float) -> np.ndarray:
        """``(1 - β) b + β log π`` (float32), the constant part of the ``log`` blend."""
        offset = self._offsets.get(beta)
        if offset is None:
            offset = ((1.0 - beta) * self.bias.astype(np.float64) + beta * self.log_padding).astype(
                np.float32
            )
            self._offsets[beta] = offset
        return offset
