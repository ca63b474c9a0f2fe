"""The fusion model's blended distribution for one user, computed for serving latency.

:meth:`gnn.fusion.FusionRecommender.score_histories` is written for batches of users in torch;
for one user at a time a torch ``(1, d) @ (d, P)`` product is slower than numpy's matrix-vector
product (about 4 ms against 2 ms at 100k products on this project's 2-core machine), so
:class:`ModelScorer` computes the same quantity in numpy, user side included. With ``p = softmax(P u + b)`` and the co-occurrence
distribution ``q = (Σ_k decay^k · C[h_k, ·] + w_pop · pop + 1e-12) / Z``:

* ``linear`` blend: ``(1 - β) · p + β · q``;
* ``log`` blend: ``softmax((1 - β) · log(p + 1e-12) + β · log q)``.

``q`` differs from its padding only at the co-occurrence neighbours of the last few items, so
both are computed from a precomputed padding vector plus sparse corrections. The tests check
the result against ``score_histories`` (the source of truth) in both modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from gnn.fusion_io import FusionArrays
from kg.query.index import concat_ranges
from kg.query.relative import Dense, RelativeScores, SimilarityBound, to_ratio

if TYPE_CHECKING:
    from collections.abc import Callable

    from gnn.fusion import FusionRecommender
    from kg.query.candidates import ClusterIndex

__all__ = ["ModelScorer"]

#: ``(products, votes)`` without a co-occurrence blend.
_NO_VOTES = (np.zeros(0, np.int64), np.zeros(0, np.float64))


class ModelScorer:
    """One user's blended product distribution from a :class:`~gnn.fusion.FusionRecommender`.

    Args:
        model: the model's arrays (:class:`~gnn.fusion_io.FusionArrays`), or a fitted or
            loaded fusion model.
    """

    def __init__(self, model: FusionArrays | FusionRecommender) -> None:
        model = FusionArrays.of(model)
        self.model = model
        self.vectors = np.ascontiguousarray(model.product_vectors, np.float32)
        self.bias = model.item_bias.astype(np.float32)
        cooc = sp.csr_matrix(model.cooc)
        cooc.sort_indices()
        self.cooc = cooc
        self.blend = float(model.blend)
        self.blend_mode = str(getattr(model, "blend_mode", "linear"))
        if self.blend_mode not in ("linear", "log"):
            raise ValueError(f"ModelScorer: unknown blend mode {self.blend_mode!r}")
        cfg = model.cooc_config
        self.n_recent = int(cfg.get("n_recent", 5))
        self.decay = float(cfg.get("recency_decay", 0.8))
        pop_w = float(cfg.get("popularity_weight", 1e-6))
        assert model.popularity is not None
        padding = pop_w * np.asarray(model.popularity, np.float64) + 1e-12
        self.padding = padding
        self.padding32 = padding.astype(np.float32)
        self.padding_sum = float(padding.sum())
        self.log_padding = np.log(padding)
        self.log_offset = (
            (1.0 - self.blend) * self.bias.astype(np.float64) + self.blend * self.log_padding
        ).astype(np.float32)
        self.history_len = model.history_len
        self.position_logits = model.position_logits.astype(np.float64)
        self.proj_weight = model.history_proj_weight.astype(np.float32)
        self.proj_bias = model.history_proj_bias.astype(np.float32)
        self.user_nodes = model.user_node_vectors
        self.sim_matrix: np.ndarray | None = None
        terms, weights = model.similarity, model.similarity_weights
        used = [n for n in sorted(weights) if weights[n]] if terms else []
        if used:
            blocks = [terms[n].astype(np.float32) for n in used]
            self.sim_matrix = np.ascontiguousarray(np.hstack(blocks))
            self.sim_scale = np.concatenate(
                [
                    np.full(b.shape[1], weights[n], np.float32)
                    for n, b in zip(used, blocks, strict=True)
                ]
            )
            self.sim_recent, self.sim_decay = model.similarity_recent, model.similarity_decay
            stops = np.cumsum([b.shape[1] for b in blocks])
            self.sim_blocks = [
                (int(stop - b.shape[1]), int(stop), float(np.linalg.norm(b, axis=1).max()))
                for b, stop in zip(blocks, stops, strict=True)
            ]

    def user_vector(self, history: np.ndarray, user_index: int | None = None) -> np.ndarray:
        """``(d,)`` float32: the model's user vector from a history (product indices, oldest
        first), plus the user node's vector when the model has them and ``user_index`` is given.

        The same computation as ``FusionGNN.user_vectors`` (position-weighted mean of the
        latest items, then the history projection), in numpy for one user."""
        recent = np.asarray(history, np.int64)[::-1][: self.history_len]
        pooled = np.zeros(self.vectors.shape[1], np.float32)
        if recent.size:
            a = self.position_logits[: recent.size]
            w = np.exp(a - a.max())
            w /= w.sum()
            pooled = w @ self.vectors[recent]
        u = self.proj_weight @ pooled + self.proj_bias
        if self.user_nodes is not None and user_index is not None:
            u = u + self.user_nodes[user_index]
        return u.astype(np.float32, copy=False)

    def relative(self, history: np.ndarray, user_index: int | None = None) -> np.ndarray:
        """``(P,)`` float32 final probabilities divided by their maximum (the best product
        scores 1): the ``m(u, ·)`` of :mod:`kg.query.scoring`.

        Computed without normalising the distribution where the ranking does not need it:
        in the ``log`` blend the softmax normalisers of ``p`` and ``q`` cancel, so it is
        ``exp(z - max z)`` with ``z = P ((1 - β) u) + (1 - β) b + β log(padding + votes)``
        (+ the similarity terms ``Σ_f τ_f C_f s_f``, ``s_f`` the user's similarity profile).

        Args:
            history: product indices, oldest first.
            user_index: the user's index in the model (``None`` for a new user).
        """
        return self.relative_scores(history, user_index).full()

    def relative_scores(self, history: np.ndarray, user_index: int | None = None) -> RelativeScores:
        """:meth:`relative` for the pruned ranking: with similarity terms, a
        :class:`~kg.query.relative.SimilarityBound` that computes them only for the products
        that can reach a threshold; without, every product's ``m``."""
        u = self.user_vector(history, user_index)
        beta = self.blend
        profile = self._profile(history)
        idx, votes = self._votes(history) if beta > 0.0 else _NO_VOTES
        if self._log_blend:
            z = self.vectors @ (u * np.float32(1.0 - beta))
            z += self.log_offset
        else:
            z = self.vectors @ u
            z += self.bias
        if profile is None:
            return Dense(self._ratio_to_best(z, idx, votes, idx, self.padding32, None))
        base = self._log_base(z, idx, votes, idx, self.padding32)
        assert self.sim_matrix is not None
        return SimilarityBound(base, self.sim_matrix, profile, self.sim_blocks)

    def _ratio_to_best(
        self,
        z: np.ndarray,
        idx: np.ndarray,
        votes: np.ndarray,
        at: np.ndarray,
        padding32: np.ndarray,
        sims: np.ndarray | None,
        counted: np.ndarray | None = None,
        outside: Callable[[float], float] | None = None,
    ) -> np.ndarray:
        """``m`` from dense logits ``z`` (overwritten): the co-occurrence votes of the blend,
        then the ratio to the best. Shared by :meth:`relative` (all products) and
        :meth:`candidates` (some).

        Args:
            z: the model logits plus offset of the products scored.
            idx, votes: the voted products (:meth:`_votes`); ``at``: their positions in ``z``.
            padding32: the co-occurrence padding of the products scored.
            sims: the similarity terms of the products scored, or ``None``: added to the
                logits after the votes, or in the ``linear`` blend to the log of the mixture.
            counted: which entries of ``z`` the ``linear`` softmax normaliser sums (all when
                ``None``); ``outside(max z)`` adds the mass of the products not scored.
        """
        if sims is not None:
            base = self._log_base(z, idx, votes, at, padding32, counted, outside)
            base += sims
            return to_ratio(base)
        if self.blend > 0.0 and not self._log_blend:
            e = self._mixture(z, idx, votes, at, padding32, counted, outside)
            e *= np.float32(1.0 / float(e.max()))
            return e
        if self._log_blend:
            self._add_votes(z, idx, votes, at)
        return to_ratio(z)

    def _log_base(
        self,
        z: np.ndarray,
        idx: np.ndarray,
        votes: np.ndarray,
        at: np.ndarray,
        padding32: np.ndarray,
        counted: np.ndarray | None = None,
        outside: Callable[[float], float] | None = None,
    ) -> np.ndarray:
        """The log scores the similarity terms are added to (``z`` overwritten): the logits
        with the ``log`` blend's votes, or the log of the ``linear`` blend's mixture."""
        if self.blend > 0.0 and not self._log_blend:
            e = self._mixture(z, idx, votes, at, padding32, counted, outside)
            return np.log(e, out=e)
        if self._log_blend:
            self._add_votes(z, idx, votes, at)
        return z

    def _add_votes(self, z: np.ndarray, idx: np.ndarray, votes: np.ndarray, at: np.ndarray) -> None:
        """The ``log`` blend's co-occurrence votes, added to the logits at ``at``."""
        beta = self.blend
        z[at] += (beta * (np.log(self.padding[idx] + votes) - self.log_padding[idx])).astype(
            np.float32
        )

    def _mixture(
        self,
        z: np.ndarray,
        idx: np.ndarray,
        votes: np.ndarray,
        at: np.ndarray,
        padding32: np.ndarray,
        counted: np.ndarray | None,
        outside: Callable[[float], float] | None,
    ) -> np.ndarray:
        """The ``linear`` blend ``(1 - β) p + β q`` times a constant, from the logits ``z``
        (overwritten)."""
        beta = self.blend
        top = float(z.max())
        z -= top
        e = np.exp(z, out=z)
        norm = float((e if counted is None else e[counted]).sum(dtype=np.float64))
        if outside is not None:
            norm += outside(top)
        e *= np.float32((1.0 - beta) / norm)
        scale = beta / (self.padding_sum + float(votes.sum()))
        e += np.float32(scale) * padding32
        e[at] += (scale * votes).astype(np.float32)
        return e

    def _profile(self, history: np.ndarray) -> np.ndarray | None:
        """The user's similarity profile ``s`` (the similarity terms are ``C s``), or ``None``."""
        if self.sim_matrix is None:
            return None
        recent = np.asarray(history, np.int64)[::-1][: self.sim_recent]
        w = (self.sim_decay ** np.arange(recent.size)).astype(np.float32)
        return (w @ self.sim_matrix[recent]) * self.sim_scale

    # ------------------------------------------------------------ candidate search
    @property
    def _log_blend(self) -> bool:
        return self.blend > 0.0 and self.blend_mode == "log"

    def augmented(self) -> np.ndarray:
        """``(P, d + 1 [+ s])`` float32 ``[vectors, offset, similarity vectors]``: with the
        query of :meth:`candidates`, a product's row gives its dense logit ``z`` in one dot
        product (the offset is the item bias, or in the ``log`` blend the whole constant part
        of ``z``). The rows :class:`~kg.query.candidates.ClusterIndex` clusters."""
        offset = self.log_offset if self._log_blend else self.bias
        blocks = [self.vectors, offset[:, None]]
        if self.sim_matrix is not None:
            blocks.append(self.sim_matrix)
        return np.ascontiguousarray(np.hstack(blocks), np.float32)

    def candidates(
        self,
        history: np.ndarray,
        user_index: int | None,
        clusters: ClusterIndex,
        n_probe: int,
        extra: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``m(u, ·)`` (as :meth:`relative`) over candidate products only
        (:mod:`kg.query.candidates`): the members of the ``n_probe`` clusters of
        :meth:`augmented` rows that score best against the user's query, and the
        co-occurrence neighbours of the recent history.

        In the ``linear`` blend the softmax normaliser of ``p`` is summed over the probed
        clusters and estimated for the others as ``Σ_c n_c exp(centroid_c · q - max z)``.

        Args:
            history: product indices, oldest first.
            user_index: the user's index in the model (``None`` for a new user).
            clusters: a :class:`~kg.query.candidates.ClusterIndex` over :meth:`augmented`.
            n_probe: clusters probed.
            extra: more candidate product indices (repeats allowed), e.g. those the graph
                terms favour.

        Returns:
            ``(products ascending, m over them)``; every cluster probed gives :meth:`relative`.
        """
        u = self.user_vector(history, user_index)
        beta, d = self.blend, self.vectors.shape[1]
        linear = beta > 0.0 and not self._log_blend
        profile = self._profile(history)
        parts = [u * np.float32(1.0 - beta) if self._log_blend else u, np.ones(1, np.float32)]
        query = np.concatenate(parts + ([] if profile is None else [profile]))
        probed = clusters.probe(query, n_probe)
        idx, votes = self._votes(history) if beta > 0.0 else _NO_VOTES
        dense = slice(0, d + 1) if linear else slice(None)
        more = idx if extra is None or not extra.size else np.concatenate([idx, extra])
        products, z = clusters.search(query[dense], probed, more, dense)
        sims = None  # outside the linear blend they are columns of the augmented rows
        if linear and profile is not None:
            sims = clusters.search(profile, probed, more, slice(d + 1, None))[1]
        is_probed = np.zeros(clusters.n_lists, bool)
        is_probed[probed] = True
        rest = ~is_probed
        counted = is_probed[clusters.assign[products]] if linear else None

        def outside(top: float) -> float:
            centroid_z = clusters.centroids[rest][:, dense] @ query[dense]
            mass = clusters.sizes[rest] * np.exp(centroid_z.astype(np.float64) - top)
            return float(mass.sum())

        m = self._ratio_to_best(
            z,
            idx,
            votes,
            np.searchsorted(products, idx),
            self.padding32[products],
            sims,
            counted=counted,
            outside=outside,
        )
        return products, m

    def distribution(self, history: np.ndarray, user_index: int | None = None) -> np.ndarray:
        """``(P,)`` float32 blended probabilities (sums to 1), as ``score_histories`` gives.

        Args:
            history: product indices, oldest first.
            user_index: the user's index in the model (``None`` for a new user).
        """
        r = self.relative(history, user_index)
        r *= np.float32(1.0 / float(r.sum(dtype=np.float64)))
        return r

    def _votes(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(products ascending, Σ_k decay^k C[h_k, product])`` over the last ``n_recent``."""
        recent = np.asarray(history, np.int64)[::-1][: self.n_recent]
        cooc = self.cooc
        at, sizes = concat_ranges(cooc.indptr[recent], cooc.indptr[recent + 1])
        if not at.size:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        val = cooc.data[at] * np.repeat(self.decay ** np.arange(recent.size), sizes)
        # the rows are sorted: a stable sort merges them (faster than np.unique), and sums
        # each product's votes in the same order as a bincount would
        order = np.argsort(cooc.indices[at], kind="stable")
        products = cooc.indices[at[order]]
        first = np.flatnonzero(np.concatenate(([True], products[1:] != products[:-1])))
        return products[first].astype(np.int64), np.add.reduceat(val[order], first)
