"""Test-wide settings and fixtures.

Hypothesis runs derandomized in CI (reproducible failures). The ``store`` fixture
yields every RecordStore backend configuration, so the contract suite in
``tests/feature_store`` runs against each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from feature_store import DuckDBStore, RecordStore

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(params=["duckdb-file", "duckdb-memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordStore]:
    """Every RecordStore backend configuration; the contract suite runs against each."""
    path = tmp_path / "store.duckdb" if request.param == "duckdb-file" else ":memory:"
    with DuckDBStore(path) as db:
        yield db
