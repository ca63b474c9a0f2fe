"""The query layer reads a saved model as numpy arrays (gnn.fusion_io.FusionArrays): the same
results as from the PyTorch model rebuilt for training, and no PyTorch import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gnn.fusion import FusionRecommender
from gnn.fusion_io import FusionArrays
from ingest.tables import GraphTables
from kg.query import Recommender
from tests.kg.query_helpers import TinyRun


def _answers(rec: Recommender) -> str:
    out = []
    for user in ("u0", "u5", "u17"):
        out += [r.to_dict() for r in rec.recommend(user, k=8, paths=True)]
        out += [r.to_dict() for r in rec.cross_category(user, k=5, level=2)]
        out += [p.to_dict() for p in rec.explain(user, "p3")]
    out += [r.to_dict() for r in rec.related("p0", k=6)]
    out += [r.to_dict() for r in rec.recommend(["p1", "p9"], k=4)]
    return json.dumps(out)


@pytest.mark.parametrize("terms", [None, ("log", 0.6, 2.0)], ids=["as-trained", "text-term"])
def test_arrays_give_the_torch_models_results(
    run: TinyRun, tables: GraphTables, tmp_path: Path, terms: tuple[str, float, float] | None
) -> None:
    model = FusionRecommender.load(run.run, device="cpu")
    folder = run.run
    if terms is not None:  # a model whose score has the text similarity term
        model.blend_mode, model.blend, tau = terms
        model.similarity_weights = {"text": tau}
        folder = model.save(tmp_path / "m")
    arrays = FusionArrays.load(folder)
    expected = model.arrays()
    for name in ("product_vectors", "item_bias", "position_logits", "history_proj_weight",
                 "history_proj_bias", "popularity", "features"):  # fmt: skip
        assert np.array_equal(getattr(arrays, name), getattr(expected, name)), name
    assert (arrays.cooc != expected.cooc).nnz == 0
    assert arrays.similarity.keys() == expected.similarity.keys() == {"text"}
    assert np.array_equal(arrays.similarity["text"], expected.similarity["text"])
    assert (arrays.blend, arrays.blend_mode, arrays.similarity_weights) == (
        model.blend, model.blend_mode, model.similarity_weights
    )  # fmt: skip
    loaded = Recommender.load(folder, tables)
    assert loaded.model.similarity_weights == model.similarity_weights
    assert _answers(loaded) == _answers(Recommender(model, tables))


def test_loading_for_queries_does_not_import_torch(run: TinyRun) -> None:
    script = (
        "import sys\n"
        "from kg.query import Recommender\n"
        f"rec = Recommender.load({str(run.run)!r}, {str(run.tables)!r})\n"
        "print(len(rec.cross_category('u0', k=3)), 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["3", "False"]
