from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from feature_store import DuckDBStore, RecordStore


@pytest.fixture(params=["duckdb-file", "duckdb-memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordStore]:
    """Every RecordStore backend configuration; the contract suite runs against each."""
    path = tmp_path / "store.duckdb" if request.param == "duckdb-file" else ":memory:"
    with DuckDBStore(path) as db:
        yield db
