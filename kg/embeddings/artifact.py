"""KG-embedding artifacts: vectors as safetensors, ids, config and metrics as JSON. No pickle.

Folder layout::

    embeddings.safetensors   "entity": float32 (n_entities, width), "relation": (n_relations, width)
    entities.json            entity labels ("Product:p1", ...) in row order
    relations.json           relation names in row order
    config.json              model, dim, layout, seed, data fingerprint, versions, metrics

Layout: TransE vectors are real, ``width = dim``. RotatE vectors are complex; they are stored
as ``width = 2 * dim`` reals, the real parts of all ``dim`` components first, then the
imaginary parts: ``v = x[:, :dim] + 1j * x[:, dim:]`` (``layout: "complex_re_im"``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.atomic import write_atomic

if TYPE_CHECKING:
    from pykeen.models import Model

__all__ = ["KGEmbeddings", "representation_matrix"]


def representation_matrix(model: Model, which: str = "entity") -> np.ndarray:
    """The model's entity (or relation) vectors in kgrec's real layout, float32."""
    import torch

    reps = model.entity_representations if which == "entity" else model.relation_representations
    with torch.inference_mode():
        x = reps[0](indices=None).detach().cpu()
    if torch.is_complex(x):
        x = torch.cat([x.real, x.imag], dim=-1)
    return x.to(torch.float32).numpy()


@dataclass
class KGEmbeddings:
    """Trained KG embeddings with their id maps and provenance.

    Attributes:
        entity: (n_entities, width) float32 vectors.
        relation: (n_relations, width) float32 vectors.
        entities: entity labels ``"<Label>:<key>"`` in row order.
        relations: relation names in row order.
        config: model, dim, layout, seed, fingerprint, versions, metrics.
    """

    entity: np.ndarray
    relation: np.ndarray
    entities: list[str]
    relations: list[str]
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Normalise through JSON so the config in memory equals the one saved (tuples -> lists).
        self.config = json.loads(json.dumps(self.config))
        self._row = {label: i for i, label in enumerate(self.entities)}

    @property
    def layout(self) -> str:
        """``"real"`` or ``"complex_re_im"`` (see the module docstring)."""
        return str(self.config.get("layout", "real"))

    def vectors(self, label: str) -> tuple[list[str], np.ndarray]:
        """Keys and vectors of every entity with Neo4j label ``label``."""
        prefix = label + ":"
        rows = [i for i, e in enumerate(self.entities) if e.startswith(prefix)]
        keys = [self.entities[i][len(prefix) :] for i in rows]
        return keys, self.entity[rows]

    def vector(self, label: str, key: str) -> np.ndarray:
        """The vector of one node; ``KeyError`` when it has none."""
        return self.entity[self._row[f"{label}:{key}"]]

    def save(self, folder: str | Path) -> Path:
        """Write the artifact folder (files replaced atomically)."""
        from safetensors.numpy import save

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, Any] = {
            "embeddings.safetensors": {
                "entity": np.ascontiguousarray(self.entity, dtype=np.float32),
                "relation": np.ascontiguousarray(self.relation, dtype=np.float32),
            },
            "entities.json": self.entities,
            "relations.json": self.relations,
            "config.json": self.config,
        }
        for name, payload in files.items():
            data = (
                save(payload)
                if name.endswith(".safetensors")
                else json.dumps(payload, indent=2, sort_keys=True)
            )
            write_atomic(folder / name, data)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> KGEmbeddings:
        """Read an artifact folder written by :meth:`save`."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / "embeddings.safetensors").exists():
            raise FileNotFoundError(
                f"{folder} has no embeddings.safetensors: not a kgrec KGE artifact"
            )
        tensors = load_file(str(folder / "embeddings.safetensors"))
        return cls(
            entity=tensors["entity"],
            relation=tensors["relation"],
            entities=json.loads((folder / "entities.json").read_text()),
            relations=json.loads((folder / "relations.json").read_text()),
            config=json.loads((folder / "config.json").read_text()),
        )
