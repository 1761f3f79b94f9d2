"""The KEDA/HPA scaling hook: window and plan arithmetic, then the endpoint over real HTTP."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from scheduler_hooks._plan import plan
from serving._scaling import ArrivalWindow

if TYPE_CHECKING:
    from _fixtures import DEVICE, SERVED, request
    from _hook_fixtures import serving_champion
else:
    from tests.serving._fixtures import DEVICE, SERVED, request
    from tests.serving._hook_fixtures import serving_champion

LEVELS = [0.1, 0.5, 0.9]
WORK = np.array([1.0, 2.0, 4.0])


def test_window_keeps_readings_a_second_apart_within_the_window() -> None:
    w = ArrivalWindow(window_s=10.0)
    assert w.rate(0.0, 0.0) == 0.0
    assert w.rate(0.5, 5.0) == 10.0  # not kept (0.5 s after the last kept reading)
    assert w.rate(2.0, 20.0) == 10.0
    assert w.rate(11.0, 20.0) == pytest.approx(0.0)  # the burst left the window
    assert w.rate(12.0, 30.0) == pytest.approx(10 / 10.0)  # from the reading at 2 s
    assert w.rate(13.0, 10.0) == 0.0  # a counter reset never answers a negative rate


def args(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "slots": 1, "slo_s": 30.0, "quantile": 0.95, "min_replicas": 1, "max_replicas": 64,
    }  # fmt: skip
    return {**base, **kw}


def test_plan_load_and_backlog_needs() -> None:
    idle = plan(LEVELS, WORK, 2.3, 0.0, **args())
    assert (idle.desired_replicas, idle.forecast_load, idle.in_flight) == (1, 0.0, 0.0)
    p = plan(LEVELS, WORK, 2.3, 4.0, **args(slots=2))
    assert p.forecast_load == pytest.approx(4.6)  # 4 req/s x 2.3 s / 2 slots
    assert p.desired_replicas > 4.6  # more replicas than busy ones: a queue would grow
    tight = plan(LEVELS, WORK, 2.3, 4.0, **args(slots=2, slo_s=1.0))
    assert tight.desired_replicas > p.desired_replicas  # P95 of ~10 requests' work in 1 s
    assert tight.desired_replicas >= math.ceil(tight.backlog_s / 2.0)
    assert plan(LEVELS, WORK, 2.3, 400.0, **args(max_replicas=50)).desired_replicas == 50
    assert plan(LEVELS, WORK, 2.3, 0.01, **args(min_replicas=3)).desired_replicas == 3
    rates = [plan(LEVELS, WORK, 2.3, r, **args()).desired_replicas for r in (1, 2, 4, 8)]
    assert rates == sorted(rates)
    assert rates[-1] > rates[0]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_champion(tmp_path_factory.mktemp("scaling")) as url:
        yield url


def gauge(text: str, name: str, **labels: str) -> float:
    sel = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(sel)}\}} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{{{sel}}} not in /metrics"
    return float(match.group(1))


@pytest.mark.slow
def test_scaling_endpoint_follows_the_forecast_traffic(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        first = http.get(f"/v1/scaling/{SERVED}", params={"window_s": 30, "slots": 1})
        assert first.status_code == 200, first.text
        idle = first.json()
        assert (idle["device"], idle["model_version"], idle["arrival_rate"]) == (DEVICE, 1, 0.0)
        assert idle["desired_replicas"] == 1
        assert idle["mean_work_s"] > 0
        assert idle["p95_work_s"] >= idle["mean_work_s"] * 0.5
        zero = http.get(f"/v1/scaling/{SERVED}", params={"min_replicas": 0, "window_s": 20})
        assert zero.json()["desired_replicas"] == 0  # scale to zero without traffic

        started = time.monotonic()
        for _ in range(4):
            body = {"requests": [request(input_tokens=300)] * 50}
            assert http.post("/v1/forecasts", json=body).status_code == 200
        time.sleep(1.2)
        busy = http.get(f"/v1/scaling/{SERVED}", params={"window_s": 30, "slots": 1}).json()
        elapsed = time.monotonic() - started
        assert 200 / (elapsed + 1.0) <= busy["arrival_rate"] <= 200 / 1.2
        assert busy["forecast_load"] == pytest.approx(busy["arrival_rate"] * busy["mean_work_s"])
        assert busy["desired_replicas"] >= min(64, math.ceil(busy["forecast_load"]))
        assert busy["desired_replicas"] > idle["desired_replicas"]
        fanned = http.get(f"/v1/scaling/{SERVED}", params={"window_s": 30, "fanout": 4}).json()
        assert fanned["arrival_rate"] == 0.0  # a new window (first reading)

        metrics = http.get("/metrics").text
        labels = {"served_model": SERVED, "device": DEVICE}
        assert gauge(metrics, "tailcast_scaling_arrival_rate", served_model=SERVED) == 0.0
        assert (
            gauge(metrics, "tailcast_scaling_desired_replicas", **labels)
            == (fanned["desired_replicas"])
        )
        assert gauge(metrics, "tailcast_scaling_mean_work_seconds", **labels) == pytest.approx(
            fanned["mean_work_s"]
        )


@pytest.mark.slow
def test_scaling_endpoint_rejects_bad_queries(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        unknown = http.get("/v1/scaling/nope")
        assert unknown.status_code == 404
        assert SERVED in unknown.json()["detail"]
        on_device = http.get("/v1/scaling/nope", params={"device": "h100"})
        assert on_device.status_code == 404  # a named device does not skip the model check
        bad = http.get(f"/v1/scaling/{SERVED}", params={"slots": 0})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "slots"]
        crossed = http.get(f"/v1/scaling/{SERVED}", params={"min_replicas": 9, "max_replicas": 3})
        assert crossed.status_code == 422
        assert crossed.json()["detail"][0]["loc"] == ["query", "min_replicas"]
