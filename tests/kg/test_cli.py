"""The ``kgrec`` command line, run as a user would run it (subprocesses)."""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest.sources.synthetic import SyntheticConfig, generate_shop
from ingest.tables import GraphTables
from kg.neo4j.settings import Neo4jSettings
from tests.kg.cli_helpers import kgrec


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, kg.cli\n"
        "kg.cli._register_extras(); kg.cli.build_parser()\n"
        "heavy = [m for m in ('torch', 'pykeen', 'transformers', 'torch_geometric', 'pyarrow') "
        "if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "embed" in kgrec("--help").stdout


def test_ingest_synthetic_to_tables(tmp_path: Path) -> None:
    proc = kgrec("ingest", "synthetic", "--preset", "tiny", "--seed", "5", "--out", str(tmp_path / "t"),
                 "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = generate_shop(SyntheticConfig.preset("tiny", seed=5), show_progress=False)
    assert GraphTables.load(tmp_path / "t").fingerprint() == expected.fingerprint()


def test_bad_input_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "Shop.item.json").write_text('{"1": {"title": "A"},\n "2": {"title": }\n}')
    (tmp_path / "Shop.inter.json").write_text('{"u": [1]}')
    proc = kgrec("ingest", "amazon", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kgrec: error: ")
    assert "Shop.item.json:2" in lines[0]
    assert not (tmp_path / "out").exists()


def test_embed_from_tables(tmp_path: Path) -> None:
    generate_shop(SyntheticConfig.preset("tiny"), show_progress=False).save(tmp_path / "t")
    proc = kgrec("embed", "--tables", str(tmp_path / "t"), "--out", str(tmp_path / "kge"),
                 "--epochs", "3", "--dim", "8", "--batch-size", "256", "--eval-every", "3",
                 "--no-write-back", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "IN_CATEGORY" in proc.stdout
    config = json.loads((tmp_path / "kge" / "config.json").read_text())
    assert config["model"] == "transe" and config["training"]["epochs_trained"] == 3
    assert (tmp_path / "kge" / "embeddings.safetensors").exists()


def test_train_and_evaluate_from_tables(tmp_path: Path) -> None:
    generate_shop(SyntheticConfig.preset("tiny"), show_progress=False).save(tmp_path / "t")
    kge = kgrec("embed", "--tables", str(tmp_path / "t"), "--out", str(tmp_path / "kge"),
                "--epochs", "2", "--dim", "8", "--batch-size", "256", "--eval-every", "2",
                "--no-write-back", "--no-progress")  # fmt: skip
    assert kge.returncode == 0, kge.stderr
    run = tmp_path / "fusion"
    proc = kgrec("train", "--tables", str(tmp_path / "t"), "--kge", str(tmp_path / "kge"),
                 "--no-text", "--out", str(run), "--epochs", "3", "--dim", "16",
                 "--similarity-dim", "4", "--eval-every", "1", "--device", "cpu",
                 "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "split leave_one_out" in proc.stdout and "test (" in proc.stdout
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "model.safetensors", "id_maps.json", "metrics.json"} <= names
    assert (run / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from safetensors import safe_open

    with safe_open(str(run / "model.safetensors"), "np") as saved:
        assert saved.get_tensor("similarity.kge").shape[1] == 4  # --similarity-dim
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["fit"]["epochs_run"] == 3 and metrics["split"]["protocol"] == "leave_one_out"
    ev = kgrec("evaluate", "--tables", str(tmp_path / "t"), "--model", str(run), "--json",
               "--device", "cpu", "--no-progress")  # fmt: skip
    assert ev.returncode == 0, ev.stderr
    again = json.loads(ev.stdout)
    assert again["test"]["ndcg@10"] == pytest.approx(metrics["test"]["ndcg@10"], abs=1e-6)
    other = generate_shop(SyntheticConfig.preset("tiny", n_products=250), show_progress=False)
    other.save(tmp_path / "other")
    bad = kgrec("evaluate", "--tables", str(tmp_path / "other"), "--model", str(run))
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        f"kgrec: error: {run} was trained on other users/products than these tables"
    )


def test_train_options_map_to_the_fusion_config(tmp_path: Path) -> None:
    from kg.cli import _register_extras, build_parser
    from kg.cli_train import _config

    _register_extras()
    base = ["train", "--out", str(tmp_path / "run"), "--tables", str(tmp_path / "t")]
    default = _config(build_parser().parse_args(base))
    assert default.similarity_dim == 64 and any(default.similarity_grid)
    off = _config(build_parser().parse_args([*base, "--no-similarity", "--similarity-dim", "8"]))
    assert off.similarity_grid == (0.0,) and off.similarity_dim == 8
    assert not off.use_kge and _config(build_parser().parse_args([*base, "--kge", "k"])).use_kge
    bad = kgrec(*base, "--similarity-dim", "0")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "kgrec: error: FusionConfig: similarity_dim must be >= 1"
    assert not (tmp_path / "run").exists()


@pytest.mark.neo4j
def test_external_server_is_used_and_never_started(
    neo4j_db, neo4j_server: Neo4jSettings, tmp_path: Path
) -> None:
    env = {"NEO4J_URI": neo4j_server.uri, "NEO4J_USERNAME": "neo4j",
           "NEO4J_PASSWORD": neo4j_server.password or "", "KGREC_HOME": str(tmp_path)}  # fmt: skip
    start = kgrec("neo4j", "start", env=env)
    assert start.returncode == 0 and "NEO4J_URI is set" in start.stdout
    assert not (tmp_path / "neo4j" / "server.json").exists()
    proc = kgrec("ingest", "synthetic", "--preset", "tiny", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    records, _, _ = neo4j_db.execute_query("MATCH (p:Product) RETURN count(p) AS n")
    assert records[0]["n"] == SyntheticConfig.preset("tiny").n_products
    bad = kgrec("neo4j", "status", env={**env, "NEO4J_PASSWORD": "wrong"})
    assert bad.returncode == 1
    assert bad.stderr.strip().endswith(
        "Neo4j rejected the user name or password (check NEO4J_USERNAME/NEO4J_PASSWORD)"
    )


def _parse(*args: str) -> argparse.Namespace:
    from kg.cli import _register_extras, build_parser

    _register_extras()
    return build_parser().parse_args(list(args))


def test_cli_defaults_are_the_config_defaults(tmp_path: Path) -> None:
    """``kgrec embed``, ``train`` and ``serve`` take their defaults from the configuration
    dataclasses: an option default that differs from its dataclass field fails here."""
    from gnn.model import FusionConfig
    from gnn.pipeline import train_fusion
    from kg.cli_embed import EMBED_CONFIG
    from kg.cli_options import config_from_args
    from kg.cli_train import _config
    from kg.embeddings.train import EmbedConfig
    from kg.query.candidates import ApproximateSearch
    from kg.serve_limits import HttpLimits
    from kg.serve_run import ServeConfig

    out = ["--out", str(tmp_path / "x")]
    args = _parse("train", *out)
    assert _config(args) == FusionConfig(use_kge=False)
    assert args.seed == inspect.signature(train_fusion).parameters["seed"].default
    assert config_from_args(EMBED_CONFIG, _parse("embed", *out)) == EmbedConfig()
    args = _parse("serve", "--model", "m")
    assert config_from_args(ServeConfig, args) == ServeConfig()
    assert config_from_args(HttpLimits, args) == HttpLimits()
    assert config_from_args("kg.query.candidates:ApproximateSearch", args) == ApproximateSearch()
    # the help states the dataclass's defaults
    help_text = " ".join(kgrec("train", "--help").stdout.split())
    assert f"Adam learning rate (default: {FusionConfig.lr})" in help_text
    assert f"most epochs (default: {FusionConfig.max_epochs})" in help_text
    # an option given on the command line wins; a default written into the parser would be
    # one too, so the comparison above catches a drifted default
    assert _config(_parse("train", *out, "--lr", "0.5")).lr == 0.5
    drifted = _parse("train", *out)
    drifted.lr = FusionConfig.lr * 2
    assert _config(drifted) != FusionConfig(use_kge=False)


def test_names_and_defaults_match_the_python_api() -> None:
    """The same thing has the same name and default in Python, on the command line and over
    HTTP: ``k``, ``paths``, ``exclude_seen``, ``max_paths``, ``same_category``."""
    from kg.query import Recommender

    def defaults(method: Any) -> dict[str, Any]:
        return {
            name: p.default
            for name, p in inspect.signature(method).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    recommend, related = defaults(Recommender.recommend), defaults(Recommender.related)
    explain = defaults(Recommender.explain)
    args = _parse("recommend", "u1", "--model", "m")
    assert (args.k, args.exclude_seen, args.paths) == (
        recommend["k"], recommend["exclude_seen"], recommend["paths"],
    )  # fmt: skip
    assert not _parse("recommend", "u1", "--model", "m", "--no-exclude-seen").exclude_seen
    args = _parse("related", "p1", "--model", "m")
    assert (args.k, args.same_category, args.paths) == (
        related["k"], related["same_category"], related["paths"],
    )  # fmt: skip
    assert _parse("explain", "u1", "p1", "--model", "m").max_paths == explain["max_paths"]
