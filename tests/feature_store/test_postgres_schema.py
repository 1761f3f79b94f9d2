"""PostgreSQL schema migrations: applied once, even by replicas starting together."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import psycopg
import pytest

from core import StoreError
from feature_store import PostgresStore
from feature_store import _pg_schema as schema

pytestmark = pytest.mark.postgres

ALL = [m.version for m in schema.MIGRATIONS]


def _recorded(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [int(v) for (v,) in rows]


def test_versions_are_numbered_in_order() -> None:
    versions = sorted(set(ALL))
    assert versions == ALL
    assert versions[-1] == schema.SCHEMA_VERSION


def test_threads_starting_together_migrate_once(pg_url: str) -> None:
    barrier = threading.Barrier(6)
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with psycopg.connect(pg_url) as conn:
                barrier.wait(timeout=30)
                applied.append(schema.migrate(conn))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(applied) == [[]] * 5 + [ALL]
    assert _recorded(pg_url) == ALL


def test_processes_opening_a_fresh_database_together_migrate_once(pg_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILCAST_")}
    code = (
        "import sys; from feature_store import PostgresStore; "
        "s = PostgresStore(sys.argv[1], min_size=1, max_size=1); "
        "print(s.stats().records); s.close()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, pg_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ["0", "0", "0"]
    assert _recorded(pg_url) == ALL
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert row == (str(schema.SCHEMA_VERSION),)


def test_a_new_migration_is_applied_once_to_an_existing_database(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    PostgresStore(pg_url).close()
    extra = schema.Migration(ALL[-1] + 1, "a test column", ("ALTER TABLE meta ADD note text",))
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, extra))
    with psycopg.connect(pg_url) as conn:
        assert schema.migrate(conn) == [extra.version]
        assert schema.migrate(conn) == []
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert row == (str(extra.version),)
    assert _recorded(pg_url) == [*ALL, extra.version]


def test_a_failing_migration_applies_nothing(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = schema.Migration(ALL[-1] + 1, "broken", ("CREATE TABLE t (x int)", "NOT SQL"))
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, bad))
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.SyntaxError):
        schema.migrate(conn)
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    assert row == (None,)  # every migration of the call rolled back together


def test_the_path_hides_the_password(pg_url: str) -> None:
    with_password = pg_url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    with PostgresStore(with_password) as store:
        assert "s3cret" not in store.stats().path
        assert store.stats().path == pg_url


def test_an_unreachable_database_fails_at_once_with_the_reason(pg_url: str) -> None:
    missing = pg_url.rsplit("/", 1)[0] + "/tailcast_no_such_database"
    with pytest.raises(StoreError, match="does not exist"):
        PostgresStore(missing, timeout_s=5)
