"""Fixtures of the query-layer tests: the tiny fusion run, trained once per session."""

from __future__ import annotations

import pytest

from tests.kg.query_helpers import TinyRun, tiny_run


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """The tiny shop's fusion run (see :func:`tests.kg.query_helpers.tiny_run`)."""
    return tiny_run(tmp_path_factory)
