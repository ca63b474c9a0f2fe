"""Cold start of new products (text + category + brand), and one user's model scores as the
query layer computes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gnn.fusion_io import FusionArrays
from gnn.scoring import FusionScorer
from ingest.tables import GraphTables
from kg.query import Recommender, UnknownIdError
from tests.gnn.tiny_bert import tiny_bert
from tests.kg.query_helpers import TinyRun


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _product(tables: GraphTables, pid: str) -> dict[str, str]:
    (row,) = [r for r in tables.products.to_pylist() if r["id"] == pid]
    (cat,) = [r for r in tables.in_category.to_pylist() if r["product_id"] == pid]
    (brand,) = [r for r in tables.made_by.to_pylist() if r["product_id"] == pid]
    return {
        "title": row["title"],
        "description": row["description"],
        "category_id": cat["category_id"],
        "brand_id": brand["brand_id"],
    }


# --------------------------------------------------------------------------- new products
def test_new_product_lands_next_to_its_twin(rec: Recommender, tables: GraphTables) -> None:
    hits = 0
    for pid in ("p3", "p40", "p77", "p150", "p222"):
        twin = _product(tables, pid)
        v, info = rec.new_product_vector(
            twin["title"],
            twin["description"],
            category_id=twin["category_id"],
            brand_id=twin["brand_id"],
        )
        assert v.shape == (rec.vectors.shape[1],) and np.linalg.norm(v) == pytest.approx(1.0)
        # the catalogue text of the twin is the same text: its nearest neighbour, cosine 1
        assert info["neighbours"][0] == (pid, pytest.approx(1.0, abs=1e-5))
        assert sum(info["parts"].values()) == pytest.approx(1.0)
        assert set(info["parts"]) == {"text", "category", "brand"}
        results = rec.related_to_new_product(
            twin["title"],
            twin["description"],
            category_id=twin["category_id"],
            brand_id=twin["brand_id"],
            k=10,
        )
        assert [r.rank for r in results] == list(range(1, 11))
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
        hits += pid in {r.product_id for r in results}
    assert hits >= 4


def test_new_product_filters_and_errors(rec: Recommender, tables: GraphTables) -> None:
    dept = _product(tables, "p3")["category_id"].split(" > ")[0]
    inside = rec.related_to_new_product(
        "steel hex bolt", category_id=dept, k=20, same_category=True
    )
    outside = rec.related_to_new_product(
        "steel hex bolt", category_id=dept, k=20, same_category=False
    )
    assert all(r.category_id.startswith(dept + " > ") for r in inside)  # type: ignore[union-attr]
    assert not any(r.category_id.startswith(dept + " > ") for r in outside)  # type: ignore[union-attr]
    _only_text, info = rec.new_product_vector("steel hex bolt")
    assert set(info["parts"]) == {"text"}
    with pytest.raises(ValueError, match="category_id"):
        rec.related_to_new_product("bolt", same_category=True)
    with pytest.raises(UnknownIdError, match="Nowhere"):
        rec.related_to_new_product("bolt", category_id="Nowhere")
    with pytest.raises(ValueError, match="k must be"):
        rec.related_to_new_product("bolt", k=0)


def test_preload(run: TinyRun, tables: GraphTables, tmp_path: Path) -> None:
    # what kgrec serve does at start-up: the encoder, and the text vectors the model holds
    rec = Recommender.load(run.run, tables)
    rec.new_products.preload()
    assert rec.new_products.encoder._loaded is not None
    saved = rec.new_products._text_vectors
    assert saved is not None and saved.shape == (rec.n_products, 32)
    assert np.array_equal(saved, rec.model.features[:, :32])
    # another encoder: the catalogue is not encoded at start-up, only on first use
    other = tiny_bert(tmp_path / "bert", seed=1)
    cache = tmp_path / "cache"
    rec = Recommender.load(run.run, tables, text_model=other, text_cache=cache)
    rec.new_products.preload()
    assert rec.new_products.encoder._loaded is not None
    assert rec.new_products._text_vectors is None and not cache.exists()


def test_catalogue_text_is_encoded_through_the_cache_for_another_encoder(
    run: TinyRun, tables: GraphTables, tmp_path: Path
) -> None:
    other = tiny_bert(tmp_path / "bert", seed=1)
    cache = tmp_path / "cache"
    rec = Recommender.load(run.run, tables, text_model=other, text_cache=cache)
    twin = _product(tables, "p40")
    _v, info = rec.new_product_vector(
        twin["title"],
        twin["description"],
        category_id=twin["category_id"],
        brand_id=twin["brand_id"],
    )
    assert info["neighbours"][0] == ("p40", pytest.approx(1.0, abs=1e-5))
    assert any(cache.rglob("*.safetensors"))  # the catalogue went through the cache
    assert rec.new_products.text_vectors().shape == (rec.n_products, 32)


# --------------------------------------------------------------------------- model scorer
@pytest.mark.parametrize(
    ("blend", "mode", "tau"),
    [
        (0.0, "linear", 0.0),
        (0.4, "linear", 0.0),
        (1.0, "linear", 0.0),
        (0.4, "log", 0.0),
        (0.9, "log", 0.0),
        (0.0, "linear", 2.0),
        (0.4, "linear", 1.0),
        (0.6, "log", 3.0),
    ],
)
def test_one_users_scores_match_score_histories(
    run: TinyRun, blend: float, mode: str, tau: float
) -> None:
    model = FusionArrays.load(run.run)
    assert list(model.similarity) == ["text"]
    model.blend, model.blend_mode = blend, mode
    model.similarity_weights = {"text": tau} if tau else {}
    scorer = FusionScorer(model)
    rng = np.random.default_rng(0)
    histories = [rng.integers(0, 300, n) for n in (1, 3, 12, 40)] + [np.array([5, 5, 5, 9])]
    for h in histories:
        expected = scorer.score_histories([h])[0]
        got = _distribution(scorer, h)
        assert got.dtype == np.float32 and got.sum() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-8)


def _distribution(scorer: FusionScorer, history: np.ndarray) -> np.ndarray:
    """One user's final distribution as the query layer computes it (1-D arrays)."""
    m = scorer.relative(history)
    return m * np.float32(1.0 / float(m.sum(dtype=np.float64)))
