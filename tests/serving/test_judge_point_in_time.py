"""The drift judge sees each completion's endpoint features as of its submission."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core import CompletionRecord
from feature_store import DuckDBStore
from serving._drift_forecast import forecast_request, judged_columns
from serving._endpoint_cache import EndpointStatsCache

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _record(i: int, submitted: datetime, latency_s: float, tokens: int) -> dict[str, object]:
    return {
        "request_id": f"r{i}",
        "served_model": "m",
        "device": "d",
        "submitted_at": submitted,
        "input_tokens": 100,
        "output_tokens": tokens,
        "latency_s": latency_s,
    }


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    s = DuckDBStore(tmp_path / "store.duckdb")
    # 40 slow completions (10 tok/s) finished in the first minute; then, from minute 2,
    # 40 fast ones (100 tok/s), each finishing a second after it was submitted.
    slow = [_record(i, T0 + timedelta(seconds=i), 1.0, 10) for i in range(40)]
    fast = [_record(100 + i, T0 + timedelta(seconds=120 + i), 1.0, 100) for i in range(40)]
    s.ingest_rows(slow + fast, source="test")
    return s


def test_features_are_those_known_at_submission_not_at_judging(store: DuckDBStore) -> None:
    cache = EndpointStatsCache(store, ttl_s=5.0, window=50)
    early = CompletionRecord.model_validate(_record(1, T0 + timedelta(seconds=100), 1.0, 100))
    cols = judged_columns([early], cache.as_of, store.previous_calls)
    # Submitted at 100 s: only the 40 slow completions had finished.
    assert cols["ep_completions"] == [40]
    assert cols["ep_median_tokens_per_s"][0] == pytest.approx(10.0)
    # Judged "now" (after everything), the same endpoint looks fast: that is the skew.
    now = store.endpoint_stats("m", "d", datetime.now(UTC), window=50)
    assert now.median_tokens_per_s == pytest.approx(100.0)


def test_a_completion_never_sees_itself_or_later_ones(store: DuckDBStore) -> None:
    cache = EndpointStatsCache(store, ttl_s=5.0, window=50)
    at = T0 + timedelta(seconds=140)  # 20 fast ones finished before the 140 s bucket
    rec = CompletionRecord.model_validate(_record(120, at, 1.0, 100))
    cols = judged_columns([rec], cache.as_of, store.previous_calls)
    assert cols["ep_completions"] == [50]
    exact = store.endpoint_stats("m", "d", at, window=50)
    assert cols["ep_median_tokens_per_s"] == [exact.median_tokens_per_s]


def test_one_query_per_endpoint_and_bucket(store: DuckDBStore) -> None:
    calls: list[datetime] = []
    real = store.endpoint_stats

    def counted(served_model: str, device: str, at: datetime, window: int = 50) -> object:
        calls.append(at)
        return real(served_model, device, at, window=window)

    store.endpoint_stats = counted  # type: ignore[method-assign,assignment]
    cache = EndpointStatsCache(store, ttl_s=5.0, window=50)
    recs = [
        CompletionRecord.model_validate(_record(i, T0 + timedelta(seconds=60 + i / 10), 1.0, 9))
        for i in range(30)
    ]  # 3 s of submissions: within one or two 5 s buckets
    judged_columns(recs, cache.as_of, store.previous_calls)
    assert 1 <= len(calls) <= 2
    assert all(c <= T0 + timedelta(seconds=63) for c in calls)


def test_the_judged_request_carries_every_runtime_field_the_record_has() -> None:
    record = _record(1, T0, 1.0, 10) | {"num_running": 3, "prefill_tokens_in_flight": 900}
    rec = CompletionRecord.model_validate(record | {"decode_tokens_in_flight": 40})
    runtime = forecast_request(rec).runtime
    assert runtime is not None
    assert (runtime.num_running, runtime.num_waiting) == (3, None)
    assert (runtime.prefill_tokens_in_flight, runtime.decode_tokens_in_flight) == (900, 40)
    assert (
        forecast_request(CompletionRecord.model_validate(_record(2, T0, 1.0, 10))).runtime is None
    )


def test_judged_columns_equal_the_training_frame_row_for_row(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "wf.duckdb")
    rows = []
    for w in range(12):  # workflows whose steps sometimes start before the last one ends
        at = T0 + timedelta(seconds=7 * w)
        for step in range(4):
            latency = 0.5 + (w * 7 + step * 3) % 5
            row = _record(100 * w + step, at, latency, 10 + w + step)
            rows.append(row | {"workflow_id": f"w{w}", "step": step, "prompt": f"p{w}"})
            at += timedelta(seconds=latency * (0.5 if step % 2 else 1.5))
    store.ingest_rows(rows, source="test")
    recs = [CompletionRecord.model_validate(r) for r in rows]
    exact = lambda m, d, at: store.endpoint_stats(m, d, at, window=50)  # noqa: E731
    cols = judged_columns(recs, exact, store.previous_calls)
    frame = store.training_frame(require=()).to_pylist()
    by_id = {r["request_id"]: r for r in frame}
    shared = sorted(set(cols) & set(frame[0]))
    assert {"wf_prev_latency_s", "wf_prev_output_tokens", "ep_median_latency_s"} <= set(shared)
    for i, rec in enumerate(recs):
        assert {c: cols[c][i] for c in shared} == {c: by_id[rec.request_id][c] for c in shared}
    with_prev = sum(v is not None for v in cols["wf_prev_latency_s"])
    assert 0 < with_prev < len(recs) - 12  # some later steps had no finished predecessor
