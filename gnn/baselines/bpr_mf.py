"""BPR matrix factorisation, and the BPR training loop shared by the embedding baselines.

:class:`EmbeddingScorer` trains any module that turns the train graph into user and item
vectors with the BPR loss: one uniformly drawn unseen negative per train pair per epoch,
mini-batches, Adam, L2 on the layer-0 embeddings of the batch, and early stopping on
validation NDCG@10 (the best epoch's weights are kept). Without validation targets it trains
for ``max_epochs``. A fitted model scores ``user_vector @ item_vector.T`` and travels as
``config.json`` + ``model.safetensors``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from gnn.device import device as resolve_device
from gnn.device import seed_everything
from gnn.early_stopping import EarlyStopping, validation_users
from gnn.splits import EvalOn, Split

__all__ = ["BPRMF", "BPRConfig", "EmbeddingScorer", "sample_negatives"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class BPRConfig:
    """Hyper-parameters of BPR training.

    Attributes:
        dim: embedding size.
        lr: Adam learning rate.
        reg: L2 weight on the batch's layer-0 embeddings, ``reg / 2 * sum(e**2) / batch``.
        batch_size: train pairs per step.
        max_epochs: most epochs.
        patience: validations without improvement before stopping.
        eval_every: epochs between validations.
        valid_users: validate on a fixed random sample of this many users (``None``: all).
        init_std: standard deviation of the normal initialisation of the embeddings.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
    """

    dim: int = 64
    lr: float = 1e-3
    reg: float = 1e-4
    batch_size: int = 2048
    max_epochs: int = 200
    patience: int = 10
    eval_every: int = 1
    valid_users: int | None = None
    init_std: float = 0.1
    device: str = "auto"

    def __post_init__(self) -> None:
        positive = ("dim", "batch_size", "max_epochs", "patience", "eval_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be >= 1")
        if self.lr <= 0 or self.reg < 0 or self.init_std <= 0:
            raise ValueError(f"{type(self).__name__}: need lr > 0, reg >= 0, init_std > 0")


def sample_negatives(
    users: np.ndarray, train: Any, rng: np.random.Generator, max_rounds: int = 50
) -> np.ndarray:
    """One uniformly drawn item per entry of ``users`` that the user has not in ``train``.

    Args:
        users: user index per draw, int64.
        train: ``(n_users, n_items)`` scipy CSR matrix of known pairs.
        rng: random generator.
        max_rounds: redraw rounds for collisions; a user who has (nearly) every item may keep
            a known item after that.

    Returns:
        int64 item indices, same shape as ``users``.
    """
    n_items = train.shape[1]
    coo = train.tocoo()
    known = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    neg = rng.integers(0, n_items, users.size)
    todo = np.arange(users.size)
    for _ in range(max_rounds):
        key = users[todo] * n_items + neg[todo]
        pos = np.minimum(np.searchsorted(known, key), known.size - 1)
        todo = todo[known[pos] == key] if known.size else todo[:0]
        if todo.size == 0:
            break
        neg[todo] = rng.integers(0, n_items, todo.size)
    return neg


class EmbeddingScorer:
    """Base of the BPR-trained scorers. Subclasses set ``name`` and ``config_class`` and
    implement :meth:`_build` and :meth:`_vectors`."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[BPRConfig]] = BPRConfig

    def __init__(self, config: BPRConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or self.config_class(), **overrides)
        self.module: torch.nn.Module | None = None
        self.user_vectors: torch.Tensor | None = None
        self.item_vectors: torch.Tensor | None = None
        self.shape: tuple[int, int] = (0, 0)
        self.ids_sha256 = ""
        self.fit_info: dict[str, Any] = {}

    # ----------------------------------------------------------------- subclass hooks
    def _build(self, split: Split, dev: torch.device) -> torch.nn.Module:
        """A fresh module for ``split`` on ``dev``; only the layer-0 tables need the split."""
        raise NotImplementedError

    def _vectors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(user vectors (n_users, d), item vectors (n_items, d))`` of the module.

        Args:
            train: ``True`` during training (graph propagation available).
        """
        raise NotImplementedError

    def _layer0(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        """Layer-0 embeddings of a batch, for the L2 term."""
        raise NotImplementedError

    # ------------------------------------------------------------------------ train
    def fit(self, split: Split, *, seed: int = 0, show_progress: bool = True) -> EmbeddingScorer:
        """Train on ``split``'s train pairs, early-stopping on validation NDCG@10.

        Args:
            split: the split.
            seed: seeds initialisation, negatives, batch order and the validation sample.
            show_progress: show a tqdm bar over epochs.

        Returns:
            ``self``; ``fit_info`` holds the best epoch, the validation curve and timings.
        """
        from gnn.evaluate import evaluate

        cfg = self.config
        seed_everything(seed)
        dev = resolve_device(cfg.device)
        self.shape = (split.n_users, split.n_items)
        self.ids_sha256 = split.ids_fingerprint()
        self.module = self._build(split, dev)
        opt = torch.optim.Adam(self.module.parameters(), lr=cfg.lr)
        users, items = split.train_pairs()
        rng = np.random.default_rng(seed)
        valid_users = validation_users(split, cfg.valid_users, rng)
        stopper = EarlyStopping(cfg.patience, self._state)
        curve: list[tuple[int, float, float]] = []
        start = time.perf_counter()
        bar = tqdm(range(1, cfg.max_epochs + 1), desc=self.name, disable=not show_progress)
        for epoch in bar:
            loss = self._epoch(users, items, split, rng, opt, dev)
            if valid_users.size == 0 or epoch % cfg.eval_every:
                bar.set_postfix(loss=f"{loss:.4f}")
                continue
            self._finish()
            ndcg = evaluate(
                self, split, on="valid", ks=(10,), users=valid_users, show_progress=False
            )["ndcg@10"]
            curve.append((epoch, loss, ndcg))
            stop = stopper.update(epoch, ndcg)
            bar.set_postfix(loss=f"{loss:.4f}", ndcg10=f"{ndcg:.4f}", best=f"{stopper.best:.4f}")
            if stop:
                break
        bar.close()
        if valid_users.size == 0:
            stopper.best_epoch, stopper.best_state = epoch, self._state()
        self.module.load_state_dict(stopper.best_state)
        self._finish()
        self.fit_info = {
            "seed": seed,
            "epochs_run": epoch,
            "best_epoch": stopper.best_epoch,
            "best_valid_ndcg@10": stopper.best if valid_users.size else None,
            "valid_users": int(valid_users.size),
            "curve": curve,
            "seconds": time.perf_counter() - start,
        }
        return self

    def _epoch(
        self,
        users: np.ndarray,
        items: np.ndarray,
        split: Split,
        rng: np.random.Generator,
        opt: torch.optim.Optimizer,
        dev: torch.device,
    ) -> float:
        assert self.module is not None
        self.module.train()
        perm = rng.permutation(users.size)
        u_all = torch.as_tensor(users[perm], device=dev)
        i_all = torch.as_tensor(items[perm], device=dev)
        j_all = torch.as_tensor(sample_negatives(users[perm], split.train, rng), device=dev)
        total, bs = 0.0, self.config.batch_size
        for lo in range(0, users.size, bs):
            u, i, j = u_all[lo : lo + bs], i_all[lo : lo + bs], j_all[lo : lo + bs]
            user_vec, item_vec = self._vectors(train=True)
            eu, ei, ej = user_vec[u], item_vec[i], item_vec[j]
            pos, neg = (eu * ei).sum(-1), (eu * ej).sum(-1)
            l2 = sum(e.pow(2).sum() for e in self._layer0(u, torch.cat([i, j])))
            loss = -torch.nn.functional.logsigmoid(pos - neg).mean()
            loss = loss + self.config.reg / 2 * l2 / u.numel()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * u.numel()
        return total / max(users.size, 1)

    def _state(self) -> dict[str, torch.Tensor]:
        assert self.module is not None
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def _finish(self) -> None:
        """Compute the scoring vectors from the module."""
        assert self.module is not None
        self.module.eval()
        with torch.no_grad():
            users, items = self._vectors(train=False)
        self.user_vectors, self.item_vectors = users.detach(), items.detach()

    # ------------------------------------------------------------------------ score
    def score(self, user_indices: np.ndarray, split: Split, on: EvalOn) -> torch.Tensor:
        """``(len(user_indices), n_items)`` dot products of user and item vectors.

        The user vectors come from the train interactions only, for ``"valid"`` and
        ``"test"`` alike (the model is not refitted on the validation items).
        """
        if self.user_vectors is None or self.item_vectors is None:
            raise RuntimeError(f"{type(self).__name__}.score before fit or load")
        if (split.n_users, split.n_items) != self.shape:
            raise ValueError(
                f"{type(self).__name__} was fitted on {self.shape} users x items, "
                f"the split has {(split.n_users, split.n_items)}"
            )
        idx = torch.as_tensor(np.asarray(user_indices, np.int64), device=self.user_vectors.device)
        return self.user_vectors[idx] @ self.item_vectors.T

    # ------------------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (vectors and module weights)."""
        from safetensors.torch import save_file

        if self.module is None or self.user_vectors is None or self.item_vectors is None:
            raise RuntimeError(f"{type(self).__name__}.save before fit")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"module.{k}": v.detach().cpu().contiguous() for k, v in self._state().items()}
        tensors["user_vectors"] = self.user_vectors.cpu().contiguous()
        tensors["item_vectors"] = self.item_vectors.cpu().contiguous()
        save_file(tensors, str(folder / "model.safetensors"))
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "config": asdict(self.config),
            "n_users": self.shape[0],
            "n_items": self.shape[1],
            "ids_sha256": self.ids_sha256,
            "fit": self.fit_info,
        }
        (folder / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device: str | None = None) -> EmbeddingScorer:
        """Read a model written by :meth:`save`.

        Args:
            folder: the model folder.
            device: where to put it; default the saved config's device.

        Raises:
            ValueError: the folder holds another model or format version.
        """
        from safetensors.torch import load_file

        from gnn.model_files import read_model_config

        folder = Path(folder)
        meta = read_model_config(
            folder, model=cls.name, format_version=FORMAT_VERSION, reader=cls.__name__
        )
        known = {f.name for f in fields(cls.config_class)}
        config = cls.config_class(**{k: v for k, v in meta["config"].items() if k in known})
        if device is not None:
            config = replace(config, device=device)
        self = cls(config)
        dev = resolve_device(config.device)
        self.shape = (int(meta["n_users"]), int(meta["n_items"]))
        self.ids_sha256 = meta["ids_sha256"]
        self.fit_info = meta.get("fit", {})
        tensors = load_file(str(folder / "model.safetensors"), device=str(dev))
        self.module = self._build_empty(dev)
        self.module.load_state_dict(
            {k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")}
        )
        self.module.eval()
        self.user_vectors, self.item_vectors = tensors["user_vectors"], tensors["item_vectors"]
        return self

    def _build_empty(self, dev: torch.device) -> torch.nn.Module:
        """A module of the saved shape, for :meth:`load` (weights overwritten)."""
        raise NotImplementedError

    def matches(self, split: Split) -> bool:
        """Whether ``split`` has the user and item ids this model was fitted on."""
        return split.ids_fingerprint() == self.ids_sha256


class _MF(torch.nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, init_std: float) -> None:
        super().__init__()
        self.user = torch.nn.Embedding(n_users, dim)
        self.item = torch.nn.Embedding(n_items, dim)
        torch.nn.init.normal_(self.user.weight, std=init_std)
        torch.nn.init.normal_(self.item.weight, std=init_std)


class BPRMF(EmbeddingScorer):
    """Matrix factorisation trained with BPR: ``score(u, i) = <p_u, q_i>``.

    Args:
        config: hyper-parameters (:class:`BPRConfig`); keyword arguments override fields.
    """

    name: ClassVar[str] = "bpr_mf"
    config_class: ClassVar[type[BPRConfig]] = BPRConfig

    def _build(self, split: Split, dev: torch.device) -> torch.nn.Module:
        return self._build_empty(dev)

    def _build_empty(self, dev: torch.device) -> torch.nn.Module:
        cfg = self.config
        return _MF(self.shape[0], self.shape[1], cfg.dim, cfg.init_std).to(dev)

    def _vectors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(self.module, _MF)
        return self.module.user.weight, self.module.item.weight

    def _layer0(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        assert isinstance(self.module, _MF)
        return [self.module.user(users), self.module.item(items)]
