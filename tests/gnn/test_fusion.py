"""The fusion model on the synthetic ``tiny`` shop: graph building, planted preferences,
ablation switches, cold-start histories, features, the numpy scorer, and exact save/load."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gnn.baselines import ContentRecency, MostPopular, RandomScorer
from gnn.evaluate import evaluate
from gnn.features import align_rows, kge_features, text_features
from gnn.fusion import FusionRecommender
from gnn.fusion_io import FusionArrays, read_fusion
from gnn.graph import build_hetero
from gnn.model import FusionConfig
from gnn.scoring import FinalWeights, FusionScorer, history_matrix, softmax
from gnn.similarity import reduce_features
from gnn.splits import Split, leave_one_out
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from ingest.tables import GraphTables
from tests.gnn.tiny_bert import tiny_bert

#: Small, fast settings for the tiny shop.
FAST = {"dim": 32, "max_epochs": 30, "eval_every": 2, "patience": 3, "batch_size": 256}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def shop() -> GraphTables:
    return generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)


@pytest.fixture(scope="module")
def split(shop: GraphTables) -> Split:
    return leave_one_out(shop)


@pytest.fixture(scope="module")
def text(shop: GraphTables, split: Split, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    model = tiny_bert(tmp_path_factory.mktemp("bert"))
    cache = tmp_path_factory.mktemp("text-cache")
    vectors, info = text_features(
        shop, split.item_ids, cache, model_path=model, show_progress=False
    )
    assert info["missing"] == 0 and info["dim"] == 32
    return vectors


@pytest.fixture(scope="module")
def fitted(shop: GraphTables, split: Split, text: np.ndarray) -> FusionRecommender:
    model = FusionRecommender(shop, text=text, use_kge=False, blend_grid=(0.0,), **FAST)
    return model.fit(split, seed=0, show_progress=False)


def _ndcg(model: object, split: Split, on: str = "test") -> float:
    return evaluate(model, split, on=on, show_progress=False)["ndcg@10"]  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ graph
def test_hetero_graph_uses_train_pairs_only(shop: GraphTables, split: Split) -> None:
    data = build_hetero(shop, split)
    assert data["user"].num_nodes == split.n_users
    assert data["product"].num_nodes == split.n_items
    assert data["category"].num_nodes == shop.categories.num_rows
    assert data["brand"].num_nodes == shop.brands.num_rows
    ei = data["user", "interacted", "product"].edge_index
    pairs = set(zip(ei[0].tolist(), ei[1].tolist(), strict=True))
    assert len(pairs) == split.train.nnz
    for u in range(split.n_users):
        for target in (*split.valid[u], *split.test[u]):
            assert (u, int(target)) not in pairs
    rev = data["product", "rev_interacted", "user"].edge_index
    assert torch.equal(rev, ei.flip(0))
    assert (
        data["product", "in_category", "category"].edge_index.shape[1] == shop.in_category.num_rows
    )
    w = data["product", "followed_by", "product"].edge_weight
    assert w.min() >= 1 and int(w.sum()) <= sum(max(s.size - 1, 0) for s in split.train_sequences)


def test_hetero_switches_and_ids(shop: GraphTables, split: Split) -> None:
    data = build_hetero(shop, split, interactions=False, transitions=False, catalogue=False)
    assert data.edge_types == [] and set(data.node_types) == {"user", "product"}
    full = build_hetero(shop, split)
    assert full["product"].ids == split.item_ids and full["user"].ids == split.user_ids


def test_hetero_refuses_other_products(shop: GraphTables, split: Split) -> None:
    fewer = dataclasses.replace(shop, products=shop.products.slice(1))
    with pytest.raises(ValueError, match="differ from the split"):
        build_hetero(fewer, split)


# ------------------------------------------------------------------------------ model
def test_recovers_planted_preferences(fitted: FusionRecommender, split: Split) -> None:
    ours = _ndcg(fitted, split)
    rand = _ndcg(RandomScorer().fit(split, seed=0), split)
    popular = _ndcg(MostPopular().fit(split), split)
    # Random NDCG@10 on 300 items is about 0.02; the planted structure lets a model reach far
    # more, and above popularity.
    assert ours > 3 * rand and ours > rand + 0.05
    assert ours > popular + 0.01
    info = fitted.fit_info
    assert 1 <= info["best_epoch"] <= info["epochs_run"] <= FAST["max_epochs"]
    assert info["best_valid_ndcg@10"] == max(
        c["valid_ndcg@10"] for c in info["curve"] if "valid_ndcg@10" in c
    )


def test_scores_shape_and_history_cold_start(fitted: FusionRecommender, split: Split) -> None:
    users = np.array([0, 3, 7])
    scores = fitted.score(users, split, "test")
    assert scores.shape == (3, split.n_items) and scores.dtype == np.float32
    assert np.allclose(scores.sum(1), 1.0, atol=1e-4)  # a distribution per user
    # A new user given only a product list scores like a known user with that history.
    history = split.history("test")
    again = fitted.score_histories([history[u] for u in users])
    assert np.allclose(scores, again)
    empty = fitted.score_histories([np.zeros(0, np.int64)])
    assert np.isfinite(empty).all()


def test_history_matrix_latest_first() -> None:
    m = history_matrix([np.array([1, 2, 3]), np.zeros(0, np.int64)], 2)
    assert m.tolist() == [[3, 2], [-1, -1]]


def test_numpy_user_vectors_are_the_networks(fitted: FusionRecommender, split: Split) -> None:
    # the one scorer's user side is the network's, which training differentiates
    module = fitted.module
    assert module is not None and fitted.product_vectors is not None
    histories = [split.train_sequences[u] for u in range(20)] + [np.zeros(0, np.int64)]
    hist = history_matrix(histories, fitted.config.history_len)
    with torch.no_grad():
        product = torch.as_tensor(fitted.product_vectors)
        want = module.user_vectors(product, torch.as_tensor(hist))
        logits = module.scores(want, product)
    scorer = fitted.scorer()
    got = scorer.user_vectors(hist)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
    dense = scorer.parts(histories).dense + scorer.bias
    np.testing.assert_allclose(dense, logits.numpy(), rtol=1e-4, atol=1e-4)
    one = scorer.user_vector(histories[3])
    np.testing.assert_allclose(one, got[3], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "weights",
    [FinalWeights(), FinalWeights("linear", 0.5), FinalWeights("log", 0.6),
     FinalWeights("linear", 0.3, {"text": 2.0}), FinalWeights("log", 0.4, {"text": 1.0})],
    ids=["gnn", "linear", "log", "linear-text", "log-text"],
)  # fmt: skip
def test_one_user_and_a_batch_score_alike(
    fitted: FusionRecommender, split: Split, text: np.ndarray, weights: FinalWeights
) -> None:
    """The query layer scores one user with 1-D arrays, evaluation a batch with 2-D: the same
    steps (gnn.scoring), the same ranking, and the module docstring's formula."""
    arrays = fitted.arrays()
    arrays.similarity = {"text": reduce_features(text, 8)}
    scorer = FusionScorer(arrays, weights)
    histories = [split.train_sequences[u] for u in range(0, 60, 3)]
    batch = scorer.score_histories(histories)
    for h, row in zip(histories, batch, strict=True):
        one = _distribution(scorer, h)
        np.testing.assert_allclose(one, row, rtol=2e-4, atol=1e-7)
        assert np.array_equal(
            np.argsort(-one, kind="stable")[:10], np.argsort(-row, kind="stable")[:10]
        )
    # the formula, written out in float64
    h = histories[5]
    a = arrays
    recent = h[::-1][: a.history_len]
    w = np.exp(a.position_logits[: recent.size] - a.position_logits[: recent.size].max())
    u = a.history_proj_weight @ (w / w.sum() @ a.product_vectors[recent]) + a.history_proj_bias
    logits = a.product_vectors.astype(np.float64) @ u + a.item_bias
    p = np.exp(logits - logits.max())
    p /= p.sum()
    cfg = a.cooc_config
    last = h[::-1][: cfg["n_recent"]]
    votes = sum(cfg["recency_decay"] ** k * a.cooc[j].toarray()[0] for k, j in enumerate(last))
    counts = votes + cfg["popularity_weight"] * a.popularity + 1e-12
    q = counts / counts.sum()
    beta = weights.beta
    if beta == 0:
        z = np.log(p)
    elif weights.mode == "log":
        z = (1 - beta) * np.log(p) + beta * np.log(q)
    else:
        z = np.log((1 - beta) * p + beta * q)
    tau = weights.similarity.get("text", 0.0)
    c = arrays.similarity["text"].astype(np.float64)
    profile = sum(
        a.similarity_decay**k * c[j] for k, j in enumerate(h[::-1][: a.similarity_recent])
    )
    z = z + tau * (c @ profile)
    want = np.exp(z - z.max())
    np.testing.assert_allclose(batch[5], want / want.sum(), rtol=1e-3, atol=1e-7)


