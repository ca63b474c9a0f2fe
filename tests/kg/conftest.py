"""Fixtures of the query-layer tests: the tiny fusion run (trained once per session), its
tables and a recommender over them."""

from __future__ import annotations

import pytest

from ingest.tables import GraphTables
from kg.query import Recommender
from tests.kg.query_helpers import TinyRun, load_tables, tiny_run


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """The tiny shop's fusion run (see :func:`tests.kg.query_helpers.tiny_run`)."""
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def tables(run: TinyRun) -> GraphTables:
    """The run's tables."""
    return load_tables(run)


@pytest.fixture(scope="module")
def rec(run: TinyRun, tables: GraphTables) -> Recommender:
    """A recommender over the run (modules may override it)."""
    return Recommender.load(run.run, tables)
