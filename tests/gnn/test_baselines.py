"""Baselines on the synthetic ``tiny`` shop: they beat random, and save/load is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gnn.baselines import (
    BPRMF,
    CooccurrenceConfig,
    ItemCooccurrence,
    LightGCN,
    MostPopular,
    RandomScorer,
    make_baseline,
)
from gnn.baselines.bpr_mf import sample_negatives
from gnn.baselines.cooccurrence import tune
from gnn.evaluate import Scorer, evaluate
from gnn.splits import Split, leave_one_out
from ingest.sources.synthetic import SyntheticConfig, generate_shop

#: Small, fast training settings for the tiny shop.
FAST = {"dim": 32, "lr": 5e-3, "batch_size": 512, "max_epochs": 40, "patience": 5}


@pytest.fixture(scope="module")
def split() -> Split:
    return leave_one_out(generate_shop(SyntheticConfig.preset("tiny"), show_progress=False))


@pytest.fixture(scope="module")
def random_ndcg(split: Split) -> float:
    return evaluate(RandomScorer().fit(split, seed=0), split, show_progress=False)["ndcg@10"]


def _ndcg(model: Scorer, split: Split, on: str = "test") -> float:
    return evaluate(model, split, on=on, show_progress=False)["ndcg@10"]  # type: ignore[arg-type]


def _beats_random(value: float, random_value: float) -> None:
    # Random NDCG@10 on 300 items is about 0.012; the baselines score 0.07 to 0.11.
    assert value > 3 * random_value
    assert value > random_value + 0.04


def test_most_popular_beats_random(split: Split, random_ndcg: float) -> None:
    _beats_random(_ndcg(MostPopular().fit(split), split), random_ndcg)


def test_item_cooccurrence_beats_random_and_most_popular(split: Split, random_ndcg: float) -> None:
    model = ItemCooccurrence().fit(split)
    value = _ndcg(model, split)
    _beats_random(value, random_ndcg)
    assert value > _ndcg(MostPopular().fit(split), split)


def test_bpr_mf_beats_random(split: Split, random_ndcg: float) -> None:
    model = BPRMF(**FAST).fit(split, seed=0, show_progress=False)
    _beats_random(_ndcg(model, split), random_ndcg)
    assert model.fit_info["best_epoch"] >= 1
    assert model.fit_info["curve"], "early stopping looked at the validation split"


def test_bpr_mf_is_reproducible_and_saves_exactly(split: Split, tmp_path: Path) -> None:
    users = split.eval_users("test")
    a = BPRMF(**{**FAST, "max_epochs": 3}).fit(split, seed=1, show_progress=False)
    b = BPRMF(**{**FAST, "max_epochs": 3}).fit(split, seed=1, show_progress=False)
    assert torch.equal(a.score(users, split, "test"), b.score(users, split, "test"))
    folder = a.save(tmp_path / "bpr")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = BPRMF.load(folder)
    assert torch.equal(loaded.score(users, split, "test"), a.score(users, split, "test"))
    assert loaded.config == a.config
    assert loaded.matches(split)
    with pytest.raises(ValueError, match="lightgcn"):
        LightGCN.load(folder)


def test_lightgcn_saves_exactly(split: Split, tmp_path: Path, random_ndcg: float) -> None:
    model = LightGCN(**{**FAST, "max_epochs": 15}, num_layers=2).fit(
        split, seed=0, show_progress=False
    )
    users = split.eval_users("test")
    loaded = LightGCN.load(model.save(tmp_path / "lgcn"))
    assert torch.equal(loaded.score(users, split, "test"), model.score(users, split, "test"))
    assert loaded.config.num_layers == 2  # type: ignore[attr-defined]
    assert _ndcg(model, split) > 2 * random_ndcg


def test_tune_uses_validation_and_returns_a_config(split: Split) -> None:
    grid = {"n_recent": (1, 3), "backward_weight": (0.0, 1.0)}
    best, trials = tune(split, grid=grid, rounds=1, show_progress=False)
    assert isinstance(best, CooccurrenceConfig)
    assert {t["n_recent"] for t in trials} <= {1, 3, CooccurrenceConfig().n_recent}
    assert max(t["ndcg@10"] for t in trials) == pytest.approx(
        _ndcg(ItemCooccurrence(best).fit(split), split, "valid")
    )


def test_cooccurrence_uses_the_test_history(split: Split) -> None:
    # On test the valid item is the most recent one: scores differ from those on valid.
    model = ItemCooccurrence(n_recent=1).fit(split)
    users = split.eval_users("test")[:5]
    assert not np.allclose(model.score(users, split, "valid"), model.score(users, split, "test"))


def test_negatives_avoid_known_items(split: Split) -> None:
    users, _ = split.train_pairs()
    neg = sample_negatives(users, split.train, np.random.default_rng(0))
    assert not np.asarray(split.train[users, neg]).any()


def test_registry() -> None:
    assert isinstance(make_baseline("most_popular"), MostPopular)
    assert make_baseline("item_cooccurrence", window=2).config.window == 2
    with pytest.raises(KeyError, match="baselines are"):
        make_baseline("nope")
    with pytest.raises(ValueError, match="window"):
        ItemCooccurrence(window=0)
