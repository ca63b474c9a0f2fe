"""Versions of kgrec and the libraries it builds on, recorded in every artifact.

It lives in the lowest package so that ``gnn`` and ``kg`` both record versions without
``gnn`` importing ``kg`` (imports run one way: ``ingest`` <- ``gnn`` <- ``kg``). kgrec's own
version is that of the installed distribution, which ``pyproject.toml`` reads from
``kg.__version__``.
"""

from __future__ import annotations

import platform
from importlib import metadata

__all__ = ["library_versions"]

_PACKAGES = ("torch", "torch_geometric", "pykeen", "transformers", "neo4j", "numpy")


def library_versions() -> dict[str, str]:
    """``{package: version}`` of kgrec, Python and the installed core libraries."""
    out = {"python": platform.python_version()}
    for name in ("kgrec", *_PACKAGES):
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out
