"""``embed_graph``: canonical tables -> typed triples -> split -> train -> evaluate -> artifact."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from ingest.tables import GraphTables
from ingest.versions import library_versions
from kg.embeddings.artifact import KGEmbeddings, representation_matrix
from kg.embeddings.train import (
    EmbedConfig,
    discard_checkpoint,
    evaluate_link_prediction,
    train_kge,
)
from kg.embeddings.triples import DEFAULT_RELATIONS, build_triples

__all__ = ["SPLIT_RATIOS", "embed_graph"]

#: Train / validation / test shares of the triples (PyKEEN's split keeps every entity in train).
SPLIT_RATIOS: tuple[float, float, float] = (0.8, 0.1, 0.1)


def embed_graph(
    tables: GraphTables,
    config: EmbedConfig,
    out_dir: str | Path,
    *,
    relations: Sequence[str] = DEFAULT_RELATIONS,
    restart: bool = False,
    on_resume: Callable[[int], None] | None = None,
    show_progress: bool = True,
) -> KGEmbeddings:
    """Train KG embeddings on a graph and save the artifact in ``out_dir``.

    Checkpoints go to ``out_dir/checkpoint``; running again with the same arguments after an
    interruption resumes from there. A checkpoint of other triples or other settings is never
    resumed: it raises :class:`~kg.embeddings.train.CheckpointMismatchError` unless ``restart``.

    Args:
        tables: the graph (e.g. exported from Neo4j).
        config: model and training settings.
        out_dir: artifact folder (see :mod:`kg.embeddings.artifact`).
        relations: relation types to train on (see :func:`build_triples`).
        restart: discard a checkpoint in ``out_dir/checkpoint`` and train from scratch.
        on_resume: called with the epoch training resumes from, when it does.
        show_progress: progress bars.

    Returns:
        The saved embeddings, with test metrics overall and per relation in ``config["metrics"]``.
    """
    out = Path(out_dir)
    kg_triples = build_triples(tables, relations)
    factory = kg_triples.factory()
    # "cleanup": a random split, then test/validation triples whose entities are missing from
    # training move to training. PyKEEN's default, "coverage", first puts every product's first
    # triple (its IN_CATEGORY) in training and so leaves that relation without test triples.
    training, validation, testing = factory.split(
        list(SPLIT_RATIOS), random_state=config.seed, method="cleanup"
    )
    data = kg_triples.fingerprint()
    if restart:
        discard_checkpoint(out / "checkpoint")
    outcome = train_kge(
        training,
        validation,
        config,
        checkpoint_dir=out / "checkpoint",
        data_fingerprint=data,
        on_resume=on_resume,
        show_progress=show_progress,
    )
    known = [training, validation]
    metrics = evaluate_link_prediction(
        outcome.model, testing, known, batch_size=config.eval_batch_size
    )
    per_relation = {
        name: evaluate_link_prediction(
            outcome.model, testing, known, batch_size=config.eval_batch_size, relation_id=rid
        )
        for name, rid in sorted(kg_triples.relation_to_id.items())
    }
    entities = sorted(kg_triples.entity_to_id, key=kg_triples.entity_to_id.__getitem__)
    rel_names = sorted(kg_triples.relation_to_id, key=kg_triples.relation_to_id.__getitem__)
    entity = representation_matrix(outcome.model, "entity")
    emb = KGEmbeddings(
        entity=entity,
        relation=representation_matrix(outcome.model, "relation"),
        entities=entities,
        relations=rel_names,
        config={
            "model": config.model,
            "dim": config.dim,
            "width": int(entity.shape[1]),
            "layout": "complex_re_im" if config.model == "rotate" else "real",
            "seed": config.seed,
            "train_config": asdict(config),
            "relations_used": list(relations),
            "split": {
                "ratios": list(SPLIT_RATIOS),
                "train": training.num_triples,
                "valid": validation.num_triples,
                "test": testing.num_triples,
            },
            "data": {"fingerprint": tables.fingerprint(), "triples": data, "meta": tables.meta},
            "versions": library_versions(),
            "metrics": {"test": metrics, "test_per_relation": per_relation},
            "training": {
                "epochs_trained": outcome.epochs_trained,
                "best_epoch": outcome.best_epoch,
                "best_valid_mrr": outcome.best_valid_mrr,
                "train_seconds": round(outcome.train_seconds, 3),
                "triples_per_second": round(outcome.triples_per_second, 1),
                "device": outcome.device,
                "history": outcome.history,
            },
        },
    )
    emb.save(out)
    return emb
