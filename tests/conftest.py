"""Test-wide settings and fixtures.

Hypothesis runs derandomized in CI (reproducible failures). The ``store`` fixture
yields every RecordStore backend configuration, so the contract suite in
``tests/feature_store`` runs against each.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
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


PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards); FAILS if PostgreSQL is down."""
    import psycopg2  # type: ignore[import-untyped]

    name = f"tailcast_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(**PG, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG['host']}:{PG['port']}: {exc}")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def postgres_database() -> Callable[[], contextlib.AbstractContextManager[str]]:
    """Factory of fresh PostgreSQL databases on 127.0.0.1:5432 (for postgres-marked tests)."""
    return _postgres_database
