"""DuckDB-specific behaviour: durability, concurrency, reopening, and agreement with the model."""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core import CompletionRecord, StoreError
from feature_store import DuckDBStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "request_id": f"r{i}",
            "served_model": "m",
            "device": "d",
            "submitted_at": (T0 + timedelta(seconds=i)).isoformat(),
            "latency_s": 1.5,
            "prompt": f"prompt {i % 7}",
        }
        for i in range(start, start + n)
    ]


def run_together(writer: Callable[[], None], readers: list[Callable[[], None]]) -> None:
    """Run ``writer`` and ``readers`` on threads at once; wait (bounded) for all."""
    threads = [threading.Thread(target=f) for f in [writer, *readers]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)


def test_accepted_records_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with DuckDBStore(path) as db:
        assert db.ingest_rows(rows(3)).accepted == 3
    with DuckDBStore(path) as db:
        assert db.stats().records == 3
        assert db.ingest_rows(rows(3)).accepted == 0


def test_second_process_style_open_is_read_only(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with DuckDBStore(path) as db:
        db.ingest_rows(rows(2))
    with DuckDBStore(path, read_only=True) as reader:
        assert reader.stats().records == 2


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db.duckdb"
    bad.write_text("this is not a database")
    with pytest.raises(StoreError, match="cannot open feature store"):
        DuckDBStore(bad)


def test_readers_run_while_one_writer_ingests(tmp_path: Path) -> None:
    db = DuckDBStore(tmp_path / "s.duckdb")
    counts: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        for k in range(20):
            db.ingest_rows(rows(50, start=50 * k))

    def reader() -> None:
        try:
            for _ in range(20):
                counts.append(db.training_frame(columns=["request_id"]).num_rows)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_together(writer, [reader] * 3)
    assert errors == []
    # Readers only ever see whole committed batches.
    assert all(c % 50 == 0 for c in counts)
    assert db.stats().records == 1000
    db.close()


# --- the file is closed and reopened after many writes, losing nothing ---------
def test_reopens_keep_every_write(tmp_path: Path) -> None:
    db = DuckDBStore(tmp_path / "s.duckdb", reopen_after=3)
    for k in range(10):
        assert db.ingest_rows(rows(2, start=2 * k)).accepted == 2
    db.save_drift_state({"g": "{}"}, ack=["r0", "r1"])
    assert db._db.reopens >= 3
    assert db.stats().records == 20
    assert db.drift_inbox_size() == 18
    assert db.load_drift_state() == {"g": "{}"}
    assert db.ingest_rows(rows(20)).duplicates == 20  # keys still guarded after reopens
    db.close()


def test_each_reopen_returns_the_freed_heap_to_the_os(tmp_path: Path, monkeypatch: Any) -> None:
    from core.process import release_free_memory as real
    from feature_store import _connection

    trims: list[bool] = []

    def counted() -> bool:
        trims.append(real())
        return trims[-1]

    monkeypatch.setattr(_connection, "release_free_memory", counted)
    db = DuckDBStore(tmp_path / "s.duckdb", reopen_after=2)
    for k in range(6):
        db.ingest_rows(rows(1, start=k))
    assert len(trims) == db._db.reopens >= 2
    db.close()
    if platform.libc_ver()[0] == "glibc":
        assert real() is True  # malloc_trim found and called


def test_readers_and_writers_across_reopens(tmp_path: Path) -> None:
    """Concurrent readers never fail nor see a partial batch while the file is reopened."""
    db = DuckDBStore(tmp_path / "s.duckdb", reopen_after=2)
    counts: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for k in range(30):
                db.ingest_rows(rows(10, start=10 * k))
                db.save_drift_state({f"g{k}": "{}"})
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                counts.append(db.training_frame(columns=["request_id"]).num_rows)
                db.drift_inbox_take(5)
                db.load_drift_state()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_together(writer, [reader] * 3)
    assert errors == []
    assert counts
    assert all(c % 10 == 0 for c in counts)
    assert db._db.reopens >= 10
    assert db.stats().records == 300
    db.close()


def test_an_open_read_puts_the_reopen_off(tmp_path: Path, monkeypatch: Any) -> None:
    from feature_store import _connection

    monkeypatch.setattr(_connection, "REOPEN_WAIT_S", 0.05)
    db = DuckDBStore(tmp_path / "s.duckdb", reopen_after=1)
    before = db._db.reopens
    with db._db.read() as cur:  # a long read holds a cursor
        db.ingest_rows(rows(1))
        db.ingest_rows(rows(1, start=1))
        assert db._db.reopens == before
        assert cur.execute("SELECT count(*) FROM records").fetchone() == (2,)
    db.ingest_rows(rows(1, start=2))
    assert db._db.reopens == before + 1
    assert db.stats().records == 3
    db.close()


def test_in_memory_and_read_only_stores_never_reopen(tmp_path: Path) -> None:
    mem = DuckDBStore(":memory:", reopen_after=1)
    for k in range(3):
        mem.ingest_rows(rows(1, start=k))
    assert mem._db.reopens == 0
    assert mem.stats().records == 3
    mem.close()
    path = tmp_path / "s.duckdb"
    DuckDBStore(path).close()
    with DuckDBStore(path, read_only=True, reopen_after=1) as ro:
        for _ in range(3):
            ro.stats()
        assert ro._db.reopens == 0


def test_use_after_close_is_a_store_error(tmp_path: Path) -> None:
    db = DuckDBStore(tmp_path / "s.duckdb")
    db.close()
    with pytest.raises(StoreError, match="closed"):
        db.stats()


def test_reopen_after_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reopen_after"):
        DuckDBStore(tmp_path / "s.duckdb", reopen_after=0)


# --- the SQL validator and the pydantic model accept exactly the same rows ---------
values = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(-2, 2, allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " ", "abc", "1", "2.5", "-1", "1e400", "nan", "inf", "0.5"]),
)
timestamps = st.one_of(
    st.none(),
    st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01T00:00:00+05:00", "garbage", ""]),
)


@st.composite
def raw_rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": draw(st.sampled_from(["a", "", None])),
        "served_model": "m",
        "device": draw(st.sampled_from(["d", None])),
        "submitted_at": draw(timestamps),
    }
    for name in (
        "input_tokens",
        "cached_tokens",
        "output_tokens",
        "latency_s",
        "ttft_s",
        "num_running",
        "kv_cache_util",
        "step",
    ):
        if draw(st.booleans()):
            row[name] = draw(values)
    return row


def _pydantic_accepts(row: dict[str, Any]) -> bool:
    cleaned = {k: v for k, v in row.items() if not (isinstance(v, str) and not v.strip())}
    try:
        CompletionRecord.model_validate(cleaned)
    except ValidationError:
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_rows(), min_size=1, max_size=8))
def test_sql_validation_agrees_with_the_record_model(batch: list[dict[str, Any]]) -> None:
    """Blank strings mean "absent" in files; otherwise the two paths must agree."""
    for i, r in enumerate(batch):
        r["request_id"] = f"{r['request_id']}{i}" if r["request_id"] else r["request_id"]
    with DuckDBStore(":memory:") as db:
        report = db.ingest_rows(batch)
    rejected = {r.index for r in report.rejected}
    for i, r in enumerate(batch):
        assert (i not in rejected) == _pydantic_accepts(r), (r, report.rejected)
