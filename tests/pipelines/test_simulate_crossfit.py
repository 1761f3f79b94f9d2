"""Out-of-fold forecasts for whole-trace replays, and tensor-parallel device variants."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import simulate as job
from training import group_keys

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
CALLS = SHARED / "agentic" / "minisweagent_calls.csv.gz"


@pytest.fixture
def few_sessions(tmp_path: Path) -> Path:
    """The calls of the first 60 SWE-bench instances (every run of each)."""
    assert CALLS.exists(), f"shared data missing: {CALLS}"
    calls = pd.read_csv(CALLS)
    keep = sorted(calls["instance_id"].unique())[:60]
    out = tmp_path / "calls.csv"
    calls[calls["instance_id"].isin(keep)].to_csv(out, index=False)
    return out


@pytest.mark.shared_data
@pytest.mark.slow
def test_crossfit_forecasts_every_call_out_of_fold(few_sessions: Path, tmp_path: Path) -> None:
    trace = job.load_trace(few_sessions, "minisweagent")
    devices = ("a100", "h100")
    work = job.service_times(trace, devices)
    whole, quantiles, levels = job.crossfit_forecasts(
        trace, work, devices, tmp_path / "cf", folds=2, trials=1, max_epochs=2
    )
    assert whole.n == trace.n
    assert not whole.train.any()  # every call is replayed
    assert quantiles.shape == (trace.n, 2, len(levels))
    assert np.all(np.isfinite(quantiles))
    assert np.all(np.diff(quantiles, axis=2) >= 0)
    # Each fold is forecast by the predictor trained without it (cached per fold).
    fold = job.task_folds(trace, 2)
    keys = np.asarray(group_keys(trace.cols))
    assert not set(keys[fold == 0]) & set(keys[fold == 1])  # a task never in two folds
    for k in (0, 1):
        rows = np.flatnonzero(fold == k)
        assert 0 < len(rows) < trace.n
        held_out = job.train_forecaster(
            replace(trace, train=fold != k), work, devices, tmp_path / "cf" / f"fold{k}"
        )
        np.testing.assert_allclose(
            job.forecast_table(held_out, trace.subset(rows), devices), quantiles[rows]
        )
    # Same folds again: nothing retrained, same numbers.
    again = job.crossfit_forecasts(trace, work, devices, tmp_path / "cf", folds=2)[1]
    np.testing.assert_array_equal(again, quantiles)


@pytest.mark.shared_data
def test_tensor_parallel_variants_are_slower(few_sessions: Path) -> None:
    trace = job.load_trace(few_sessions, "minisweagent")
    work = job.service_times(trace, ("a100", "a100-tp2", "h100"))
    mean = work.mean(axis=0)
    assert mean[1] > 1.2 * mean[0] > 1.2 * mean[2]  # measured: TP2 A100 < TP8 A100 < H100
