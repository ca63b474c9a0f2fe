"""The fusion recommender: :class:`~gnn.model.FusionGNN` trained on a split, blended with the
co-occurrence graph term, saved and loaded as ``config.json`` + ``model.safetensors``.

Training (:meth:`FusionRecommender.fit`):

* examples are next-item predictions along each user's train sequence: the item at position
  ``t`` is the target, the (up to ``history_len``) items before it are the history. For a
  split without chronology (``protocol != "leave_one_out"``) each sequence is shuffled every
  epoch. ``examples_per_user`` caps the examples drawn per user and epoch;
* loss: cross-entropy of the full softmax over all products (a ranking loss that uses every
  item as a negative), with the history items of the example masked out. With
  ``config.fanout`` (graphs whose full propagation does not fit in memory), each step
  propagates over the sampled neighbourhood of its products only (:mod:`gnn.sampling`) and
  the softmax runs over the batch's targets and ``config.negatives`` uniformly drawn
  products; the vectors kept at the end are computed over the full graph, without gradients;
* early stopping on validation NDCG@10 of the model alone; the best epoch's weights are kept;
* with ``ranks`` (:mod:`gnn.distributed`), data parallel over several processes: each steps on
  its share of the examples with gradients averaged over all, rank 0 validates and decides.

The final score (:mod:`gnn.scoring`, in numpy) blends the model's distribution with the
co-occurrence distribution of :class:`~gnn.baselines.cooccurrence.ItemCooccurrence` (counted
on the train sequences) and adds content-similarity terms (:mod:`gnn.similarity`); the blend
mode, its weight ``β`` and the terms' weights are chosen on the validation split only
(:mod:`gnn.fusion_blend`). Every term reads the user's known history for the evaluated split,
so a user's validation item feeds their test ranking without refitting.

A fitted model scores through :meth:`FusionRecommender.arrays` and
:class:`~gnn.scoring.FusionScorer`; PyTorch runs only where training needs gradients.
Saved, it is read back by :func:`gnn.fusion_io.read_fusion` (numpy);
:meth:`FusionRecommender.load` rebuilds the network from it to train further.
"""

from __future__ import annotations

import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from gnn.device import device as resolve_device
from gnn.device import seed_everything
from gnn.distributed import Ranks
from gnn.early_stopping import EarlyStopping, validation_users
from gnn.fusion_blend import choose_weights
from gnn.fusion_io import MODEL_NAME, FusionArrays, SavedFusion, read_fusion, write_fusion
from gnn.model import FusionConfig, FusionGNN
from gnn.scoring import FusionScorer, history_matrix
from gnn.similarity import reduce_features
from gnn.splits import EvalOn, Split
from ingest.tables import GraphTables

__all__ = ["FusionRecommender"]
#: The relations of the interaction graph (users' interactions and transitions between
#: products): the only ones kept when ``use_kg_edges`` is off.
_INTERACTION_RELATIONS = {"interacted", "rev_interacted", "followed_by", "rev_followed_by"}


