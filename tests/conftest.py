"""Test-wide settings and fixtures.

Hypothesis runs derandomized in CI (reproducible failures). The ``store`` fixture
yields every RecordStore backend configuration (DuckDB file, DuckDB in memory,
PostgreSQL), so the contract suite in ``tests/feature_store`` runs against each.

PostgreSQL is the server on 127.0.0.1:5432 (user ``postgres``, trust auth); each test
gets a database of its own, created for it and dropped afterwards. A test that needs
the server FAILS when it is down (it never skips). Nothing here reads ``TAILCAST_*``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings

from feature_store import DuckDBStore, PostgresStore, RecordStore

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
BACKENDS = [
    pytest.param("duckdb"),
    pytest.param("duckdb-memory"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(f"{PG_SERVER}/test", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_SERVER}: {exc}")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty, uniquely named PostgreSQL database; dropped on exit."""
    name = f"tailcast_fs_{uuid.uuid4().hex[:16]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
def pg_module_url() -> Iterator[str]:
    """Like ``pg_url``, shared by one module's tests (for read-only fixtures)."""
    with fresh_database() as url:
        yield url


Opener = Callable[[], RecordStore]


def _opener(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[RecordStore] = []
    if kind == "postgres":
        url = request.getfixturevalue("pg_url")

        def open_one() -> RecordStore:
            opened.append(PostgresStore(url, max_size=4))
            return opened[-1]
    else:
        path = tmp_path / "store.duckdb" if kind == "duckdb" else ":memory:"

        def open_one() -> RecordStore:
            opened.append(DuckDBStore(path))
            return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture(params=BACKENDS)
def store_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens (and later closes) stores of one backend configuration on one storage."""
    yield from _opener(request.param, request, tmp_path)


@pytest.fixture(params=[p for p in BACKENDS if p.values != ("duckdb-memory",)])
def durable_store_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Like ``store_opener`` for the backends whose storage outlives a store."""
    yield from _opener(request.param, request, tmp_path)


@pytest.fixture
def store(store_opener: Opener) -> RecordStore:
    """Every RecordStore backend; the contract suite runs against each."""
    return store_opener()


@pytest.fixture(scope="session")
def postgres_database() -> Callable[[], contextlib.AbstractContextManager[str]]:
    """Factory of fresh PostgreSQL databases on 127.0.0.1:5432: yields the database NAME."""

    @contextlib.contextmanager
    def database() -> Iterator[str]:
        with fresh_database() as url:
            yield url.rsplit("/", 1)[1]

    return database
