"""Encoding many texts resumes after an interruption: finished chunks are in the cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from gnn.text import TextEncoder, encode_texts
from tests.gnn.tiny_bert import WORDS, tiny_bert

TEXTS = [f"{WORDS[i % len(WORDS)]} {WORDS[(3 * i) % len(WORDS)]} item {i}" for i in range(22)]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


class Interrupted(Exception):
    """Stands for a kill in the middle of a run."""


class CountingEncoder(TextEncoder):
    """Counts the texts it encodes, and is interrupted at its ``fail_at``-th call."""

    def __init__(self, *args: object, fail_at: int | None = None, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.calls = 0
        self.encoded = 0
        self.fail_at = fail_at

    def encode(self, texts: Sequence[str], show_progress: bool = True) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_at:
            raise Interrupted
        self.encoded += len(texts)
        return super().encode(texts, show_progress)


def test_an_interrupted_run_keeps_its_chunks_and_the_next_one_finishes(tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "bert")
    first = CountingEncoder(model, device="cpu", fail_at=3)
    with pytest.raises(Interrupted):
        encode_texts(TEXTS, tmp_path / "cache", first, show_progress=False, chunk_size=5)
    assert first.encoded == 10  # two chunks done and stored before the interruption

    second = CountingEncoder(model, device="cpu")
    resumed = encode_texts(TEXTS, tmp_path / "cache", second, show_progress=False, chunk_size=5)
    assert second.encoded == len(TEXTS) - 10  # only what the first run had not stored

    fresh = encode_texts(
        TEXTS, tmp_path / "fresh", CountingEncoder(model, device="cpu"), show_progress=False
    )
    np.testing.assert_allclose(resumed, fresh, atol=1e-5)
