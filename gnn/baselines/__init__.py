"""Baseline scorers for the evaluation harness, each a :class:`~gnn.evaluate.Scorer`.

=====================  ==========================================================
``"random"``           :class:`RandomScorer`: uniform random scores (the floor)
``"most_popular"``     :class:`MostPopular`: train popularity
``"item_cooccurrence"``  :class:`ItemCooccurrence`: co-occurrence with the last items
``"bpr_mf"``           :class:`BPRMF`: matrix factorisation, BPR loss
``"lightgcn"``         :class:`LightGCN`: PyG LightGCN, BPR loss
``"content_recency"``  :class:`ContentRecency`: cosine to the last items (text or KGE
                       vectors; the text-only and KGE-only scorers)
=====================  ==========================================================

Classes load on first use, so importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnn.baselines.bpr_mf import BPRMF, BPRConfig
    from gnn.baselines.content import ContentRecency
    from gnn.baselines.cooccurrence import CooccurrenceConfig, ItemCooccurrence
    from gnn.baselines.lightgcn import LightGCN, LightGCNConfig
    from gnn.baselines.popular import MostPopular, RandomScorer

__all__ = [
    "BASELINES",
    "BPRMF",
    "BPRConfig",
    "ContentRecency",
    "CooccurrenceConfig",
    "ItemCooccurrence",
    "LightGCN",
    "LightGCNConfig",
    "MostPopular",
    "RandomScorer",
    "make_baseline",
]

_WHERE = {
    "BPRMF": "bpr_mf",
    "BPRConfig": "bpr_mf",
    "ContentRecency": "content",
    "CooccurrenceConfig": "cooccurrence",
    "ItemCooccurrence": "cooccurrence",
    "LightGCN": "lightgcn",
    "LightGCNConfig": "lightgcn",
    "MostPopular": "popular",
    "RandomScorer": "popular",
}

#: Registry: baseline name -> class name.
BASELINES: dict[str, str] = {
    "random": "RandomScorer",
    "most_popular": "MostPopular",
    "item_cooccurrence": "ItemCooccurrence",
    "bpr_mf": "BPRMF",
    "lightgcn": "LightGCN",
    "content_recency": "ContentRecency",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        module = importlib.import_module(f"gnn.baselines.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_baseline(name: str, **kwargs: Any) -> Any:
    """The baseline called ``name`` (a key of :data:`BASELINES`), built with ``kwargs``."""
    if name not in BASELINES:
        raise KeyError(f"no baseline {name!r}; baselines are {sorted(BASELINES)}")
    return __getattr__(BASELINES[name])(**kwargs)
