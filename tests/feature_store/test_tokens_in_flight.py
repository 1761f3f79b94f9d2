"""Tokens in flight on records: stored by both backends, gained in place by older stores.

``prefill_tokens_in_flight`` and ``decode_tokens_in_flight`` arrived after the first
schema. A DuckDB file and a PostgreSQL database from before them gain the columns when
a store opens them; their old rows read as not reported (null), new rows keep theirs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from feature_store import DuckDBStore, PostgresStore, RecordStore
from feature_store import _pg_schema as pg_schema
from feature_store._schema import ADDED_RECORD_FIELDS, DDL, DRIFT_DDL

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
TIF = [s.name for s in ADDED_RECORD_FIELDS]
DROP = [f"ALTER TABLE records DROP COLUMN {name}" for name in TIF]
OLD_INSERT = (
    "INSERT INTO records (request_id, served_model, device, submitted_at, latency_s, "
    "ingested_at) VALUES ('old', 'chat', 'h100', '2026-12-06 08:00:00+00', 1.0, "
    "'2026-12-06 08:00:00+00')"
)


def _row(request_id: str, **fields: Any) -> dict[str, Any]:
    base = {
        "request_id": request_id,
        "served_model": "chat",
        "device": "h100",
        "submitted_at": T0,
        "input_tokens": 100,
        "latency_s": 1.5,
    }
    return {**base, **fields}


def _tif_by_id(store: RecordStore) -> dict[str, tuple[Any, ...]]:
    frame = store.training_frame("chat", columns=["request_id", *TIF])
    rows = frame.to_pylist()
    return {r["request_id"]: tuple(r[name] for name in TIF) for r in rows}


def _check(store: RecordStore) -> None:
    report = store.ingest_rows(
        [
            _row("new", prefill_tokens_in_flight=5000, decode_tokens_in_flight=300),
            _row("negative", prefill_tokens_in_flight=-1),  # rejected, the rest kept
        ]
    )
    assert report.accepted == 1
    assert [(r.field, r.index) for r in report.rejected] == [("prefill_tokens_in_flight", 1)]
    assert _tif_by_id(store) == {"old": (None, None), "new": (5000, 300)}


def test_the_added_fields_are_the_tokens_in_flight() -> None:
    assert TIF == ["prefill_tokens_in_flight", "decode_tokens_in_flight"]
    assert all(s.kind == "int" and s.ge == 0 and not s.required for s in ADDED_RECORD_FIELDS)


def test_a_duckdb_file_without_the_columns_gains_them(tmp_path: Path) -> None:
    path = tmp_path / "v3.duckdb"
    con = duckdb.connect(str(path))
    for statement in (*DDL, *DRIFT_DDL, *DROP, OLD_INSERT):
        con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    con.close()
    with DuckDBStore(path) as store:
        _check(store)
    with DuckDBStore(path) as store:  # reopening is idempotent
        assert _tif_by_id(store)["new"] == (5000, 300)


@pytest.mark.postgres
def test_a_postgres_database_without_the_columns_gains_them(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:  # back to version 5: records without the columns
        for statement in (*DROP, OLD_INSERT):
            conn.execute(statement)
        conn.execute("DELETE FROM schema_migrations WHERE version = 6")
    with PostgresStore(pg_url) as store:
        _check(store)
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [int(v) for (v,) in rows] == [m.version for m in pg_schema.MIGRATIONS]
