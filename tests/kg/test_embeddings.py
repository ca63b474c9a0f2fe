"""KG embeddings: triples, training on the synthetic shop, artifacts, resume, write-back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.neo4j_writer import write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop_with_truth
from ingest.tables import GraphTables
from kg.embeddings.artifact import KGEmbeddings
from kg.embeddings.pipeline import embed_graph
from kg.embeddings.train import CheckpointMismatchError, EmbedConfig, train_kge
from kg.embeddings.triples import CO_INTERACTION, build_triples
from kg.embeddings.writeback import write_embeddings


@pytest.fixture(scope="module")
def shop() -> tuple[GraphTables, object]:
    return generate_shop_with_truth(SyntheticConfig.preset("tiny"), show_progress=False)


@pytest.fixture(scope="module")
def transe(shop, tmp_path_factory: pytest.TempPathFactory) -> tuple[KGEmbeddings, Path]:
    tables, _ = shop
    out = tmp_path_factory.mktemp("kge") / "transe"
    config = EmbedConfig(
        model="transe",
        dim=32,
        epochs=200,
        batch_size=128,
        lr=0.02,
        eval_every=50,
        patience=0,
        seed=1,
    )
    return embed_graph(tables, config, out, show_progress=False), out


def test_triples_are_typed_and_deterministic(shop) -> None:
    tables, _ = shop
    a = build_triples(tables)
    b = build_triples(tables)
    assert a.entity_to_id == b.entity_to_id and a.relation_to_id == b.relation_to_id
    assert set(a.relation_to_id) == {"IN_CATEGORY", "MADE_BY", "SUBCATEGORY_OF"}
    n = tables.in_category.num_rows + tables.made_by.num_rows + tables.subcategory_of.num_rows
    assert len(a.triples) == n
    assert all(t[0].startswith("Product:") for t in a.triples if t[1] == "IN_CATEGORY")
    with pytest.raises(ValueError, match="unknown relation types"):
        build_triples(tables, ["BOUGHT_WITH"])


def test_co_interaction_leaves_out_held_out_items() -> None:
    tables = GraphTables.from_pydict(
        {
            "users": {"id": ["u"]},
            "products": {"id": ["a", "b", "c", "d"]},
            "interactions": {
                "user_id": ["u"] * 4,
                "product_id": ["a", "b", "c", "d"],
                "order": [0, 1, 2, 3],
            },
        }
    )
    triples = build_triples(tables, [CO_INTERACTION], co_interaction_holdout=2).triples
    # c and d are the validation and test items: only a -> b may be used.
    assert triples.tolist() == [["Product:a", CO_INTERACTION, "Product:b"]]


def test_planted_categories_are_recovered(shop, transe) -> None:
    _, truth = shop
    emb, _ = transe
    keys, vecs = emb.vectors("Product")
    leaf = np.asarray(truth.product_leaf)[[int(k[1:]) for k in keys]]
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    sim = unit @ unit.T
    same = leaf[:, None] == leaf[None, :]
    off_diag = ~np.eye(len(keys), dtype=bool)
    same_mean = sim[same & off_diag].mean()
    other_mean = sim[~same].mean()
    assert same_mean > other_mean + 0.2, (same_mean, other_mean)
    # Held-out category links are predicted far above chance (10 / entities for a random model).
    metrics = emb.config["metrics"]["test_per_relation"]["IN_CATEGORY"]
    chance = 10 / len(emb.entities)
    assert metrics["n"] >= 20 and metrics["hits_at_10"] > 3 * chance, (metrics, chance)


def test_artifact_round_trip_is_exact(transe) -> None:
    emb, out = transe
    back = KGEmbeddings.load(out)
    assert np.array_equal(back.entity, emb.entity) and back.entity.dtype == np.float32
    assert np.array_equal(back.relation, emb.relation)
    assert back.entities == emb.entities and back.relations == emb.relations
    assert back.config == emb.config
    assert back.config["data"]["fingerprint"] and back.config["versions"]["pykeen"]
    assert not list(out.glob("*.pkl")) and not list(out.glob("*.pt"))


def test_rotate_layout_is_real_re_im(shop, tmp_path: Path) -> None:
    tables, _ = shop
    config = EmbedConfig(model="rotate", dim=8, epochs=2, batch_size=512, eval_every=2, seed=0)
    emb = embed_graph(tables, config, tmp_path / "rot", show_progress=False)
    assert emb.layout == "complex_re_im" and emb.entity.shape[1] == 16
    # RotatE relations are rotations: every complex component has modulus 1.
    rel = emb.relation[:, :8] + 1j * emb.relation[:, 8:]
    assert np.allclose(np.abs(rel), 1.0, atol=1e-4)


def test_resume_after_interruption_matches_uninterrupted(shop, tmp_path: Path) -> None:
    tables, _ = shop
    factory = build_triples(tables).factory()
    training, validation, _ = factory.split([0.8, 0.1, 0.1], random_state=0)
    config = EmbedConfig(
        model="transe", dim=16, epochs=12, batch_size=256, eval_every=4, patience=0
    )
    whole = train_kge(
        training, validation, config, checkpoint_dir=tmp_path / "a", show_progress=False
    )
    cut = train_kge(
        training, validation, config, checkpoint_dir=tmp_path / "b", show_progress=False,
        stop_after_epochs=6,
    )  # fmt: skip
    assert cut.epochs_trained == 6
    resumed = train_kge(
        training, validation, config, checkpoint_dir=tmp_path / "b", show_progress=False
    )
    assert resumed.epochs_trained == 12
    assert [h["epoch"] for h in resumed.history] == list(range(1, 13))
    a = whole.model.entity_representations[0](indices=None).detach()
    b = resumed.model.entity_representations[0](indices=None).detach()
    assert np.allclose(a.numpy(), b.numpy(), atol=1e-6)
    with pytest.raises(CheckpointMismatchError, match="dim 16 then, 8 now"):
        train_kge(
            training, validation, EmbedConfig(dim=8, epochs=12), checkpoint_dir=tmp_path / "b"
        )


@pytest.mark.neo4j
def test_write_back_and_vector_query(neo4j_db, shop, transe) -> None:
    tables, truth = shop
    emb, _ = transe
    write_graph(neo4j_db, tables, show_progress=False)
    written = write_embeddings(neo4j_db, emb, show_progress=False)
    assert written["Product"] == tables.products.num_rows
    again = write_embeddings(neo4j_db, emb, show_progress=False)  # re-run replaces
    assert again == written
    records, _, _ = neo4j_db.execute_query(
        "SHOW VECTOR INDEXES YIELD name, labelsOrTypes, properties RETURN name ORDER BY name"
    )
    assert [r["name"] for r in records] == ["brand_kge", "category_kge", "product_kge"]
    records, _, _ = neo4j_db.execute_query(
        "MATCH (p:Product {id: $id}) CALL db.index.vector.queryNodes('product_kge', 11, p.kge) "
        "YIELD node, score WHERE node <> p RETURN node.id AS id, score",
        id="p0",
    )
    assert len(records) == 10
    scores = [r["score"] for r in records]
    assert scores == sorted(scores, reverse=True)
    # Over 30 products, the index's nearest neighbours share the leaf category far above chance.
    records, _, _ = neo4j_db.execute_query(
        "MATCH (p:Product)-[:IN_CATEGORY]->(c:Category) WHERE p.id IN $ids "
        "CALL db.index.vector.queryNodes('product_kge', 11, p.kge) YIELD node, score "
        "WITH p, c, node WHERE node <> p "
        "MATCH (node)-[:IN_CATEGORY]->(nc:Category) RETURN avg(CASE WHEN nc = c THEN 1.0 ELSE 0.0 END) AS rate",
        ids=[f"p{i}" for i in range(30)],
    )
    leaf = np.asarray(truth.product_leaf)
    chance = float(np.mean([(leaf == leaf[i]).sum() - 1 for i in range(30)]) / (len(leaf) - 1))
    assert records[0]["rate"] > 5 * chance, (records[0]["rate"], chance)
    records, _, _ = neo4j_db.execute_query(
        "MATCH (p:Product) WHERE p.kge IS NULL RETURN count(p) AS n"
    )
    assert records[0]["n"] == 0
