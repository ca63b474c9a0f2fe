"""The text encoder's model on ONNX Runtime, for one short text at a time on the CPU.

A search query or a new product is one short text. Its forward pass reads all of MiniLM's
42 MB of float32 weights for a handful of tokens, so its time is how fast the matrix kernels
stream weights from memory. On this project's AMD CPUs torch's kernels (Intel MKL) stream them
at about 5 GB/s and ONNX Runtime's at about twice that: one query takes about 5 ms there
against 12 ms in torch, one thread each (``bench/bench_search.py --part latency``). For batches
of long texts the two are alike, so the catalogue is encoded by torch (and on a GPU where
there is one); :class:`gnn.text.TextEncoder` takes ``runtime="onnx"`` for the short ones.

The session runs as many threads as torch does (``torch.get_num_threads()``, read at each call):
every core in a process of its own, one in each ``kgrec serve`` worker (the workers share the
cores and set torch to one thread after the fork). On 2 cores two threads take 3.5 ms p50 a
query against 5.2 ms with one (``bench/bench_search.py --part latency``). A session is made in each process on first use: a forked child
makes its own, so it never runs a thread pool that did not survive the fork.

The ONNX model is exported once from the local safetensors weights by torch's exporter, into a
cache folder (default ``~/.kgrec/cache/onnx``) under the model's fingerprint; nothing is
downloaded. An export is checked against torch on a probe text before it is kept, and written
atomically, so concurrent processes (the workers of ``kgrec serve``) may export at once.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["OPSET", "OnnxTextModel", "default_onnx_cache", "onnx_model"]

logger = logging.getLogger(__name__)

#: The ONNX opset of the export.
OPSET = 17
#: Largest absolute difference of a hidden state from torch's that an export may have.
TOLERANCE = 1e-4
_PROBE = "kgrec export check: stainless steel hex bolts, pack of 100 (M6 x 20 mm)"


def default_onnx_cache() -> Path:
    """``~/.kgrec/cache/onnx``: where exported models are kept unless told otherwise."""
    return Path.home() / ".kgrec" / "cache" / "onnx"


class OnnxTextModel:
    """A BERT-family encoder on ONNX Runtime, called like the ``transformers`` model it was
    exported from: ``model(input_ids=..., attention_mask=...).last_hidden_state``.

    The session is made on first use in each process, with ``torch.get_num_threads()``
    threads, and made again when that number changes (module docstring).

    Args:
        path: the ``.onnx`` file (inputs ``input_ids``, ``attention_mask``; output
            ``last_hidden_state``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._session: Any = None
        self._made_for: tuple[int, int] = (0, 0)  # (pid, threads) of the session

    @property
    def session(self) -> Any:
        """This process's ONNX Runtime session, with as many threads as torch."""
        import onnxruntime as ort
        import torch

        want = (os.getpid(), torch.get_num_threads())
        if self._session is None or self._made_for != want:
            options = ort.SessionOptions()
            options.intra_op_num_threads = want[1]
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            self._session = None  # the old session's threads end before the new one's start
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
            self._made_for = want
        return self._session

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any
    ) -> SimpleNamespace:
        """The last hidden states ``(batch, tokens, dim)`` as a torch tensor. Other inputs
        (``token_type_ids``) are ignored: the export feeds zeros, as for one-segment text."""
        import torch

        feed = {
            "input_ids": input_ids.cpu().numpy().astype(np.int64, copy=False),
            "attention_mask": attention_mask.cpu().numpy().astype(np.int64, copy=False),
        }
        hidden = self.session.run(None, feed)[0]
        return SimpleNamespace(last_hidden_state=torch.from_numpy(hidden))


def onnx_model(
    model_path: Path, fingerprint: str, tokenizer: Any, cache: str | Path | None = None
) -> OnnxTextModel:
    """The ONNX Runtime model of the ``transformers`` model in ``model_path``, exported on
    first use into ``cache`` (default :func:`default_onnx_cache`) as
    ``<fingerprint>-opset<OPSET>.onnx``.

    Args:
        model_path: the local model folder (safetensors weights).
        fingerprint: the model's fingerprint (:attr:`gnn.text.TextEncoder.model_fingerprint`).
        tokenizer: the model's tokenizer (for the check of the export).
        cache: the folder of exported models.

    Raises:
        RuntimeError: the export's hidden states differ from torch's by more than
            :data:`TOLERANCE` (nothing is kept).
    """
    folder = Path(cache) if cache is not None else default_onnx_cache()
    path = folder / f"{fingerprint}-opset{OPSET}.onnx"
    if not path.is_file():
        export(model_path, tokenizer, path)
    return OnnxTextModel(path)


def export(model_path: Path, tokenizer: Any, out: Path) -> None:
    """Export the ``transformers`` model in ``model_path`` to ``out`` (see :func:`onnx_model`).

    Written to a temporary file beside ``out``, checked, then renamed over it.
    """
    import torch

    from gnn.text import torch_model

    model = torch_model(model_path)
    probe = tokenizer([_PROBE], return_tensors="pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=".onnx", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _hidden_states(model),
                (probe["input_ids"], probe["attention_mask"]),
                str(tmp),
                input_names=["input_ids", "attention_mask"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    name: {0: "batch", 1: "tokens"}
                    for name in ("input_ids", "attention_mask", "last_hidden_state")
                },
                opset_version=OPSET,
                dynamo=False,
            )
            want = model(**probe).last_hidden_state.numpy()
        got = OnnxTextModel(tmp)(**probe).last_hidden_state.numpy()
        diff = float(np.abs(got - want).max())
        if diff > TOLERANCE:
            raise RuntimeError(
                f"the ONNX export of {model_path} differs from torch by {diff:.2e} "
                f"(tolerance {TOLERANCE:.0e}); not kept"
            )
        os.replace(tmp, out)
        logger.info("exported %s to %s (largest difference from torch %.1e)", model_path, out, diff)
    finally:
        tmp.unlink(missing_ok=True)


def _hidden_states(model: Any) -> torch.nn.Module:
    """The module the export traces: ``(input_ids, attention_mask) -> last_hidden_state``."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return HiddenStates().eval()
