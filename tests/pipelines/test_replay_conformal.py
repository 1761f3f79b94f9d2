"""The replay's online calibration is strictly online: offsets as of each submission."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np

from drift import AdaptiveCalibrator, ConformalConfig
from pipelines._replay_conformal import OnlineOffsets
from pipelines.replay import COVERAGE_LEVELS, coverage_windows

T0 = datetime(2026, 4, 11, 7, tzinfo=UTC)
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
