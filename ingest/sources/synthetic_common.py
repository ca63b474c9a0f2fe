"""Seeded random streams of the synthetic generator, one per part of the shop.

Internal to the ``ingest.sources.synthetic*`` modules; use :mod:`ingest.sources.synthetic`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ingest.sources.synthetic import SyntheticConfig

#: One independent random stream per part, so e.g. more interactions leave product text alone.
_TREE, _BRANDS, _PRODUCTS, _TEXT, _USERS, _COVERAGE, _CHUNKS = range(7)


def _rng(cfg: SyntheticConfig, stream: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, stream, *more])
