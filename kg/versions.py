"""Versions of kgrec and the libraries it builds on, recorded in every artifact."""

from __future__ import annotations

import platform
from importlib import metadata

__all__ = ["library_versions"]

_PACKAGES = ("torch", "torch_geometric", "pykeen", "transformers", "neo4j", "numpy")


def library_versions() -> dict[str, str]:
    """``{package: version}`` of kgrec, Python and the installed core libraries."""
    import kg

    out = {"kgrec": kg.__version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out