def test_save_load_identical_scores(
    fitted: FusionRecommender, split: Split, tmp_path: Path
) -> None:
    fitted.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "config.json",
        "model.safetensors",
        "id_maps.json",
    }
    users = split.eval_users("test")
    expected = fitted.score(users, split, "test")
    # the one reader: numpy arrays, for scoring
    scorer = FusionScorer.load(tmp_path / "m")
    assert scorer.matches(split)
    assert np.array_equal(scorer.score(users, split, "test"), expected)
    assert scorer.fit(split) is scorer
    # and the network rebuilt from them, for further training
    loaded = FusionRecommender.load(tmp_path / "m", device="cpu")
    assert np.array_equal(loaded.score(users, split, "test"), expected)
    assert loaded.matches(split)
    assert loaded.module is not None and fitted.module is not None
    _assert_same_state(loaded.module.state_dict(), fitted.module.state_dict())
    resaved = load_file(str(loaded.save(tmp_path / "again") / "model.safetensors"))
    _assert_same_state(resaved, load_file(str(tmp_path / "m" / "model.safetensors")))
    # It recomputes the same vectors from the stored graph and features, and trains on.
    loaded._finish()
    assert fitted.product_vectors is not None and loaded.product_vectors is not None
    np.testing.assert_allclose(loaded.product_vectors, fitted.product_vectors, atol=1e-5)
    opt = torch.optim.Adam(loaded.module.parameters(), lr=1e-2)
    hist = history_matrix([split.train_sequences[u][:-1] for u in range(50)], 10)
    target = np.array([[u, split.train_sequences[u][-1]] for u in range(50)])
    before = loaded.module.item_bias.detach().clone()
    loss = loaded._epoch(hist, target, np.random.default_rng(0), opt, torch.device("cpu"))
    assert np.isfinite(loss) and not torch.equal(loaded.module.item_bias, before)


