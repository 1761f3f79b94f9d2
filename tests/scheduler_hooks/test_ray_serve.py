"""Ray Serve hooks: a local Serve app routed by tailcast, and the autoscaling policy.

The Serve app's two replicas sleep for service times taken from the Azure LLM
conversation trace (``../shared/data``): output tokens x 2 ms, capped at 0.4 s,
arrivals at the trace's inter-arrival times compressed 100x. tailcast runs under
real uvicorn on loopback with a small registered predictor.
"""

from __future__ import annotations

import asyncio
import csv
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
import ray
from ray import serve
from ray.serve._private.common import DeploymentID
from ray.serve.config import AutoscalingConfig, AutoscalingContext, RequestRouterConfig

from scheduler_hooks.ray_serve import TailcastAutoscalingPolicy

if TYPE_CHECKING:
    from _fixtures import DEVICE, SERVED
    from _hook_fixtures import serving_champion
else:
    from tests.serving._fixtures import DEVICE, SERVED
    from tests.serving._hook_fixtures import serving_champion

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT.parent / "shared" / "data" / "traces" / "azure_llm_2023_conv.csv"
N = 24
PATH = "scheduler_hooks.ray_serve"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_champion(tmp_path_factory.mktemp("ray")) as url:
        yield url


def trace_requests(n: int) -> list[dict[str, Any]]:
    """The trace's first ``n`` requests: offset (s, compressed 100x) and service time (s)."""
    assert TRACE.exists(), f"shared data missing: {TRACE}"
    with TRACE.open() as f:
        rows = [r for _, r in zip(range(n), csv.DictReader(f), strict=False)]
    t0 = datetime.fromisoformat(rows[0]["TIMESTAMP"][:26])
    return [
        {
            "id": i,
            "at_s": (datetime.fromisoformat(r["TIMESTAMP"][:26]) - t0).total_seconds() / 100,
            "service_s": min(int(r["GeneratedTokens"]) * 0.002, 0.4),
            "input_tokens": int(r["ContextTokens"]),
        }
        for i, r in enumerate(rows)
    ]


def forecasts_served(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    match = re.search(rf'^tailcast_forecasts_total{{served_model="{SERVED}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


@serve.deployment(num_replicas=2, max_ongoing_requests=8, ray_actor_options={"num_cpus": 0})
class Sleeper:
    """A replica that takes the request's service time."""

    def __init__(self) -> None:
        self.name = serve.get_replica_context().replica_id.unique_id

    async def __call__(self, request: dict[str, Any]) -> tuple[int, str]:
        await asyncio.sleep(request["service_s"])
        return request["id"], self.name

    def record_routing_stats(self) -> dict[str, Any]:
        return {"device": DEVICE}


@pytest.mark.slow
@pytest.mark.shared_data
def test_serve_app_routed_by_tailcast(base_url: str) -> None:
    requests = trace_requests(N)
    before = forecasts_served(base_url)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        options: dict[str, Any] = {
            "request_router_class": f"{PATH}:TailcastRequestRouter",
            "request_router_kwargs": {
                "tailcast_url": base_url,
                "served_model": SERVED,
                "device": DEVICE,
                "timeout_s": 2.0,
            },
        }
        config = RequestRouterConfig(**options)
        app = cast(Any, Sleeper).options(request_router_config=config).bind()
        # Handles only: no HTTP proxy (it would bind the fixed port 8000).
        serve.start(proxy_location="Disabled")
        handle = serve.run(app, name="tailcast-ray", route_prefix=None)
        start = time.monotonic()
        responses = []
        for req in requests:
            time.sleep(max(0.0, start + req["at_s"] - time.monotonic()))
            responses.append(handle.remote(req))
        results = [r.result(timeout_s=60) for r in responses]
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    assert [i for i, _ in results] == list(range(N))
    replicas = {name for _, name in results}
    assert len(replicas) == 2  # load was spread
    # every routing decision asked tailcast about both candidates
    assert forecasts_served(base_url) - before >= 2 * N


def context(in_flight: float, lo: int = 1, hi: int = 16, target: int = 2) -> AutoscalingContext:
    return AutoscalingContext(
        deployment_id=DeploymentID(name="llm", app_name="app"),
        deployment_name="llm",
        app_name="app",
        current_num_replicas=target,
        target_num_replicas=target,
        running_replicas=[],
        total_num_requests=in_flight,
        total_queued_requests=0.0,
        aggregated_metrics={},
        raw_metrics={},
        capacity_adjusted_min_replicas=lo,
        capacity_adjusted_max_replicas=hi,
        policy_state={},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=time.time(),
        config=None,
    )


@pytest.mark.slow
def test_autoscaling_policy_scales_with_forecast_work(base_url: str) -> None:
    kwargs = {"tailcast_url": base_url, "served_model": SERVED, "device": DEVICE,
              "input_tokens": 500, "slo_s": 30.0}  # fmt: skip
    config = AutoscalingConfig(
        min_replicas=1,
        max_replicas=16,
        policy={"policy_function": f"{PATH}:TailcastAutoscalingPolicy", "policy_kwargs": kwargs},
    )
    assert config.policy is not None
    cls = config.policy.get_policy()  # what Serve resolves, then builds with the kwargs
    assert cls is TailcastAutoscalingPolicy
    policy = cls(**config.policy.policy_kwargs)
    idle, state = policy(context(0.0))
    assert idle == 1
    assert state["tailcast_mean_work_s"] > 0
    assert policy(context(0.0, lo=0))[0] == 0  # scale to zero when nothing is in flight
    wants = [policy(context(n))[0] for n in (2.0, 20.0, 200.0)]
    assert wants == sorted(wants)
    assert wants[-1] > wants[0] >= 2  # 2 requests in flight need 2 one-slot replicas
    assert policy(context(10_000.0, hi=7))[0] == 7

    down = TailcastAutoscalingPolicy("http://127.0.0.1:9", SERVED, DEVICE, timeout_s=0.2)
    kept, error = down(context(50.0, target=3))
    assert kept == 3
    assert "127.0.0.1:9" in error["tailcast_error"]
