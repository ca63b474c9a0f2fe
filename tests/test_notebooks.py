"""The walkthrough notebooks execute top to bottom against the session's real Neo4j.

The engineers' notebook runs first (tiny synthetic shop: ingest, embed, train, recommend,
write-back); the analysts' notebook then explores what it wrote. Outputs are checked for the
things each notebook promises, not just for the absence of errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kg.neo4j.settings import Neo4jSettings

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str, cwd: Path) -> object:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def _text(nb: object) -> str:
    out = []
    for cell in nb.cells:  # type: ignore[attr-defined]
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            out.append(json.dumps(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def _has_image(nb: object) -> bool:
    return any(
        "image/png" in o.get("data", {})
        for cell in nb.cells  # type: ignore[attr-defined]
        for o in cell.get("outputs", [])
    )


@pytest.mark.neo4j
@pytest.mark.slow
def test_notebooks_execute(
    neo4j_db: object, neo4j_server: Neo4jSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEO4J_URI", neo4j_server.uri)
    monkeypatch.setenv("NEO4J_USERNAME", neo4j_server.user or "")
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server.password or "")
    monkeypatch.setenv("KGREC_PRESET", "tiny")
    monkeypatch.setenv("KGREC_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    engineer = _run("engineer_walkthrough", tmp_path)
    text = _text(engineer)
    assert "ndcg@10" in text and "because" in text
    # rec.search's reasons: its three largest terms in words (which three depends on the model)
    assert any(r in text for r in ("matches '", "named by the query", "similar text (cosine"))
    assert _has_image(engineer)
    assert (tmp_path / "work" / "fusion" / "model.safetensors").exists()
    related, _, _ = neo4j_db.execute_query("MATCH ()-[r:RELATED]->() RETURN count(r) AS n")  # type: ignore[attr-defined]
    assert related[0]["n"] > 0

    analyst = _run("analyst_walkthrough", tmp_path)
    text = _text(analyst)
    assert "related_products" in text and "product_fused" in text and "product_kge" in text
    assert "product_id, title, users" in text  # who_bought_also through kgrec cypher
    assert "id, title, score" in text  # the full-text search through kgrec cypher
    assert "'via'" in text  # the product_search recipe
    assert _has_image(analyst)
