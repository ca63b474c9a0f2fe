"""A synthetic shop's configuration from a TOML file (``kgrec ingest synthetic --config``).

The file sets fields of :class:`~ingest.sources.synthetic.SyntheticConfig` by name, on top of
the defaults or of a named preset::

    preset = "tiny"        # optional: start from a preset instead of the defaults
    n_products = 500
    branching = [4, 3, 3]
    seed = 7

Unknown keys, values of the wrong type and settings the configuration refuses are one
:class:`~ingest.errors.SourceError` each, naming the file, the line where the TOML parser
knows it, the key and the value.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from ingest.errors import SourceError
from ingest.sources.synthetic import PRESETS, SyntheticConfig
from ingest.sources.text import read_utf8

__all__ = ["read_synthetic_config"]

_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _kind(name: str) -> str:
    """``int``, ``float``, ``bool`` or ``ints`` (a list of integers) for a config field."""
    annotation = {f.name: str(f.type) for f in fields(SyntheticConfig)}[name]
    return "ints" if annotation.startswith("tuple") else annotation


def _fits(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, list) and all(_fits("int", v) for v in value)


def _line_of(text: str, key: str) -> int | None:
    """The 1-based line that sets ``key`` at the top level, when one does."""
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", re.MULTILINE)
    found = pattern.search(text)
    return None if found is None else text.count("\n", 0, found.start()) + 1


def read_synthetic_config(path: str | Path, *, seed: int | None = None) -> SyntheticConfig:
    """Read a :class:`SyntheticConfig` from a TOML file (module docstring).

    Args:
        path: the TOML file.
        seed: overrides the file's ``seed`` when given.

    Raises:
        SourceError: the file is missing, not UTF-8, not TOML, or holds an unknown key, a value
            of the wrong type or a setting the configuration refuses.
    """
    path = Path(path)
    text = read_utf8(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _AT_LINE.search(str(exc))
        message = _AT_LINE.sub("", str(exc)).strip()
        line = int(found.group(1)) if found else None
        raise SourceError(path, f"malformed TOML: {message}", line=line) from None
    preset = data.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise SourceError(path, f"unknown preset; presets are {sorted(PRESETS)}", value=preset)
    known = {f.name for f in fields(SyntheticConfig)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        line = _line_of(text, key)
        if key not in known:
            message = f"unknown setting {key!r}; settings are {sorted(known)}"
            raise SourceError(path, message, line=line)
        kind = _kind(key)
        if not _fits(kind, value):
            wanted = {"ints": "a list of integers"}.get(kind, f"a TOML {kind}")
            raise SourceError(path, f"{key} must be {wanted}", line=line, value=value)
        values[key] = tuple(value) if kind == "ints" else value
    if seed is not None:
        values["seed"] = seed
    try:
        if preset is not None:
            return SyntheticConfig.preset(preset, **values)
        return SyntheticConfig(**values)
    except (ValueError, OverflowError) as exc:
        raise SourceError(path, str(exc)) from None