def test_scoring_imports_neither_torch_nor_kg(fitted: FusionRecommender, tmp_path: Path) -> None:
    # importing PyTorch is seconds of a CLI query's start-up; scoring does not need it
    folder = fitted.save(tmp_path / "m")
    script = (
        "import sys, numpy as np\n"
        "from gnn.scoring import FusionScorer\n"
        f"m = FusionScorer.load({str(folder)!r})\n"
        "p = m.score_histories([np.array([0, 1])])\n"
        "print(p.shape[1], [m for m in ('torch', 'kg') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [str(fitted.shape[1]), "[]"]


def test_gnn_does_not_import_kg() -> None:
    # imports run one way: ingest <- gnn <- kg
    script = (
        "import importlib, pkgutil, sys\n"
        "import gnn, gnn.baselines\n"
        "for pkg in (gnn, gnn.baselines):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(m for m in sys.modules if m == 'kg' or m.startswith('kg.')))\n"
        "print(len([m for m in sys.modules if m.startswith('gnn.')]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert int(out[1]) >= 20  # every module of gnn was imported


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in b), [k for k in b if not torch.equal(a[k], b[k])]


def test_load_refuses_other_models(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model": "bpr_mf", "format_version": 1}')
    with pytest.raises(ValueError, match="reads model 'fusion'"):
        FusionRecommender.load(tmp_path)
    with pytest.raises(ValueError, match="reads model 'fusion' format 1"):
        FusionArrays.load(tmp_path)
    (tmp_path / "config.json").write_text('{"model": "fusion", "format_version": 0}')
    with pytest.raises(ValueError, match="format 0"):
        read_fusion(tmp_path)


def test_blend_chosen_on_validation(shop: GraphTables, split: Split, text: np.ndarray) -> None:
    model = FusionRecommender(
        shop,
        text=text,
        use_kge=False,
        blend_grid=(0.0, 0.5, 1.0),
        similarity_grid=(0.0,),
        **{**FAST, "max_epochs": 4},
    ).fit(split, seed=1, show_progress=False)
    assert model.similarity == {} and model.similarity_weights == {}
    tried = {(mode, beta): ndcg for mode, beta, ndcg in model.fit_info["blend_curve"]}
    assert set(tried) == {
        ("linear", 0.0),
        ("linear", 0.5),
        ("linear", 1.0),
        ("log", 0.5),
        ("log", 1.0),
    }
    assert tried[(model.blend_mode, model.blend)] == max(tried.values())


def test_similarity_terms_chosen_on_validation(
    shop: GraphTables, split: Split, text: np.ndarray, tmp_path: Path
) -> None:
    kge = np.random.default_rng(0).normal(size=(split.n_items, 8)).astype(np.float32)
    model = FusionRecommender(
        shop,
        text=text,
        kge=kge,
        blend_grid=(0.0, 0.5),
        similarity_grid=(0.0, 1.0, 4.0),
        similarity_dim=6,
        **{**FAST, "max_epochs": 2},
    ).fit(split, seed=0, show_progress=False)
    assert sorted(model.similarity) == ["kge", "text"]
    assert model.similarity["text"].shape == (split.n_items, 6)
    trials = model.fit_info["weight_trials"]
    tried_taus = {(t["similarity"]["text"], t["similarity"]["kge"]) for t in trials}
    assert {(0.0, 1.0), (0.0, 4.0)} <= tried_taus  # kge searched first, text still 0
    chosen = [
        t["ndcg@10"]
        for t in trials
        if (t["mode"], t["beta"]) == (model.blend_mode, model.blend)
        and {k: v for k, v in t["similarity"].items() if v} == model.similarity_weights
    ]
    assert chosen and chosen[0] == max(t["ndcg@10"] for t in trials)
    # The final score is softmax(log_scores(parts)) (what the weight search recombines), and
    # the terms change the ranking.
    model.similarity_weights = {"text": 4.0}
    histories = [split.train_sequences[u] for u in range(5)]
    scorer = model.scorer()
    parts = scorer.parts(histories, similarity=["kge", "text"])
    weights = FinalWeights(model.blend_mode, model.blend, {"text": 4.0})
    expected = softmax(scorer.log_scores(parts, weights))
    got = model.score_histories(histories)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    model.similarity_weights = {}
    assert not np.allclose(model.score_histories(histories), got, atol=1e-3)
    # Saved and loaded with the terms and their weights: identical scores.
    model.similarity_weights = {"text": 4.0, "kge": 1.0}
    loaded = FusionScorer.load(model.save(tmp_path / "m"))
    assert loaded.weights.similarity == {"text": 4.0, "kge": 1.0}
    assert np.array_equal(loaded.score_histories(histories), model.score_histories(histories))


def test_reduce_features_keeps_missing_rows_empty() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 10))
    x[3] = 0.0
    x[5] = 2.0 * x[4]  # the same direction as row 4
    y = reduce_features(x, 4)
    assert y.shape == (20, 4) and y.dtype == np.float32
    assert not y[3].any()
    norms = np.linalg.norm(np.delete(y, 3, axis=0), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    assert float(y[4] @ y[5]) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(reduce_features(x, 4), y)
    assert reduce_features(x, 64).shape == (20, 10)


def test_ablation_switches(shop: GraphTables, split: Split, text: np.ndarray) -> None:
    kge = np.random.default_rng(0).normal(size=(split.n_items, 8)).astype(np.float32)
    cfg = {**FAST, "max_epochs": 2, "blend_grid": (0.0,)}
    full = FusionRecommender(shop, text=text, kge=kge, **cfg).fit(split, show_progress=False)
    assert full.features is not None and full.features.shape[1] == 32 + 8
    assert any(et[1] == "in_category" for et in full.edge_index)
    no_kg = FusionRecommender(shop, text=text, kge=kge, use_kg_edges=False, **cfg)
    no_kg.fit(split, show_progress=False)
    assert {et[1] for et in no_kg.edge_index} <= {
        "interacted",
        "rev_interacted",
        "followed_by",
        "rev_followed_by",
    }
    no_text = FusionRecommender(shop, kge=kge, use_text=False, **cfg).fit(
        split, show_progress=False
    )
    assert no_text.features is not None and no_text.features.shape[1] == 8
    with pytest.raises(ValueError, match="no KGE features"):
        FusionRecommender(shop, text=text)
    with pytest.raises(ValueError, match="at least one of"):
        FusionConfig(use_text=False, use_kge=False, use_id=False)


def test_seeded_training_is_reproducible(shop: GraphTables, split: Split, text: np.ndarray) -> None:
    cfg = {**FAST, "max_epochs": 2, "blend_grid": (0.0,)}
    a = FusionRecommender(shop, text=text, use_kge=False, **cfg).fit(
        split, seed=5, show_progress=False
    )
    b = FusionRecommender(shop, text=text, use_kge=False, **cfg).fit(
        split, seed=5, show_progress=False
    )
    assert np.array_equal(a.product_vectors, b.product_vectors)


# --------------------------------------------------------------------------- features
def test_align_rows_normalises_and_counts_missing() -> None:
    out, missing = align_rows(["b", "z", "a"], ["a", "b"], np.array([[3.0, 4.0], [0.0, 2.0]]))
    assert missing == 1
    assert np.allclose(out, [[0, 1], [0, 0], [0.6, 0.8]])


def test_kge_features_from_artifact(split: Split, tmp_path: Path) -> None:
    from kg.embeddings.artifact import KGEmbeddings

    keys = split.item_ids[:5]
    emb = KGEmbeddings(
        entity=np.eye(6, 4, dtype=np.float32) + 1,
        relation=np.zeros((1, 4), np.float32),
        entities=[f"Product:{k}" for k in keys] + ["Brand:b0"],
        relations=["MADE_BY"],
        config={"model": "transe", "data": {"fingerprint": "x"}},
    )
    emb.save(tmp_path / "kge")
    vectors, info = kge_features(KGEmbeddings.load(tmp_path / "kge"), split.item_ids)
    assert vectors.shape == (split.n_items, 4)
    assert info["missing"] == split.n_items - 5 and info["fingerprint"] == "x"
    assert np.allclose(np.linalg.norm(vectors[:5], axis=1), 1.0)


def test_content_recency_beats_random(split: Split, text: np.ndarray) -> None:
    scorer = ContentRecency(text, name="text").fit(split)
    rand = _ndcg(RandomScorer().fit(split, seed=0), split)
    assert _ndcg(scorer, split) > 2 * rand
    chosen = scorer.tune(split, n_recent=(1, 3), recency_decay=(0.5,))
    assert chosen["n_recent"] in (1, 3) and len(chosen["tried"]) == 2


def _distribution(scorer: FusionScorer, history: np.ndarray) -> np.ndarray:
    """One user's final distribution as the query layer computes it (1-D arrays)."""
    m = scorer.relative(history)
    return m * np.float32(1.0 / float(m.sum(dtype=np.float64)))


# ------------------------------------------------------------------ neighbour sampling
def test_sampler_draws_real_edges_and_small_neighbourhoods_whole(
    shop: GraphTables, split: Split
) -> None:
    """Each sampled edge is an edge of the graph; a node with at most ``fan`` in-neighbours
    brings all of them, one with more brings exactly ``fan``; the seeds come first."""
    from gnn.sampling import NeighbourSampler

    data = build_hetero(shop, split)
    edges = {et: data[et].edge_index for et in data.edge_types}
    num = {nt: data[nt].num_nodes for nt in data.node_types}
    fan = 3
    sampler = NeighbourSampler(edges, num, (fan, 2))
    rng = np.random.default_rng(0)
    seeds = np.array([5, 0, 17, 42])
    for _ in range(2):  # the second draw starts from a clean id map
        sub = sampler.sample({"product": seeds}, rng, torch.device("cpu"))
        assert sub.nodes["product"][: seeds.size].tolist() == seeds.tolist()
        for nt, ids in sub.nodes.items():
            assert ids.unique().numel() == ids.numel() == sum(sub.node_hops[nt])
        for et, local in sub.edge_index.items():
            real = set(zip(*edges[et].tolist(), strict=True))
            src = sub.nodes[et[0]][local[0]].tolist()
            dst = sub.nodes[et[2]][local[1]].tolist()
            assert set(zip(src, dst, strict=True)) <= real
            if et[2] != "product":
                continue
            for seed in seeds.tolist():  # the first hop into the seeds
                into = [s for s, d in real if d == seed]
                got = sum(1 for d in dst if d == seed)
                # the second hop may reach a seed again, through another node
                assert got >= min(len(into), fan)
                if len(into) <= fan:
                    assert {s for s, d in zip(src, dst, strict=True) if d == seed} == set(into)
    assert sub.num_edges > 0
    assert all(sum(sub.edge_hops[et]) == e.shape[1] for et, e in sub.edge_index.items())
    with pytest.raises(ValueError, match="fanout"):
        FusionConfig(num_layers=2, fanout=(3,))


def test_trimmed_layers_give_the_seeds_the_untrimmed_vectors(
    shop: GraphTables, split: Split
) -> None:
    """Computing at each layer only what the next one reads changes no seed's vector."""
    from gnn.model import FusionGNN
    from gnn.sampling import NeighbourSampler

    data = build_hetero(shop, split)
    edges = {et: data[et].edge_index for et in data.edge_types}
    num = {nt: data[nt].num_nodes for nt in data.node_types}
    cfg = FusionConfig(dim=16, use_text=False, use_kge=False, fanout=(4, 2))
    torch.manual_seed(0)
    module = FusionGNN(cfg, num, list(edges), 0).eval()
    sub = NeighbourSampler(edges, num, cfg.fanout).sample(
        {"product": np.array([3, 8, 21]), "user": np.array([0, 5])},
        np.random.default_rng(1),
        torch.device("cpu"),
    )
    whole = dataclasses.replace(
        sub,
        node_hops={nt: [sum(h), 0, 0] for nt, h in sub.node_hops.items()},
        edge_hops={et: [sum(h), 0] for et, h in sub.edge_hops.items()},
    )  # every node computed at every layer over every edge
    with torch.no_grad():
        trimmed, untrimmed = module(None, {}, sub), module(None, {}, whole)
    for nt, seeds in (("product", 3), ("user", 2)):
        assert trimmed[nt].shape == (seeds, 16)
        torch.testing.assert_close(trimmed[nt], untrimmed[nt][:seeds])


def test_sampled_training_recovers_planted_preferences(
    shop: GraphTables, split: Split, text: np.ndarray
) -> None:
    """Mini-batch training over sampled neighbourhoods with a sampled softmax learns the
    planted structure as full-graph training does."""
    model = FusionRecommender(
        shop, text=text, use_kge=False, blend_grid=(0.0,), fanout=(5, 3), negatives=64, **FAST
    ).fit(split, seed=0, show_progress=False)
    ours = _ndcg(model, split)
    rand = _ndcg(RandomScorer().fit(split, seed=0), split)
    popular = _ndcg(MostPopular().fit(split), split)
    assert ours > 3 * rand and ours > rand + 0.05
    assert ours > popular + 0.01
    assert model.product_vectors is not None and model.product_vectors.shape[0] == split.n_items


def test_weight_search_recomputes_parts_above_its_memory_bound(
    fitted: FusionRecommender, split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above KEEP_CELLS the weight search computes each batch's parts again instead of keeping
    every validation user's scores: the same trials and the same choice."""
    from gnn import fusion_blend

    users = split.eval_users("valid")
    grid = {"blend_grid": (0.0, 0.3, 0.6), "similarity_grid": (0.0,)}
    kept = fusion_blend.choose_weights(fitted.scorer(), split, users, **grid)
    monkeypatch.setattr(fusion_blend, "KEEP_CELLS", 0)
    again = fusion_blend.choose_weights(fitted.scorer(), split, users, **grid)
    assert again == kept and len(kept[1]) >= 4
