"""The fusion recommender: :class:`~gnn.model.FusionGNN` trained on a split, blended with the
co-occurrence graph term, saved and loaded as ``config.json`` + ``model.safetensors``.

Training (:meth:`FusionRecommender.fit`):

* examples are next-item predictions along each user's train sequence: the item at position
  ``t`` is the target, the (up to ``history_len``) items before it are the history. For a
  split without chronology (``protocol != "leave_one_out"``) each sequence is shuffled every
  epoch. ``examples_per_user`` caps the examples drawn per user and epoch;
* loss: cross-entropy of the full softmax over all products (a ranking loss that uses every
  item as a negative), with the history items of the example masked out;
* early stopping on validation NDCG@10 of the model alone; the best epoch's weights are kept.

Scoring blends the model's distribution ``p = softmax(model scores)`` with the co-occurrence
distribution ``q = cooc(u, ·) / Σ cooc(u, ·)`` of
:class:`~gnn.baselines.cooccurrence.ItemCooccurrence` (counted on the train sequences), either
``linear``: ``(1 - β) · p + β · q``, or ``log`` (a product of experts):
``(1 - β) · log p + β · log q``, returned normalised (the ``softmax`` of it). The mode and
``β`` are chosen from ``config.blend_grid`` on the validation split only; ``β = 0`` is the
model alone. Content-similarity terms (:mod:`gnn.similarity`: the text and KGE vectors of the
user's latest items against every product's) are added to the log-score with weights chosen
with the blend (:mod:`gnn.fusion_blend`, which states the whole final formula). Every term reads
the user's known history for the evaluated split, so a user's validation item feeds their test
ranking without refitting.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from gnn.device import device as resolve_device
from gnn.device import seed_everything
from gnn.early_stopping import EarlyStopping, validation_users
from gnn.fusion_blend import FinalWeights, choose_weights, final_log_scores
from gnn.fusion_io import MODEL_NAME
from gnn.model import FusionConfig, FusionGNN
from gnn.similarity import SimilarityTerms, reduce_features
from gnn.splits import EvalOn, Split
from ingest.tables import GraphTables

__all__ = ["FusionRecommender", "history_matrix"]
_KG_RELATIONS_EXCLUDED = {"interacted", "rev_interacted", "followed_by", "rev_followed_by"}


def history_matrix(histories: list[np.ndarray], length: int) -> np.ndarray:
    """``(len(histories), length)`` int64: the last ``length`` items of each, latest first,
    ``-1`` padded."""
    out = np.full((len(histories), length), -1, np.int64)
    for row, h in enumerate(histories):
        recent = np.asarray(h, np.int64)[::-1][:length]
        out[row, : recent.size] = recent
    return out


class FusionRecommender:
    """Fusion GNN + co-occurrence blend, with the :class:`~gnn.evaluate.Scorer` contract.

    Args:
        tables: the canonical tables the graph is built from (``None`` only for :meth:`load`).
        config: hyper-parameters; keyword arguments override its fields.
        text: ``(n_products, d_text)`` text features in sorted product-id order, or ``None``.
        kge: ``(n_products, d_kge)`` KG-embedding features in the same order, or ``None``.
        feature_info: provenance of the features (saved with the model).
        examples_per_user: most training examples per user and epoch (``None``: all).
    """

    name = MODEL_NAME

    def __init__(
        self,
        tables: GraphTables | None,
        config: FusionConfig | None = None,
        *,
        text: np.ndarray | None = None,
        kge: np.ndarray | None = None,
        feature_info: dict[str, Any] | None = None,
        examples_per_user: int | None = None,
        **overrides: Any,
    ) -> None:
        self.config = replace(config or FusionConfig(), **overrides)
        self.tables = tables
        self.text = text if self.config.use_text else None
        self.kge = kge if self.config.use_kge else None
        if self.config.use_text and text is None:
            raise ValueError("FusionRecommender: use_text is set but no text features given")
        if self.config.use_kge and kge is None:
            raise ValueError("FusionRecommender: use_kge is set but no KGE features given")
        self.feature_info = dict(feature_info or {})
        self.examples_per_user = examples_per_user
        self.module: FusionGNN | None = None
        self.features: torch.Tensor | None = None
        self.edge_index: dict[tuple[str, str, str], torch.Tensor] = {}
        self.node_ids: dict[str, list[str]] = {}
        self.product_vectors: torch.Tensor | None = None
        self.user_node_vectors: torch.Tensor | None = None
        self.cooc: sp.csr_matrix | None = None
        self.cooc_config: dict[str, Any] = {}
        self.popularity: np.ndarray | None = None
        self.blend = 0.0
        self.blend_mode = "linear"
        self.similarity: SimilarityTerms | None = None
        self.similarity_weights: dict[str, float] = {}
        self.ids_sha256 = ""
        self.shape: tuple[int, int] = (0, 0)
        self.fit_info: dict[str, Any] = {}

    # ------------------------------------------------------------------------- fit
    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> FusionRecommender:
        """Train on ``split`` (see the module docstring), then choose the blend weight.

        Returns:
            ``self``; ``fit_info`` holds the validation curve, best epoch, blend and timings.
        """
        from gnn.baselines.cooccurrence import ItemCooccurrence
        from gnn.evaluate import evaluate
        from gnn.graph import build_hetero

        if self.tables is None:
            raise RuntimeError("FusionRecommender.fit needs tables")
        cfg = self.config
        seed_everything(seed)
        dev = resolve_device(cfg.device)
        start = time.perf_counter()
        data = build_hetero(
            self.tables,
            split,
            interactions=cfg.use_interaction_edges or cfg.user_node,
            transitions=cfg.use_transition_edges,
            catalogue=cfg.use_kg_edges,
            kg_triples=cfg.use_kg_edges,
        )
        self._setup(data, split, dev)
        assert self.module is not None
        graph_s = time.perf_counter() - start
        cooc = ItemCooccurrence().fit(split, show_progress=False)
        self.cooc, self.cooc_config = cooc.item_item, asdict(cooc.config)
        self.popularity = cooc.popularity
        opt = torch.optim.Adam(self.module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        rng = np.random.default_rng(seed)
        valid_users = validation_users(split, cfg.valid_users, rng)
        sequential = split.meta.get("protocol") == "leave_one_out"
        stopper = EarlyStopping(cfg.patience, self._state)
        curve: list[dict[str, float]] = []
        epoch_s: list[float] = []
        bar = tqdm(range(1, cfg.max_epochs + 1), desc="fusion", disable=not show_progress)
        for epoch in bar:
            t0 = time.perf_counter()
            hist, target = self._examples(split, rng, shuffle=not sequential)
            loss = self._epoch(hist, target, rng, opt, dev)
            epoch_s.append(time.perf_counter() - t0)
            last = epoch == cfg.max_epochs
            if valid_users.size == 0 or (epoch % cfg.eval_every and not last):
                bar.set_postfix(loss=f"{loss:.4f}")
                curve.append({"epoch": epoch, "loss": loss})
                continue
            self._finish()
            self.blend, self.similarity_weights = 0.0, {}
            ndcg = evaluate(
                self, split, on="valid", ks=(10,), users=valid_users, show_progress=False
            )["ndcg@10"]
            curve.append({"epoch": epoch, "loss": loss, "valid_ndcg@10": ndcg})
            stop = stopper.update(epoch, ndcg)
            bar.set_postfix(loss=f"{loss:.4f}", ndcg10=f"{ndcg:.4f}", best=f"{stopper.best:.4f}")
            if stop:
                break
        bar.close()
        if valid_users.size == 0:
            stopper.best_epoch, stopper.best_state = epoch, self._state()
        self.module.load_state_dict(stopper.best_state)
        self._finish()
        self.similarity = self._similarity_terms(dev)
        trials = self._choose_weights(split, valid_users)
        self.ids_sha256 = split.ids_fingerprint()
        self.fit_info = {
            "seed": seed,
            "epochs_run": epoch,
            "best_epoch": stopper.best_epoch,
            "best_valid_ndcg@10": stopper.best if valid_users.size else None,
            "valid_users": int(valid_users.size),
            "blend": self.blend,
            "blend_mode": self.blend_mode,
            "similarity_weights": dict(self.similarity_weights),
            "blend_curve": [
                (t["mode"], t["beta"], t["ndcg@10"])
                for t in trials
                if not any(t["similarity"].values())
            ],
            "weight_trials": trials,
            "curve": curve,
            "epoch_seconds_mean": float(np.mean(epoch_s)) if epoch_s else 0.0,
            "graph_seconds": graph_s,
            "seconds": time.perf_counter() - start,
            "device": str(dev),
            "split": {**split.meta, **split.stats()},
        }
        return self

    def _setup(self, data: Any, split: Split, dev: torch.device) -> None:
        cfg = self.config
        edge_types = [
            et
            for et in data.edge_types
            if (cfg.use_interaction_edges or "interacted" not in et[1])
            and (cfg.use_transition_edges or "followed_by" not in et[1])
            and (cfg.use_kg_edges or et[1] in _KG_RELATIONS_EXCLUDED)
        ]
        self.node_ids = {nt: list(data[nt].ids) for nt in data.node_types}
        num_nodes = {nt: len(ids) for nt, ids in self.node_ids.items()}
        self.edge_index = {et: data[et].edge_index.to(dev) for et in edge_types}
        parts = [f for f in (self.text, self.kge) if f is not None]
        feats = np.concatenate(parts, axis=1) if parts else None
        self.features = torch.as_tensor(feats, device=dev) if feats is not None else None
        width = 0 if feats is None else feats.shape[1]
        self.module = FusionGNN(cfg, num_nodes, edge_types, width).to(dev)
        self.shape = (split.n_users, split.n_items)

    def _examples(
        self, split: Split, rng: np.random.Generator, *, shuffle: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(history (N, L) latest first, -1 padded; (N, 2) [user, target])``."""
        length = self.config.history_len
        hists, targets = [], []
        for user, seq in enumerate(split.train_sequences):
            if seq.size < 2:
                continue
            if shuffle:
                seq = rng.permutation(seq)
            positions = np.arange(1, seq.size)
            if self.examples_per_user is not None and positions.size > self.examples_per_user:
                positions = rng.choice(positions, self.examples_per_user, replace=False)
            for t in positions:
                hists.append(seq[max(0, t - length) : t])
                targets.append((user, seq[t]))
        if not targets:
            raise ValueError("FusionRecommender: no user has two train interactions")
        return history_matrix(hists, length), np.asarray(targets, np.int64)

    def _epoch(
        self,
        hist: np.ndarray,
        target: np.ndarray,
        rng: np.random.Generator,
        opt: torch.optim.Optimizer,
        dev: torch.device,
    ) -> float:
        assert self.module is not None
        self.module.train()
        perm = rng.permutation(target.shape[0])
        hist_t = torch.as_tensor(hist[perm], device=dev)
        target_t = torch.as_tensor(target[perm], device=dev)
        total, bs = 0.0, self.config.batch_size
        for lo in range(0, perm.size, bs):
            h, t = hist_t[lo : lo + bs], target_t[lo : lo + bs]
            x = self.module(self.features, self.edge_index)
            users = x["user"][t[:, 0]] if self.config.user_node else None
            u = self.module.user_vectors(x["product"], h, users)
            logits = self.module.scores(u, x["product"])
            rows = torch.arange(h.shape[0], device=dev).unsqueeze(1).expand_as(h)
            seen = (h >= 0) & (h != t[:, 1:2])
            logits = logits.index_put(
                (rows[seen], h[seen]), torch.tensor(float("-inf"), device=dev)
            )
            loss = torch.nn.functional.cross_entropy(logits, t[:, 1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * h.shape[0]
        return total / max(perm.size, 1)

    def _state(self) -> dict[str, torch.Tensor]:
        assert self.module is not None
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def _finish(self) -> None:
        assert self.module is not None
        self.module.eval()
        with torch.no_grad():
            x = self.module(self.features, self.edge_index)
        self.product_vectors = x["product"].detach()
        self.user_node_vectors = x["user"].detach() if self.config.user_node else None

    def _similarity_terms(self, dev: torch.device) -> SimilarityTerms | None:
        cfg = self.config
        if not any(cfg.similarity_grid):
            return None
        vectors = {
            name: torch.as_tensor(reduce_features(x, cfg.similarity_dim), device=dev)
            for name, x in (("text", self.text), ("kge", self.kge))
            if x is not None
        }
        if not vectors:
            return None
        return SimilarityTerms(vectors, n_recent=cfg.similarity_recent, decay=cfg.similarity_decay)

    def _choose_weights(self, split: Split, users: np.ndarray) -> list[dict[str, Any]]:
        self.blend, self.blend_mode, self.similarity_weights = 0.0, "linear", {}
        if users.size == 0:
            return []
        best, trials = choose_weights(
            self,
            split,
            users,
            blend_grid=self.config.blend_grid,
            similarity_grid=self.config.similarity_grid,
        )
        self.blend, self.blend_mode = best.beta, best.mode
        self.similarity_weights = {k: v for k, v in best.similarity.items() if v}
        return trials

    # ------------------------------------------------------------------------ score
    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> torch.Tensor:
        """``(len(user_indices), n_items)`` blended scores from ``split.history(on)``."""
        if (split.n_users, split.n_items) != self.shape:
            raise ValueError(
                f"fusion model was fitted on {self.shape} users x items, "
                f"the split has {(split.n_users, split.n_items)}"
            )
        history = split.history(on)
        idx = np.asarray(user_indices, np.int64)
        return self.score_histories([history[u] for u in idx], user_indices=idx)

    def score_histories(
        self, histories: list[np.ndarray], *, user_indices: np.ndarray | None = None
    ) -> torch.Tensor:
        """Final scores ``(len(histories), n_items)``, a distribution per row, of users given by
        their item histories (item indices, oldest first; formula: :mod:`gnn.fusion_blend`).
        ``user_indices`` adds known users' node vectors when the model uses them; a new user is
        just a history."""
        weights = FinalWeights(self.blend_mode, self.blend, self.similarity_weights)
        p, q, sims = self.score_parts(
            histories,
            user_indices=user_indices,
            cooc=self.blend > 0.0,
            similarity=[name for name, tau in self.similarity_weights.items() if tau],
        )
        if self.blend == 0.0 and not sims:
            return p
        return torch.softmax(final_log_scores(p, q, sims, weights), dim=1)

    def score_parts(
        self,
        histories: list[np.ndarray],
        *,
        user_indices: np.ndarray | None = None,
        cooc: bool = True,
        similarity: list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """The parts of the final score: the GNN's distribution ``p``, the co-occurrence
        distribution ``q`` (when ``cooc``) and the similarity terms named in ``similarity``
        (default: all the model has), each ``(len(histories), n_items)``."""
        if self.module is None or self.product_vectors is None:
            raise RuntimeError("FusionRecommender.score before fit or load")
        dev = self.product_vectors.device
        hist = torch.as_tensor(history_matrix(histories, self.config.history_len), device=dev)
        nodes = None
        if self.user_node_vectors is not None and user_indices is not None:
            nodes = self.user_node_vectors[torch.as_tensor(user_indices, device=dev)]
        with torch.no_grad():
            u = self.module.user_vectors(self.product_vectors, hist, nodes)
            p = torch.softmax(self.module.scores(u, self.product_vectors), dim=1)
            q = self._cooc_probs(histories, dev) if cooc else None
            terms = self.similarity
            names = (terms.names if terms else []) if similarity is None else similarity
            sims = {name: terms.term(name, hist) for name in names} if terms else {}
        return p, q, sims

    def _cooc_probs(self, histories: list[np.ndarray], dev: torch.device) -> torch.Tensor:
        from gnn.baselines.cooccurrence import CooccurrenceConfig, ItemCooccurrence

        assert self.cooc is not None and self.popularity is not None
        scorer = ItemCooccurrence(CooccurrenceConfig(**self.cooc_config))
        scorer.item_item, scorer.popularity = self.cooc, self.popularity
        scores = scorer.score_histories(histories) + 1e-12
        scores /= scores.sum(axis=1, keepdims=True)
        return torch.as_tensor(scores, dtype=torch.float32, device=dev)

    # ------------------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``id_maps.json`` to ``folder``
        (see :mod:`gnn.fusion_io`)."""
        from gnn.fusion_io import save_fusion

        return save_fusion(self, folder)

    @classmethod
    def load(cls, folder: str | Path, *, device: str | None = None) -> FusionRecommender:
        """Read a model written by :meth:`save`; no tables or retraining needed.

        Raises:
            ValueError: the folder holds another model or format version.
        """
        from gnn.fusion_io import load_fusion

        return load_fusion(cls, folder, device=device)

    def matches(self, split: Split) -> bool:
        """Whether ``split`` has the user and item ids this model was fitted on."""
        return split.ids_fingerprint() == self.ids_sha256
