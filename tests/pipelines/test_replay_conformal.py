"""The replay's online calibration is strictly online: offsets as of each submission."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from core import RECORD_FIELDS
from drift import AdaptiveCalibrator, ConformalConfig
from pipelines._replay_conformal import OnlineOffsets
from pipelines.replay import COVERAGE_LEVELS, ReplayRequest, coverage_windows, replay

T0 = datetime(2026, 4, 11, 7, tzinfo=UTC)
CALLS = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "agentic"
    / "minisweagent_calls.csv.gz"
)
SHIFT = datetime(2026, 4, 11, 6, tzinfo=UTC)
LEVELS = (0.1, 0.5, 0.9, 0.95, 0.99)


class FakeStream:
    """What :class:`OnlineOffsets` reads of a replay stream, in completion order."""

    def __init__(self, spans: Sequence[tuple[float, float]], y: list[float]) -> None:
        self.submitted = [T0 + timedelta(seconds=s) for s, _ in spans]
        self.at = [T0 + timedelta(seconds=c) for _, c in spans]
        assert self.at == sorted(self.at)
        self.n = len(y)
        self.y = np.asarray(y, dtype=np.float64)
        self.levels = LEVELS
        self.values = np.tile(np.array([0.5, 1.0, 2.0, 3.0, 5.0]), (self.n, 1))
        self.classes = ["c0"] * self.n
        self.devices = ["api"] * self.n
        self.issued: dict[int, np.ndarray] = {}
        self.hits = np.zeros((self.n, len(COVERAGE_LEVELS)), dtype=np.bool_)

    def rescore(self, i: int, issued: np.ndarray) -> None:
        self.issued[i] = issued.copy()
        self.hits[i] = self.y[i] <= issued


def _run(stream: Any, **config: Any) -> OnlineOffsets:
    calibration = OnlineOffsets(
        AdaptiveCalibrator(ConformalConfig(warm_up=0, **config)), cast(Any, stream), "m"
    )
    for i in range(stream.n):
        calibration.serve(i)
    return calibration


def test_only_outcomes_finished_before_a_submission_adjust_its_forecast() -> None:
    # 0: submitted 0 s, done 10 s (very slow). 1: submitted 5 s (before 0 finished).
    # 2: submitted 12 s (after 0 finished).
    stream = FakeStream([(0, 10), (5, 20), (12, 30)], [50.0, 1.0, 1.0])
    _run(stream, gamma=0.1)
    model = stream.values[0]
    assert np.array_equal(stream.issued[0], model)  # its own outcome: never
    assert np.array_equal(stream.issued[1], model)  # in flight when 0 finished
    assert np.all(stream.issued[2] > model)  # issued after 0 finished: adjusted up


def test_a_new_model_starts_in_flight_requests_at_zero_offsets() -> None:
    spans = [(0, 1), (2, 5), (3, 20), (4, 21)]  # 2 and 3 issued (adjusted) before the swap
    stream = FakeStream(spans, [50.0, 50.0, 1.0, 1.0])
    calibrator = AdaptiveCalibrator(ConformalConfig(warm_up=0))
    calibration = OnlineOffsets(calibrator, cast(Any, stream), "m")
    for i in range(2):
        calibration.serve(i)
    calibration.reset(2)
    for i in range(2, 4):
        calibration.serve(i)
    assert np.array_equal(stream.issued[2], stream.values[2])
    assert np.array_equal(stream.issued[3], stream.values[3])
    assert calibration.calibrator.served_models() == ["m"]  # learning again


def test_slower_outcomes_bring_coverage_back() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    spans = [(float(i), i + 0.5) for i in range(n)]
    # The model's 0.9 quantile is 2.0 s; outcomes are lognormal with a 0.9 quantile of 3.0 s.
    y = 3.0 * np.exp(0.5 * (rng.standard_normal(n) - 1.2816))
    stream = FakeStream(spans, y.tolist())
    _run(stream)
    raw = float(np.mean(y <= 2.0))
    windows = coverage_windows(stream.hits)["0.9"]
    assert raw < 0.8
    assert all(abs(w - 0.9) <= 0.04 for w in windows), windows


@pytest.mark.slow
@pytest.mark.shared_data
def test_replay_serves_calibrated_forecasts_through_an_injected_slowdown(tmp_path: Path) -> None:
    """Calls of 40 tasks before the real slow-down, x1.6 from the middle, retraining off."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from feature_store import DuckDBStore
    from feature_store.importers import get_importer

    assert CALLS.exists(), f"shared data missing: {CALLS}"
    with DuckDBStore(":memory:") as store:
        store.ingest_batches(get_importer("minisweagent").read(CALLS))
        frame = store.training_frame("deepseek-chat", end=SHIFT, columns=RECORD_FIELDS)
    tasks = pc.list_element(pc.split_pattern(frame.column("workflow_id"), "/"), 1)
    frame = frame.filter(pc.is_in(tasks, pa.array(sorted(set(tasks.to_pylist()))[:40])))
    times = frame.column("submitted_at")
    middle = sorted(times.to_pylist())[frame.num_rows // 2]
    slow = pc.greater_equal(times, pa.scalar(middle, times.type))
    latency = pc.if_else(slow, pc.multiply(frame.column("latency_s"), 1.6), frame["latency_s"])
    frame = frame.set_column(frame.column_names.index("latency_s"), "latency_s", latency)
    pq.write_table(frame, tmp_path / "slowed.parquet")
    request = ReplayRequest(
        served_model="deepseek-chat",
        data=tmp_path / "slowed.parquet",
        train_before=middle,
        features="static",
        trials=1,
        retrain_config={"text_kinds": ("none",)},
    )
    result = replay(request, tmp_path / "home")
    assert result.hits is not None
    assert result.model_hits is not None
    assert result.replayed >= 1000
    served = coverage_windows(result.hits, 250, 250)
    model = coverage_windows(result.model_hits, 250, 250)
    for level in ("0.5", "0.9"):
        off = [abs(w - float(level)) for w in served[level]]
        assert max(off) <= 0.08, (level, served[level])  # windows of 250: SE <= 3.2 pts
        own = [abs(w - float(level)) for w in model[level]]
        assert np.mean(off) < np.mean(own), (level, served[level], model[level])
    assert result.alarms  # the monitor still judges the model's own forecasts
