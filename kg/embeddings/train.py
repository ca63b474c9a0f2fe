"""Train PyKEEN TransE / RotatE with sLCWA, early stopping, and resumable safetensors checkpoints.

The epoch loop is kgrec's own (so it can checkpoint without pickle and evaluate on a schedule),
but every epoch is PyKEEN's :class:`~pykeen.training.SLCWATrainingLoop` and every evaluation is
PyKEEN's filtered :class:`~pykeen.evaluation.RankBasedEvaluator`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.atomic import write_atomic

if TYPE_CHECKING:
    import torch
    from pykeen.models import Model
    from pykeen.triples import CoreTriplesFactory

__all__ = [
    "MODELS",
    "CheckpointMismatchError",
    "EmbedConfig",
    "TrainOutcome",
    "evaluate_link_prediction",
    "train_kge",
]

#: kgrec model names -> PyKEEN model names.
MODELS: dict[str, str] = {"transe": "TransE", "rotate": "RotatE"}


@dataclass(frozen=True)
class EmbedConfig:
    """Everything that decides a KG-embedding run.

    Args:
        model: ``"transe"`` or ``"rotate"``.
        dim: embedding dimension (RotatE: complex dimension; stored as ``2 * dim`` reals).
        epochs: maximum number of epochs.
        batch_size: positive triples per batch.
        lr: Adam learning rate.
        num_negs_per_pos: negatives per positive (PyKEEN's basic sampler).
        seed: seeds model init, negative sampling and the triple split.
        eval_every: validate (filtered MRR) every this many epochs; also the checkpoint period.
        patience: stop after this many validations without improvement (0: never stop early).
        min_delta: an improvement must exceed this (absolute MRR).
        eval_batch_size: triples per evaluation batch.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    """

    model: str = "transe"
    dim: int = 64
    epochs: int = 100
    batch_size: int = 4096
    lr: float = 0.01
    num_negs_per_pos: int = 1
    seed: int = 42
    eval_every: int = 10
    patience: int = 3
    min_delta: float = 1e-3
    eval_batch_size: int = 256
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        if self.dim < 1 or self.epochs < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("dim, epochs, batch_size and eval_every must be positive")


class CheckpointMismatchError(ValueError):
    """A checkpoint folder holds a run of other data or other settings; it is never resumed.

    Attributes:
        folder: the checkpoint folder.
        differences: what differs, e.g. ``["the triples (fingerprint 1a2b... then, 3c4d... now)",
            "lr 0.01 then, 0.02 now"]``.
    """

    def __init__(self, folder: Path, differences: list[str]) -> None:
        self.folder = folder
        self.differences = differences
        super().__init__(f"{folder} holds a checkpoint of another run: " + "; ".join(differences))


@dataclass
class TrainOutcome:
    """A finished (or early-stopped) run: the model at its best validation epoch and its history."""

    model: Model
    config: EmbedConfig
    epochs_trained: int
    best_epoch: int
    best_valid_mrr: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0
    train_seconds: float = 0.0
    triples_per_second: float = 0.0
    device: str = "cpu"


def evaluate_link_prediction(
    model: Model,
    triples: CoreTriplesFactory,
    filter_with: list[CoreTriplesFactory],
    *,
    batch_size: int = 256,
    relation_id: int | None = None,
) -> dict[str, float]:
    """Filtered rank-based link prediction (both sides, realistic ranks).

    Args:
        model: the trained model.
        triples: triples to rank.
        filter_with: factories whose triples are filtered out of the ranking (the known facts).
        batch_size: evaluation batch size.
        relation_id: evaluate only triples of this relation.

    Returns:
        ``mrr``, ``hits_at_1``, ``hits_at_3``, ``hits_at_10`` and ``n`` (triples ranked).
    """
    from pykeen.evaluation import RankBasedEvaluator

    mapped = triples.mapped_triples
    if relation_id is not None:
        mapped = mapped[mapped[:, 1] == relation_id]
    if len(mapped) == 0:
        return {"mrr": float("nan"), "hits_at_1": float("nan"), "hits_at_3": float("nan"),
                "hits_at_10": float("nan"), "n": 0}  # fmt: skip
    evaluator = RankBasedEvaluator(filtered=True)
    result = evaluator.evaluate(
        model,
        mapped,
        additional_filter_triples=[f.mapped_triples for f in filter_with],
        batch_size=batch_size,
        use_tqdm=False,
    )
    return {
        "mrr": float(result.get_metric("both.realistic.inverse_harmonic_mean_rank")),
        "hits_at_1": float(result.get_metric("both.realistic.hits_at_1")),
        "hits_at_3": float(result.get_metric("both.realistic.hits_at_3")),
        "hits_at_10": float(result.get_metric("both.realistic.hits_at_10")),
        "n": len(mapped),
    }


# ---------------------------------------------------------------- checkpoints
def _save_checkpoint(folder: Path, model: Model, optimizer: Any, state: dict[str, Any]) -> None:
    """Model, optimizer and RNG state as safetensors + JSON (atomic: temp files, then rename)."""
    import torch
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
    }
    opt = optimizer.state_dict()
    for pid, pstate in opt["state"].items():
        for name, value in pstate.items():
            tensors[f"opt.{pid}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {**state, "param_groups": opt["param_groups"]}
    write_atomic(folder / "checkpoint.safetensors", save(tensors))
    write_atomic(folder / "checkpoint.json", json.dumps(meta, indent=2))


#: The files of a checkpoint folder.
_CHECKPOINT_FILES = ("checkpoint.json", "checkpoint.safetensors", "best.safetensors")


def discard_checkpoint(folder: str | Path) -> bool:
    """Delete the checkpoint in ``folder`` (if any), so the next run starts from scratch.

    Returns:
        True when there was one.
    """
    found = False
    for name in _CHECKPOINT_FILES:
        path = Path(folder) / name
        if path.exists():
            path.unlink()
            found = True
    return found


def _mismatches(meta: dict[str, Any], config: dict[str, Any], data: str | None) -> list[str]:
    """What makes a checkpoint's run differ from this one (empty: it may be resumed)."""
    out = []
    then = meta.get("data")
    if data is not None and then != data:
        was = "none recorded" if then is None else f"fingerprint {str(then)[:12]}"
        out.append(f"the training triples differ ({was} then, {data[:12]} now)")
    old = meta.get("config", {})
    now = json.loads(json.dumps(config))
    out += [
        f"{key} {old.get(key)!r} then, {now.get(key)!r} now"
        for key in sorted(set(old) | set(now))
        if old.get(key) != now.get(key)
    ]
    return out


def _load_checkpoint(
    folder: Path, model: Model, optimizer: Any, config: dict[str, Any], data: str | None
) -> dict[str, Any] | None:
    import torch
    from safetensors.torch import load_file

    tpath, jpath = folder / "checkpoint.safetensors", folder / "checkpoint.json"
    if not tpath.exists() or not jpath.exists():
        return None
    meta = json.loads(jpath.read_text())
    differences = _mismatches(meta, config, data)
    if differences:
        raise CheckpointMismatchError(folder, differences)
    tensors = load_file(str(tpath))
    device = next(model.parameters()).device
    model.load_state_dict(
        {k[6:]: v.to(device) for k, v in tensors.items() if k.startswith("model.")}
    )
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value if name == "step" else value.to(device)
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta.pop("param_groups")})
    torch.set_rng_state(tensors["rng.torch"])
    return meta