class FusionRecommender:
    """Fusion GNN + co-occurrence blend, with the :class:`~gnn.evaluate.Scorer` contract.

    Args:
        tables: the canonical tables the graph is built from (``None`` only for :meth:`load`).
        config: hyper-parameters; keyword arguments override its fields.
        text: ``(n_products, d_text)`` text features in sorted product-id order, or ``None``.
        kge: ``(n_products, d_kge)`` KG-embedding features in the same order, or ``None``.
        feature_info: provenance of the features (saved with the model).
        examples_per_user: most training examples per user and epoch (``None``: all).
        warm_start: a run folder whose weights the fit starts from (:mod:`gnn.warm_start`).
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
        warm_start: str | Path | None = None,
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
        self.warm_start = warm_start
        self.module: FusionGNN | None = None
        self.sampler: Any = None  # gnn.sampling.NeighbourSampler when config.fanout is set
        self.features: torch.Tensor | None = None
        self.edge_index: dict[tuple[str, str, str], torch.Tensor] = {}
        self.node_ids: dict[str, list[str]] = {}
        self.product_vectors: np.ndarray | None = None
        self.user_node_vectors: np.ndarray | None = None
        self.cooc: sp.csr_matrix | None = None
        self.cooc_config: dict[str, Any] = {}
        self.popularity: np.ndarray | None = None
        self.blend = 0.0
        self.blend_mode = "linear"
        self.similarity: dict[str, np.ndarray] = {}
        self.similarity_weights: dict[str, float] = {}
        self.ids_sha256 = ""
        self.shape: tuple[int, int] = (0, 0)
        self.fit_info: dict[str, Any] = {}

    # ------------------------------------------------------------------------- fit
    def fit(
        self,
        split: Split,
        *,
        seed: int = 0,
        show_progress: bool = True,
        ranks: Ranks | None = None,
    ) -> FusionRecommender:
        """Train on ``split`` (see the module docstring), then choose the blend weight.

        Args:
            split: the split.
            seed: the seed (the same on every rank).
            show_progress: a progress bar.
            ranks: data-parallel training over these processes (:mod:`gnn.distributed`);
                ``None``: this process alone. Only rank 0 validates and ends fitted.

        Returns:
            ``self``; ``fit_info`` holds the validation curve, best epoch, blend and timings
            (on ranks other than 0: only the seed, epochs run and processes).
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
        warm = None
        if self.warm_start is not None:
            from gnn.warm_start import warm_start

            warm = {"from": str(self.warm_start),
                    **warm_start(self.module, self.node_ids, self.warm_start)}  # fmt: skip
        if ranks is not None:
            ranks.broadcast_parameters(self.module)
        main = ranks is None or ranks.main
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
            loss = self._epoch(hist, target, rng, opt, dev, ranks, show_progress=show_progress)
            epoch_s.append(time.perf_counter() - t0)
            last = epoch == cfg.max_epochs
            if valid_users.size == 0 or (epoch % cfg.eval_every and not last):
                bar.set_postfix(loss=f"{loss:.4f}")
                curve.append({"epoch": epoch, "loss": loss})
                continue
            stop = False
            if main:
                self._finish()
                self.blend, self.similarity_weights = 0.0, {}
                ndcg = evaluate(
                    self, split, on="valid", ks=(10,), users=valid_users, show_progress=False
                )["ndcg@10"]
                curve.append({"epoch": epoch, "loss": loss, "valid_ndcg@10": ndcg})
                stop = stopper.update(epoch, ndcg)
                bar.set_postfix(
                    loss=f"{loss:.4f}", ndcg10=f"{ndcg:.4f}", best=f"{stopper.best:.4f}"
                )
            if ranks is not None:
                stop = ranks.decide(stop)
            if stop:
                break
        bar.close()
        processes = 1 if ranks is None else ranks.world
        if not main:
            self.fit_info = {"seed": seed, "epochs_run": epoch, "processes": processes}
            return self
        if valid_users.size == 0:
            stopper.best_epoch, stopper.best_state = epoch, self._state()
        self.module.load_state_dict(stopper.best_state)
        self._finish()
        self.similarity = self._similarity_vectors()
        trials = self._choose_weights(split, valid_users)
        self.ids_sha256 = split.ids_fingerprint()
        self.fit_info = {
            "seed": seed,
            "warm_start": warm,
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
            "processes": processes,
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
            and (cfg.use_kg_edges or et[1] in _INTERACTION_RELATIONS)
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
        if cfg.fanout:
            from gnn.sampling import NeighbourSampler

            self.sampler = NeighbourSampler(self.edge_index, num_nodes, cfg.fanout)

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
        ranks: Ranks | None = None,
        *,
        show_progress: bool = False,
    ) -> float:
        """One pass over the examples (this rank's share of them); the mean loss. With
        ``show_progress``, a progress bar over the steps (it disappears when the epoch ends)."""
        assert self.module is not None
        self.module.train()
        perm = rng.permutation(target.shape[0])
        if ranks is not None:
            perm = ranks.shard(perm)
        hist_t = torch.as_tensor(hist[perm], device=dev)
        target_t = torch.as_tensor(target[perm], device=dev)
        total, bs = 0.0, self.config.batch_size
        steps = tqdm(
            range(0, perm.size, bs), desc="steps", unit="step", leave=False,
            disable=not show_progress,
        )  # fmt: skip
        for lo in steps:
            h, t = hist_t[lo : lo + bs], target_t[lo : lo + bs]
            if self.sampler is None:
                logits, label = self._full_logits(h, t)
            else:
                logits, label = self._sampled_logits(h, t, rng)
            loss = torch.nn.functional.cross_entropy(logits, label)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if ranks is not None:
                ranks.average_gradients(self.module)
            opt.step()
            total += loss.item() * h.shape[0]
        if ranks is not None:
            return ranks.mean(total, perm.size)
        return total / max(perm.size, 1)

    def _full_logits(self, h: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits over every product (the whole graph propagated) and the targets' columns;
        the examples' history items other than the target are masked out."""
        assert self.module is not None
        x = self.module(self.features, self.edge_index)
        users = x["user"][t[:, 0]] if self.config.user_node else None
        u = self.module.user_vectors(x["product"], h, users)
        logits = self.module.scores(u, x["product"])
        rows = torch.arange(h.shape[0], device=h.device).unsqueeze(1).expand_as(h)
        seen = (h >= 0) & (h != t[:, 1:2])
        logits = logits.index_put(
            (rows[seen], h[seen]), torch.tensor(float("-inf"), device=h.device)
        )
        return logits, t[:, 1]

    def _sampled_logits(
        self, h: torch.Tensor, t: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits over the batch's targets and ``config.negatives`` uniformly drawn products,
        their vectors propagated over the sampled neighbourhood of the batch's products
        (:mod:`gnn.sampling`); masked as in :meth:`_full_logits`."""
        assert self.module is not None and self.sampler is not None
        cfg, dev = self.config, h.device
        hist, users, target = h.cpu().numpy(), t[:, 0].cpu().numpy(), t[:, 1].cpu().numpy()
        cand = np.unique(np.concatenate([target, rng.integers(0, self.shape[1], cfg.negatives)]))
        seeds = {"product": np.unique(np.concatenate([hist[hist >= 0], cand]))}
        if cfg.user_node:
            seeds["user"] = np.unique(users)
        sub = self.sampler.sample(seeds, rng, dev)
        x = self.module(self.features, {}, sub)
        local = np.where(hist >= 0, np.searchsorted(seeds["product"], hist), -1)
        user_rows = None
        if cfg.user_node:
            user_rows = x["user"][
                torch.as_tensor(np.searchsorted(seeds["user"], users), device=dev)
            ]
        u = self.module.user_vectors(x["product"], torch.as_tensor(local, device=dev), user_rows)
        columns = torch.as_tensor(np.searchsorted(seeds["product"], cand), device=dev)
        logits = (
            u @ x["product"][columns].T + self.module.item_bias[torch.as_tensor(cand, device=dev)]
        )
        pos = np.minimum(np.searchsorted(cand, hist), cand.size - 1)
        seen = (hist >= 0) & (cand[pos] == hist) & (hist != target[:, None])
        rows = torch.as_tensor(np.nonzero(seen)[0], device=dev)
        logits = logits.index_put(
            (rows, torch.as_tensor(pos[seen], device=dev)), torch.tensor(float("-inf"), device=dev)
        )
        return logits, torch.as_tensor(np.searchsorted(cand, target), device=dev)

    def _state(self) -> dict[str, torch.Tensor]:
        assert self.module is not None
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def _finish(self) -> None:
        """The product (and user node) output vectors of the trained network, in numpy."""
        assert self.module is not None
        self.module.eval()
        with torch.no_grad():
            x = self.module(self.features, self.edge_index)
        self.product_vectors = x["product"].detach().cpu().numpy()
        self.user_node_vectors = x["user"].detach().cpu().numpy() if self.config.user_node else None

    def _similarity_vectors(self) -> dict[str, np.ndarray]:
        """The reduced vectors of the similarity terms (none when the grid is all zero)."""
        cfg = self.config
        if not any(cfg.similarity_grid):
            return {}
        return {
            name: reduce_features(x, cfg.similarity_dim)
            for name, x in (("text", self.text), ("kge", self.kge))
            if x is not None
        }

    def _choose_weights(self, split: Split, users: np.ndarray) -> list[dict[str, Any]]:
        self.blend, self.blend_mode, self.similarity_weights = 0.0, "linear", {}
        if users.size == 0:
            return []
        best, trials = choose_weights(
            self.scorer(),
            split,
            users,
            blend_grid=self.config.blend_grid,
            similarity_grid=self.config.similarity_grid,
        )
        self.blend, self.blend_mode = best.beta, best.mode
        self.similarity_weights = {k: v for k, v in best.similarity.items() if v}
        return trials

    # ------------------------------------------------------------------------ score
    def arrays(self) -> FusionArrays:
        """The fitted or loaded model's arrays (numpy copies of its network's), with its
        current blend and similarity weights: what :class:`~gnn.scoring.FusionScorer` and the
        query layer score with."""
        if self.module is None or self.product_vectors is None or self.cooc is None:
            raise RuntimeError("FusionRecommender: not fitted or loaded")
        assert self.popularity is not None
        module, cfg = self.module, self.config

        def numpy(x: torch.Tensor) -> np.ndarray:
            return x.detach().cpu().numpy().copy()

        return FusionArrays(
            node_ids=self.node_ids,
            product_vectors=self.product_vectors,
            item_bias=numpy(module.item_bias),
            position_logits=numpy(module.position_logits),
            history_proj_weight=numpy(module.history_proj.weight),
            history_proj_bias=numpy(module.history_proj.bias),
            user_node_vectors=self.user_node_vectors,
            cooc=self.cooc,
            popularity=self.popularity,
            cooc_config=dict(self.cooc_config),
            blend=float(self.blend),
            blend_mode=str(self.blend_mode),
            similarity=dict(self.similarity),
            similarity_weights=dict(self.similarity_weights),
            similarity_recent=cfg.similarity_recent,
            similarity_decay=cfg.similarity_decay,
            history_len=cfg.history_len,
            features=None if self.features is None else numpy(self.features),
            feature_info=self.feature_info,
            n_users=self.shape[0],
            ids_sha256=self.ids_sha256,
        )

    def scorer(self) -> FusionScorer:
        """The final score of the model as it is now (:class:`~gnn.scoring.FusionScorer`)."""
        return FusionScorer(self.arrays())

    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> np.ndarray:
        """``(len(user_indices), n_items)`` final distributions from ``split.history(on)``
        (:meth:`gnn.scoring.FusionScorer.score`)."""
        return self.scorer().score(user_indices, split, on)

    def score_histories(
        self, histories: list[np.ndarray], *, user_indices: np.ndarray | None = None
    ) -> np.ndarray:
        """Final distributions of users given by their item histories
        (:meth:`gnn.scoring.FusionScorer.score_histories`)."""
        return self.scorer().score_histories(histories, user_indices=user_indices)

    # ------------------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``id_maps.json`` to ``folder``
        (:func:`gnn.fusion_io.write_fusion`)."""
        from ingest.versions import library_versions

        arrays = self.arrays()
        assert self.module is not None
        state = self.module.state_dict()
        meta = {
            "config": asdict(self.config),
            "feature_dim": 0 if self.features is None else int(self.features.shape[1]),
            "fit": self.fit_info,
            "versions": library_versions(),
        }
        saved = SavedFusion(
            arrays,
            meta,
            {k: v.detach().cpu().numpy() for k, v in state.items()},
            {et: ei.cpu().numpy() for et, ei in self.edge_index.items()},
        )
        return write_fusion(saved, folder)

    @classmethod
    def load(cls, folder: str | Path, *, device: str | None = None) -> FusionRecommender:
        """Rebuild a saved model in PyTorch (network, graph and features), to train it
        further; scoring needs only :meth:`gnn.scoring.FusionScorer.load`.

        Raises:
            ValueError: the folder holds another model or format version.
        """
        saved = read_fusion(folder)
        meta, a = saved.meta, saved.arrays
        known = {f.name for f in fields(FusionConfig)}
        config = FusionConfig(**{k: v for k, v in meta["config"].items() if k in known})
        if device is not None:
            config = replace(config, device=device)
        dev = resolve_device(config.device)
        model = cls(None, replace(config, use_text=False, use_kge=False, use_id=True))
        model.config, model.feature_info = config, dict(a.feature_info or {})
        model.node_ids = a.node_ids
        model.edge_index = {et: torch.tensor(ei, device=dev) for et, ei in saved.edge_index.items()}
        if a.features is not None:
            model.features = torch.tensor(a.features, device=dev)
        num_nodes = {nt: len(ids) for nt, ids in a.node_ids.items()}
        module = FusionGNN(config, num_nodes, list(saved.edge_index), int(meta["feature_dim"]))
        module.load_state_dict({k: torch.tensor(v) for k, v in saved.network.items()})
        model.module = module.to(dev).eval()
        model.product_vectors, model.user_node_vectors = a.product_vectors, a.user_node_vectors
        model.cooc, model.popularity, model.cooc_config = a.cooc, a.popularity, a.cooc_config
        model.blend, model.blend_mode = a.blend, a.blend_mode
        model.similarity, model.similarity_weights = a.similarity, a.similarity_weights
        model.shape, model.ids_sha256 = (a.n_users, a.product_vectors.shape[0]), a.ids_sha256
        model.fit_info = meta.get("fit", {})
        return model

    def matches(self, split: Split) -> bool:
        """Whether ``split`` has the user and item ids this model was fitted on."""
        return split.ids_fingerprint() == self.ids_sha256
