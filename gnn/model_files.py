"""Reading the ``config.json`` of a saved model folder, shared by every saved scorer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["read_model_config"]


def read_model_config(
    folder: str | Path, *, model: str, format_version: int, reader: str
) -> dict[str, Any]:
    """The parsed ``folder/config.json``, checked to be ``model`` in ``format_version``.

    Args:
        folder: the model folder.
        model: the expected ``"model"`` entry.
        format_version: the expected ``"format_version"`` entry.
        reader: the class name that reads it (for the error message).

    Raises:
        ValueError: the folder holds another model or format version.
    """
    path = Path(folder) / "config.json"
    meta = json.loads(path.read_text())
    if meta.get("model") != model or meta.get("format_version") != format_version:
        raise ValueError(
            f"{path}: model {meta.get('model')!r} format {meta.get('format_version')!r}; "
            f"{reader} reads model {model!r} format {format_version}"
        )
    return meta
