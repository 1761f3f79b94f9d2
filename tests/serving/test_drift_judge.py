"""The drift judge: one holder of ``drift-judge`` drains the store's inbox.

Real DuckDB store files, a real tiny champion; the service test runs real uvicorn on
loopback with a real MLflow registry (SQLite).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pyarrow as pa
import pytest

from core import Settings
from feature_store import DuckDBStore, StoreLock
from feature_store.importers._base import LINE
from registry import MLflowRegistry, ModelVersion
from serving import create_app
from serving._drift import DriftService
from serving._endpoint_cache import EndpointStatsCache
from serving._judge import JudgeLoop
from serving._models import LoadedModel, ModelTable

if TYPE_CHECKING:  # mypy maps tests/<pkg>/*.py to top-level modules (no __init__.py)
    from _fixtures import (
        SERVED,
        completion,
        new_registry,
        register,
        running,
        tiny_predictor,
        wait_until,
    )
else:
    from tests.serving._fixtures import (
        SERVED,
        completion,
        new_registry,
        register,
        running,
        tiny_predictor,
        wait_until,
    )


class GatedStore(DuckDBStore):
    """A DuckDB store whose locks can be refused, as if another replica held them."""

    refuse = False

    def try_lock(self, name: str) -> StoreLock | None:
        return None if self.refuse else super().try_lock(name)


def _service(store: DuckDBStore, home: Path) -> DriftService:
    now = datetime.now(UTC)
    version = ModelVersion(
        name=f"tailcast-{SERVED}", version=1, aliases=("champion",), run_id=None, created_at=now
    )
    table = ModelTable()
    table.swap(LoadedModel(SERVED, tiny_predictor(SERVED), version, now))
    return DriftService(
        store,
        table,
        EndpointStatsCache(store, ttl_s=60.0, window=50),
        Settings(home=home),
        reports=False,
        lock_retry_s=0.05,
        poll_s=0.05,
    )


def test_a_judge_that_loses_its_lock_stops_judging(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "store.duckdb")
    service = _service(store, tmp_path)
    service.start()
    try:
        wait_until(lambda: service.is_judge)
        store.ingest_rows([completion(f"a{i}") for i in range(3)])
        service.flush()
        assert service.observed == 3
        # Its lock is gone (as when its PostgreSQL session dies) and another replica
        # holds it now: this one stops judging and keeps trying.
        store.refuse = True
        lock = service.judge.lock
        assert lock is not None
        lock.release()
        wait_until(lambda: not service.is_judge)
        store.ingest_rows([completion(f"b{i}") for i in range(4)])
        service.wake()
        time.sleep(0.5)  # ten poll intervals
        assert (service.observed, store.drift_inbox_size()) == (3, 4)
        # The other replica goes away: this one judges again, continuing the groups
        # from the state stored with the last acknowledged batch.
        store.refuse = False
        wait_until(lambda: service.is_judge)
        service.flush()
        assert (service.observed, store.drift_inbox_size()) == (7, 0)
        assert [g.n for g in service.monitor.states()] == [7]
    finally:
        service.stop()
        store.close()
    assert not lock.held()


def test_two_replicas_on_one_store_judge_each_completion_once(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    replicas = [_service(store, tmp_path), _service(store, tmp_path)]
    for replica in replicas:
        replica.start()
    try:
        judge = wait_until(lambda: next((r for r in replicas if r.is_judge), None))
        for start in range(0, 60, 20):
            store.ingest_rows([completion(f"r{i}") for i in range(start, start + 20)])
            time.sleep(0.06)
        judge.flush()
        assert [r.is_judge for r in replicas].count(True) == 1
        assert [r.observed for r in replicas if r is not judge] == [0]
        assert judge.observed == 60
        # The judge stops: the other replica takes over and judges what comes next.
        judge.stop()
        other = next(r for r in replicas if r is not judge)
        store.ingest_rows([completion("late")])
        wait_until(lambda: other.is_judge)
        other.flush()
        assert other.observed == 1
    finally:
        for replica in replicas:
            replica.stop()
        store.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> MLflowRegistry:
    reg = new_registry(tmp_path_factory.mktemp("registry"))
    register(reg, SERVED)
    return reg


def _raw_batch(items: list[dict[str, Any]]) -> pa.Table:
    """The canonical raw batch an importer yields for ``tailcast ingest`` (text columns)."""
    names = sorted({k for item in items for k in item})
    columns = {n: pa.array([_text(i.get(n)) for i in items], pa.string()) for n in names}
    return pa.table({LINE: pa.array(range(1, len(items) + 1), pa.int64()), **columns})


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def test_a_cli_ingest_is_judged_by_the_running_services_judge(
    registry: MLflowRegistry, tmp_path: Path
) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    settings = Settings(home=tmp_path, mlflow_tracking_uri=registry.tracking_uri)
    app = create_app(settings, store=store, registry=registry)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_until(lambda: client.get("/v1/drift").json()["judge"])
        items = [completion(f"cli{i}", latency_s=2.0 + i) for i in range(5)]
        items.append(completion("other", served_model="no-champion"))
        items.append(completion("open", latency_s=None))  # no outcome: never enqueued
        report = store.ingest_batches([_raw_batch(items)], source="cli.csv")
        assert report.accepted == 7
        # Nothing wakes the judge (the ingest did not go through the API): its poll does.
        view = wait_until(lambda: (v := client.get("/v1/drift").json())["inbox"] == 0 and v)
        assert view["observed"] == 5  # the completion without a champion: acked, not judged
        assert [(g["group"]["served_model"], g["n"]) for g in view["groups"]] == [(SERVED, 5)]
    store.close()


def test_a_woken_judge_gathers_completions_posted_one_per_call(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    batches: list[int] = []
    loop = JudgeLoop(
        store, lambda rows: batches.append(len(rows)), retry_s=0.05, poll_s=0.05, gather_s=60.0
    )
    loop.start()
    try:
        wait_until(lambda: loop.is_judge)
        store.ingest_rows([completion("first")])
        loop.wake()
        wait_until(lambda: batches == [1])
        for i in range(19):  # one completion per call, each waking the judge
            store.ingest_rows([completion(f"c{i}")])
            loop.wake()
        time.sleep(0.3)  # six poll intervals: still gathering (a pass per minute at most)
        assert (batches, store.drift_inbox_size()) == ([1], 19)
        loop.flush(timeout_s=10.0)  # a flush does not wait for the gathering
        assert batches == [1, 19]
    finally:
        loop.stop(timeout_s=10.0)
        store.close()
    assert not loop.is_judge
