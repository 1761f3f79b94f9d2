"""The service brokers its DuckDB store: ``open_store`` returns a RemoteStore for it.

One real ``tailcast serve`` subprocess (port from the OS, clean environment, a token)
serves the module; every RemoteStore call goes over real HTTP to ``/v1/store``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pytest

from core import Settings, StoreError
from feature_store import (
    BrokerInfo,
    DuckDBStore,
    RemoteStore,
    advertise,
    broker_path,
    open_store,
    read_broker,
)
from feature_store.importers import get_importer

if TYPE_CHECKING:  # mypy maps tests/serving/*.py to top-level modules (no __init__.py)
    from _broker_fixtures import serving
else:
    from tests.serving._broker_fixtures import serving

TOKEN = "broker-token"
HEADER = "request_id,served_model,device,submitted_at,prompt,latency_s,output_tokens\n"
ROWS = [
    "{m}1,{m},h100,2024-01-01T00:00:00Z,{m} first prompt,1.5,10\n",
    "{m}2,{m},h100,2024-01-01T00:00:05Z,,2.5,20\n",
    "{m}x,{m},h100,2024-01-01T00:00:06Z,x,-1,10\n",  # line 4: rejected (negative latency)
    "{m}3,{m},h100,2024-01-01T00:00:10Z,{m} second prompt,0.5,3\n",
    "{m}4,{m},a100,2024-01-01T00:01:00Z,{m} first prompt,3.0,30\n",
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, BrokerInfo]]:
    """``tailcast serve`` on a fresh home: (home, its broker entry)."""
    home = tmp_path_factory.mktemp("broker") / "home"
    with serving(home, "--no-llmd-retrain", "--no-drift-retrain", token=TOKEN) as info:
        yield home, info


@pytest.fixture
def remote(service: tuple[Path, BrokerInfo]) -> RemoteStore:
    home, _ = service
    store = open_store(Settings(home=home, api_token=TOKEN))
    assert isinstance(store, RemoteStore)
    return store


def calls_file(tmp_path: Path, served_model: str) -> Path:
    """Five calls of ``served_model`` (one rejected); the module's tests share a store."""
    src = tmp_path / f"{served_model}.csv"
    src.write_text(HEADER + "".join(row.format(m=served_model) for row in ROWS))
    return src


@pytest.mark.slow
def test_the_broker_file_names_the_live_service(service: tuple[Path, BrokerInfo]) -> None:
    home, info = service
    store = home / "store.duckdb"
    assert json.loads(broker_path(store).read_text())["url"] == info.url
    assert info.store == str(store.resolve())
    assert info.url.startswith("http://127.0.0.1:")


@pytest.mark.slow
def test_ingest_through_the_broker_is_one_idempotent_ingest(
    remote: RemoteStore, tmp_path: Path
) -> None:
    src = calls_file(tmp_path, "ing")
    before = remote.stats()
    seen: list[int] = []
    importer = get_importer("csv")
    batches = list(importer.read(src, batch_rows=2))
    first = remote.ingest_batches(iter(batches), source=str(src), progress=seen.append)
    assert seen == [b.num_rows for b in batches]  # per batch
    assert len(seen) == 3
    assert (first.accepted, first.duplicates) == (4, 0)
    assert [(r.line, r.field) for r in first.rejected] == [(4, "latency_s")]
    again = remote.ingest_batches(importer.read(src, batch_rows=2), source=str(src))
    assert (again.accepted, again.duplicates, len(again.rejected)) == (0, 4, 1)
    rows = remote.ingest_rows(
        [{"request_id": "r1", "served_model": "ing", "device": "h100",
          "submitted_at": datetime(2024, 1, 1, 0, 2, tzinfo=UTC), "latency_s": 1.0},
         {"request_id": "r2", "bogus": 1}]
    )  # fmt: skip
    assert (rows.accepted, [r.index for r in rows.rejected]) == (1, [1])
    stats = remote.stats()
    assert (stats.records, stats.prompts) == (before.records + 5, before.prompts + 2)
    assert stats.ingests == before.ingests + 3
    groups = {(g.served_model, g.device): g.records for g in stats.groups}
    assert (groups[("ing", "h100")], groups[("ing", "a100")]) == (4, 1)


@pytest.mark.slow
def test_a_failing_reader_aborts_the_upload_and_stores_nothing(remote: RemoteStore) -> None:
    before = remote.stats().records

    def broken() -> Iterator[pa.Table]:
        yield pa.table({"_line": [1], "request_id": ["z1"], "served_model": ["m"]})
        raise OSError("truncated file")

    with pytest.raises(OSError, match="truncated file"):
        remote.ingest_batches(broken(), source="broken")
    assert remote.stats().records == before


