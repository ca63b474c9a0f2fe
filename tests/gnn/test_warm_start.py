"""``kgrec train --warm-start``: a saved model's weights seed a fit on a grown graph (issue 21)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from gnn.fusion import FusionRecommender
from gnn.fusion_io import read_fusion
from gnn.model import FusionConfig, FusionGNN
from gnn.warm_start import WarmStartError, warm_start
from tests.kg.query_helpers import FAST, TinyRun, load_tables, tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return tiny_run(tmp_path_factory)


def _module(run: TinyRun, ids: dict[str, list[str]], **over: object) -> FusionGNN:
    saved = read_fusion(run.run)
    known = {f.name for f in fields(FusionConfig)}
    cfg = FusionConfig(**{**{k: v for k, v in saved.meta["config"].items() if k in known}, **over})
    counts = {nt: len(v) for nt, v in ids.items()}
    return FusionGNN(cfg, counts, list(saved.edge_index), int(saved.meta["feature_dim"]))


def test_rows_are_copied_by_id_and_new_products_keep_fresh_ones(run: TinyRun) -> None:
    saved = read_fusion(run.run)
    ids = {nt: list(v) for nt, v in saved.arrays.node_ids.items()}
    old = {p: i for i, p in enumerate(ids["product"])}
    grown = {**ids, "product": ["new-a", *ids["product"][::-1], "new-b"]}
    torch.manual_seed(0)
    module = _module(run, grown)
    fresh = module.product_id.weight.detach().clone()
    counts = warm_start(module, grown, run.run)
    assert counts["new_rows"] == 4  # two products, each in the id embedding and the bias
    assert counts["rows"] >= 2 * len(old) and counts["tensors"] > 0
    weight = module.product_id.weight.detach().numpy()
    bias = module.item_bias.detach().numpy()
    for i, p in enumerate(grown["product"]):
        if p in old:
            np.testing.assert_array_equal(weight[i], saved.network["product_id.weight"][old[p]])
            assert bias[i] == saved.network["item_bias"][old[p]]
        else:
            np.testing.assert_array_equal(weight[i], fresh[i].numpy())
    np.testing.assert_array_equal(
        module.history_proj.weight.detach().numpy(), saved.network["history_proj.weight"]
    )


def test_another_architecture_is_one_clear_error(run: TinyRun) -> None:
    saved = read_fusion(run.run)
    ids = {nt: list(v) for nt, v in saved.arrays.node_ids.items()}
    with pytest.raises(WarmStartError, match="shape"):
        warm_start(_module(run, ids, dim=16), ids, run.run)


def test_a_warm_fit_starts_where_the_saved_model_ended(run: TinyRun) -> None:
    from gnn.features import text_features
    from gnn.splits import leave_one_out

    tables = load_tables(run)
    split = leave_one_out(tables)
    text, _ = text_features(
        tables, split.item_ids, run.text_cache, model_path=run.bert, show_progress=False
    )
    saved = FusionRecommender.load(run.run)
    best = saved.fit_info["best_valid_ndcg@10"]
    cfg = {**FAST, "max_epochs": 2, "eval_every": 1, "patience": 1}
    warm = FusionRecommender(tables, text=text, use_kge=False, warm_start=run.run, **cfg)
    warm.fit(split, seed=0, show_progress=False)
    info = warm.fit_info["warm_start"]
    assert info["new_rows"] == 0 and info["rows"] > 0
    cold = FusionRecommender(tables, text=text, use_kge=False, **cfg).fit(
        split, seed=0, show_progress=False
    )
    # after one epoch, the warm fit is already about where the saved fit ended (6 epochs);
    # a fit from random weights is not
    first_warm = warm.fit_info["curve"][0]["valid_ndcg@10"]
    first_cold = cold.fit_info["curve"][0]["valid_ndcg@10"]
    assert first_warm > first_cold
    assert first_warm >= 0.8 * best
