"""The capacity-loss wiring: per-device recalibration, drift-triggered refits and book swaps."""

from __future__ import annotations

import numpy as np
import pytest

from drift import MonitorConfig
from pipelines.capacity import RetrainPolicy, degrade_event, recalibrate, recovery, run_capacity
from pipelines.simulate import Scenario
from scheduler_hooks.sim import SimConfig, Workload

LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
Z = np.array([-1.645, -0.674, 0.0, 0.674, 1.645])
DEVICES = ("a100", "h100")


def lognormal_scenario(n: int = 3000, seed: int = 0) -> Scenario:
    """Poisson arrivals at 60% of 3 a100 replicas; exact lognormal forecasts (sigma 0.3)."""
    rng = np.random.default_rng(seed)
    median = rng.lognormal(0.0, 0.5, n) * 2.0
    work = np.stack([median * rng.lognormal(0, 0.3, n), 0.5 * median * rng.lognormal(0, 0.3, n)], 1)
    table = np.stack([median, 0.5 * median], 1)[:, :, None] * np.exp(0.3 * Z)[None, None, :]
    rate = 0.6 * 3 / work[:, 0].mean()
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    config = SimConfig(cluster=(("a100", 3),), scale_device="h100", scale_down="newest")
    workload = Workload.independent(arrival, work, DEVICES)
    return Scenario(workload, table, LEVELS, config, rate / 0.6, 10.0 * float(np.median(work)), 0.6)


def test_recalibrate_scales_devices_with_enough_rows_only() -> None:
    table = np.tile(np.exp(0.3 * Z), (100, 2, 1))
    requests = np.arange(100)
    devices = np.array([0] * 90 + [1] * 10)
    observed = 3.0 * np.exp(0.3 * np.random.default_rng(0).normal(size=100))
    new, scales = recalibrate(table, LEVELS, requests, devices, observed, min_group=50)
    assert set(scales) == {0}
    assert 2.6 < scales[0] < 3.4
    assert np.array_equal(new[:, 1], table[:, 1])
    assert np.all(np.diff(new[:, 0], axis=1) >= 0)


@pytest.mark.slow
def test_drift_triggered_refit_follows_a_degraded_pool() -> None:
    scenario = lognormal_scenario()
    at = float(scenario.workload.arrival[1000])
    event = degrade_event(at, 0.71, ("a100",))
    policy = RetrainPolicy(
        monitor=MonitorConfig(min_samples=50, window=200, test_every=10),
        calibration_rows=100,
        retrain_s=60.0,
        max_retrains=1,
    )
    options = {"min_replicas": 3, "max_replicas": 16}
    kept = run_capacity(
        scenario,
        event,
        retrain=False,
        router="tail_aware",
        scaler_options=options,
        policy=policy,
        samples=64,
    )
    refit = run_capacity(
        scenario,
        event,
        retrain=True,
        router="tail_aware",
        scaler_options=options,
        policy=policy,
        samples=64,
    )
    alarms = [e for e in kept.events if e["kind"] == "ood"]
    assert [(a["device"], a["n"], round(a["at_s"], 1)) for a in alarms] == [
        ("a100", 1040, 1401.6)
    ]  # 110 s after the loss at 1291.1 s
    assert kept.jobs == []
    (job,) = refit.jobs
    assert job["alarm_s"] == alarms[0]["at_s"]
    assert job["rows"] == 424
    assert job["swap_s"] == job["start_s"] + 60.0
    assert job["scale"] == {"a100": 3.301, "h100": 1.029}  # the true factor: 1 / 0.29 = 3.45
    # the refitted forecasts steer work off the degraded pool: a lower tail at the end
    late_kept = recovery(kept.result, at, warmup_s=0.0)
    late_refit = recovery(refit.result, at, warmup_s=0.0)
    assert round(late_kept.late_p90, 1) == 76.8
    assert round(late_refit.late_p90, 1) == 57.0


def test_no_loss_no_alarm() -> None:
    scenario = lognormal_scenario(n=1500)
    seen: list[int] = []
    run = run_capacity(
        scenario,
        None,
        retrain=True,
        router="least_loaded",
        scaler="none",
        samples=16,
        progress=seen.append,
    )
    assert run.events == []
    assert run.jobs == []
    assert seen == [500, 1000, 1500]  # completed requests, for the CLI's progress bar