@pytest.mark.slow
def test_training_frame_equals_the_direct_one(remote: RemoteStore, tmp_path: Path) -> None:
    src = calls_file(tmp_path, "frm")
    remote.ingest_batches(get_importer("csv").read(src), source=str(src))
    with DuckDBStore(tmp_path / "direct.duckdb") as direct:
        direct.ingest_batches(get_importer("csv").read(src), source=str(src))
        for kwargs in (
            {"served_model": "frm"},
            {"served_model": "frm", "end": datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)},
            {"served_model": "frm", "columns": ["request_id", "ep_completions"], "require": ()},
            {"served_model": "nobody"},
        ):
            mine, theirs = remote.training_frame(**kwargs), direct.training_frame(**kwargs)
            assert mine.equals(theirs), kwargs
        at = datetime(2024, 1, 1, 0, 5, tzinfo=UTC)
        assert remote.endpoint_stats("frm", "h100", at) == direct.endpoint_stats("frm", "h100", at)


@pytest.mark.slow
def test_previous_calls_equal_the_direct_ones(remote: RemoteStore, tmp_path: Path) -> None:
    rows = [
        {
            "request_id": f"prev{s}",
            "served_model": "prev",
            "device": "h100",
            "submitted_at": f"2024-01-01T00:0{s}:00Z",
            "workflow_id": "wf",
            "step": s,
            "latency_s": 10.0 * (s + 1),
            "output_tokens": s + 1,
        }
        for s in range(4)
    ]
    remote.ingest_rows(rows)
    ids = [f"prev{s}" for s in range(4)] + ["nobody"]
    with DuckDBStore(tmp_path / "direct.duckdb") as direct:
        direct.ingest_rows(rows)
        assert remote.previous_calls(ids) == direct.previous_calls(ids)
    assert sorted(remote.previous_calls(ids)) == ["prev1", "prev2", "prev3"]
    assert remote.previous_calls([]) == {}


@pytest.mark.slow
def test_embeddings_round_trip(remote: RemoteStore, tmp_path: Path) -> None:
    src = calls_file(tmp_path, "emb")
    remote.ingest_batches(get_importer("csv").read(src), source=str(src))
    missing = {k: v for k, v in remote.prompts_missing_embeddings("enc-1") if "emb" in v}
    assert sorted(missing.values()) == ["emb first prompt", "emb second prompt"]
    keys = sorted(missing)
    vectors = (np.arange(2 * 5).reshape(2, 5) / 7).astype(np.float32)
    assert remote.put_embeddings("enc-1", keys, vectors) == 2
    assert remote.put_embeddings("enc-1", keys, vectors) == 0
    found, got = remote.get_embeddings("enc-1", [keys[1], "nope", keys[0]])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(got, np.stack([vectors[1], np.zeros(5), vectors[0]]))
    none_found, empty = remote.get_embeddings("enc-2", keys)
    assert not none_found.any()
    assert empty.shape == (2, 0)
    assert not set(missing) & set(dict(remote.prompts_missing_embeddings("enc-1")))


@pytest.mark.slow
def test_named_locks_are_held_by_the_service_for_the_client(remote: RemoteStore) -> None:
    lock = remote.try_lock("retrain:m")
    assert lock is not None
    assert lock.held()
    assert remote.try_lock("retrain:m") is None
    lock.release()
    assert not lock.held()
    again = remote.try_lock("retrain:m")
    assert again is not None
    again.release()


@pytest.mark.slow
def test_a_bad_token_gets_401(service: tuple[Path, BrokerInfo]) -> None:
    home, info = service
    with pytest.raises(StoreError, match="answered 401"):
        RemoteStore(info.url, token="wrong").stats()
    with pytest.raises(StoreError, match="answered 401"):
        open_store(Settings(home=home, api_token="wrong"))
    with pytest.raises(StoreError, match="answered 401"):
        RemoteStore(info.url).training_frame()


def test_an_unreachable_service_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot reach the tailcast service"):
        RemoteStore("http://127.0.0.1:9", timeout_s=2).stats()


def test_a_stale_broker_file_is_ignored(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    advertise(store, "http://127.0.0.1:1", pid=int(dead.stdout))
    assert read_broker(store) is None
    assert read_broker(store, live_only=False) is not None
    with open_store(store) as db:  # nobody holds the file: opened directly
        assert isinstance(db, DuckDBStore)


def test_a_lock_without_a_broker_names_its_holder(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    DuckDBStore(store).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(store)!r}); "
         "print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=rf"locked by process {holder.pid} and no running"):
            open_store(store)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the lock goes with the process
        try:
            open_store(store).close()
            break
        except StoreError:
            time.sleep(0.2)
    else:
        pytest.fail("the store stayed locked after its holder died")


@pytest.mark.slow
def test_drift_reads_and_the_inbox_go_through_the_service(remote: RemoteStore) -> None:
    assert remote.drift_events(newest=True, limit=5) == []
    assert remote.drift_reports() == []
    assert remote.alerts(status="pending") == []
    assert remote.deliveries() == []
    assert remote.drift_inbox_size() >= 0
    taken = remote.drift_inbox_take(limit=3)  # the service's judge may drain it meanwhile
    assert taken.num_rows <= 3
    assert "request_id" in taken.column_names