@contextlib.contextmanager
def _frozen_gc() -> Iterator[None]:
    """Keep objects that exist now out of the garbage collector's scans, then restore.

    PyKEEN runs ``gc.collect()`` after every epoch, and its cost grows with every object the
    process holds (tables, id maps): 0.5 s per epoch in a test process. Frozen objects are still
    freed by reference counting; ``gc.unfreeze()`` puts them back under the collector.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _best_state(model: Model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------- train
def train_kge(
    training: CoreTriplesFactory,
    validation: CoreTriplesFactory,
    config: EmbedConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    data_fingerprint: str | None = None,
    on_resume: Callable[[int], None] | None = None,
    show_progress: bool = True,
    stop_after_epochs: int | None = None,
) -> TrainOutcome:
    """Train ``config.model`` on ``training`` with early stopping on ``validation`` MRR.

    Args:
        training: training triples (their id maps define the model's entities).
        validation: validation triples, filtered against training in evaluation.
        config: the run's settings.
        checkpoint_dir: when given, a checkpoint is written there at every validation, and a
            run that finds one there resumes from it instead of starting over, but only when
            it was made from the same data (``data_fingerprint``) with the same ``config``.
        data_fingerprint: identifies the training data (e.g. :meth:`KGTriples.fingerprint`);
            recorded in the checkpoint and compared on resume.
        on_resume: called with the epoch a checkpoint is resumed from, before training.
        show_progress: a tqdm bar over epochs.
        stop_after_epochs: stop (as if interrupted) after this many epochs of this call; for
            tests of resumption.

    Returns:
        The model restored to its best validation epoch, with the training history.

    Raises:
        CheckpointMismatchError: ``checkpoint_dir`` holds a checkpoint of other data or other
            settings (nothing is loaded; :func:`discard_checkpoint` starts over).
    """
    import torch
    from pykeen.models import model_resolver
    from pykeen.training import SLCWATrainingLoop
    from pykeen.utils import set_random_seed
    from tqdm.auto import tqdm

    from gnn.device import device as resolve_device

    set_random_seed(config.seed)
    device = resolve_device(config.device)
    model = model_resolver.make(
        MODELS[config.model],
        triples_factory=training,
        embedding_dim=config.dim,
        random_seed=config.seed,
    ).to(device)
    optimizer = torch.optim.Adam(model.get_grad_params(), lr=config.lr)
    loop = SLCWATrainingLoop(
        model=model,
        triples_factory=training,
        optimizer=optimizer,
        negative_sampler="basic",
        negative_sampler_kwargs={"num_negs_per_pos": config.num_negs_per_pos},
    )
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    state: dict[str, Any] = {"epoch": 0, "best_epoch": 0, "best_mrr": -1.0, "bad_evals": 0,
                             "history": [], "train_seconds": 0.0, "config": asdict(config),
                             "data": data_fingerprint}  # fmt: skip
    best: dict[str, torch.Tensor] | None = None
    if folder is not None:
        loaded = _load_checkpoint(folder, model, loop.optimizer, asdict(config), data_fingerprint)
        if loaded is not None:
            state = loaded
            if on_resume is not None:
                on_resume(int(state["epoch"]))
            loop._epoch = state["epoch"]
            best_path = folder / "best.safetensors"
            if best_path.exists():
                from safetensors.torch import load_file

                best = {k: v.to(device) for k, v in load_file(str(best_path)).items()}
    n_train = training.num_triples
    start_epoch = int(state["epoch"])
    done_here = 0
    with _frozen_gc(), tqdm(total=config.epochs, initial=start_epoch, desc=f"{config.model} epochs",
              unit="epoch", disable=not show_progress) as bar:  # fmt: skip
        for epoch in range(start_epoch + 1, config.epochs + 1):
            t0 = time.perf_counter()
            losses = loop.train(
                triples_factory=training,
                num_epochs=epoch,
                batch_size=config.batch_size,
                continue_training=epoch > 1,
                use_tqdm=False,
                use_tqdm_batch=False,
            )
            state["train_seconds"] += time.perf_counter() - t0
            state["epoch"] = epoch
            record: dict[str, float] = {"epoch": epoch, "loss": float(losses[-1])}
            stop = False
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                model.eval()
                metrics = evaluate_link_prediction(
                    model, validation, [training], batch_size=config.eval_batch_size
                )
                record["valid_mrr"] = metrics["mrr"]
                if metrics["mrr"] > state["best_mrr"] + config.min_delta:
                    state.update(best_mrr=metrics["mrr"], best_epoch=epoch, bad_evals=0)
                    best = _best_state(model)
                else:
                    state["bad_evals"] += 1
                    stop = config.patience > 0 and state["bad_evals"] >= config.patience
                state["history"].append(record)
                if folder is not None:
                    _save_checkpoint(folder, model, loop.optimizer, state)
                    if best is not None and state["best_epoch"] == epoch:
                        from safetensors.torch import save

                        cpu = {k: v.cpu().contiguous() for k, v in best.items()}
                        write_atomic(folder / "best.safetensors", save(cpu))
            else:
                state["history"].append(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", mrr=f"{state['best_mrr']:.3f}")
            bar.update(1)
            done_here += 1
            if stop or (stop_after_epochs is not None and done_here >= stop_after_epochs):
                break
    if best is not None:
        model.load_state_dict(best)
    model.eval()
    secs = state["train_seconds"]
    return TrainOutcome(
        model=model,
        config=config,
        epochs_trained=state["epoch"],
        best_epoch=state["best_epoch"],
        best_valid_mrr=state["best_mrr"],
        history=state["history"],
        resumed_from=start_epoch,
        train_seconds=secs,
        triples_per_second=n_train * state["epoch"] / secs if secs else 0.0,
        device=str(device),
    )
