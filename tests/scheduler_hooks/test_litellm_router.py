"""A real ``litellm.Router`` routes through tailcast and learns which deployment is slow.

Two OpenAI-compatible servers on loopback answer ``/v1/chat/completions``: ``fast``
at once, ``slow`` after :data:`SLOW_S`. The router's strategy is
:class:`TailcastRoutingStrategy` against a real tailcast (uvicorn) whose champion reads
the endpoint feature ``log_ep_latency_s`` (the median latency of the endpoint's recent
completions), and :class:`TailcastCompletionLogger` is a LiteLLM callback that posts
every call's outcome to ``POST /v1/completions``. At first neither endpoint has history
(equal forecasts: the slow one, listed first, is picked); once its completions are
stored, forecasts on ``slow`` are several times longer and its share of requests falls.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before LiteLLM loads: no network fetch

import litellm
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from litellm.router import Router

from core.predictor import Predictor, PredictorSpec
from registry import MLflowRegistry
from scheduler_hooks.client import ForecastItem, TailcastClient
from scheduler_hooks.litellm import TailcastRoutingStrategy
from scheduler_hooks.litellm_callback import TailcastCompletionLogger
from serving import create_app
from serving.config import ServingConfig

if TYPE_CHECKING:
    from _fixtures import LEVELS, SERVED, free_port, running, settings
else:
    from tests.serving._fixtures import LEVELS, SERVED, free_port, running, settings

SLOW_S = 0.3
REQUESTS, WORKERS = 48, 4
DEVICES = ("fast-gpu", "slow-gpu")
#: What a LiteLLM call to a closed port raises (1.110: InternalServerError).
CONNECTION_ERRORS = (litellm.exceptions.APIConnectionError, litellm.exceptions.InternalServerError)


def endpoint_aware_predictor() -> Predictor:
    """Median latency ~ 0.05 s x (1 + endpoint's median latency)^8: slower history, longer."""
    spec = PredictorSpec(
        served_models=(SERVED,),
        numeric=("log_ep_latency_s",),
        devices=DEVICES,
        hidden=(1,),
        levels=LEVELS,
    )
    gain, shift = 8.0, 5.0  # h = log1p(ep latency) + shift > 0: the ReLU stays linear
    head_w = np.zeros((1, len(LEVELS)))
    head_w[0, 0] = gain
    head_b = np.full(len(LEVELS), math.log(math.expm1(0.15)))  # 0.15 log-steps per level
    head_b[0] = math.log(0.02) - gain * shift
    arrays = {
        "num_mean": np.zeros(1),
        "num_std": np.ones(1),
        "layer0_W": np.array([[1.0], [0.0], [0.0], [0.0]]),  # ep, 2 device one-hots, model
        "layer0_b": np.array([shift]),
        "head_W": head_w,
        "head_b": head_b,
    }
    return Predictor(spec, arrays)


def llm_server(delay_s: float, hits: list[float]) -> FastAPI:
    """An OpenAI-compatible chat endpoint answering after ``delay_s``."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        hits.append(time.monotonic())
        await asyncio.sleep(delay_s)
        return {
            "id": f"cmpl-{len(hits)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }

    return app


@pytest.fixture(scope="module")
def tailcast_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("litellm-router")
    registry = MLflowRegistry(f"sqlite:///{home / 'mlflow.db'}")
    version = registry.log_training(
        SERVED,
        endpoint_aware_predictor(),
        params={"hidden": (1,)},
        metrics={"mean_pinball": 0.1},
        artifacts={},
        input_example=pd.DataFrame({"served_model": [SERVED], "device": ["fast-gpu"]}),
    )
    registry.promote(SERVED, version.version)
    config = ServingConfig(endpoint_stats_ttl_s=0.2)
    with running(create_app(settings(home, registry), config=config)) as url:
        yield url


def deployment(name: str, url: str) -> dict[str, Any]:
    return {
        "model_name": SERVED,
        "litellm_params": {"model": f"openai/{name}", "api_base": f"{url}/v1", "api_key": "-"},
        "model_info": {"id": name, "tailcast_device": f"{name}-gpu"},
    }


async def drive(router: Router, picks: list[str]) -> None:
    """``REQUESTS`` chat calls from ``WORKERS`` concurrent clients; picks by submission."""
    order = itertools.count()
    picks.extend([""] * REQUESTS)

    async def worker() -> None:
        while (i := next(order)) < REQUESTS:
            answer = await router.acompletion(
                model=SERVED, messages=[{"role": "user", "content": f"question {i} " * 20}]
            )
            picks[i] = str(answer._hidden_params["model_id"])

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(WORKERS))), timeout=60)


async def settle(callback: TailcastCompletionLogger, timeout_s: float = 10.0) -> None:
    """Wait until LiteLLM's background callbacks have reported every call."""
    deadline = time.monotonic() + timeout_s
    while callback.posted + callback.rejected + callback.failed < REQUESTS:
        assert time.monotonic() < deadline, "LiteLLM did not report every call"
        await asyncio.sleep(0.05)


def test_router_learns_the_slow_deployment(tailcast_url: str) -> None:
    fast_hits: list[float] = []
    slow_hits: list[float] = []
    picks: list[str] = []
    with (
        running(llm_server(0.0, fast_hits)) as fast,
        running(llm_server(SLOW_S, slow_hits)) as slow,
    ):
        router = Router(model_list=[deployment("slow", slow), deployment("fast", fast)])
        strategy = TailcastRoutingStrategy(
            lambda: router.registry().all(), tailcast_url, slots=1, timeout_s=2.0
        )
        router.register_plugin(strategy)
        callback = TailcastCompletionLogger(tailcast_url, strategy)
        litellm.logging_callback_manager.add_litellm_callback(callback)
        try:

            async def run() -> None:
                await drive(router, picks)
                await settle(callback)
                await callback.aclose()

            asyncio.run(run())
        finally:
            litellm.logging_callback_manager.remove_callback_from_all_lists(callback)

    assert len(slow_hits) + len(fast_hits) == REQUESTS  # every call went over real HTTP
    assert picks.count("slow") == len(slow_hits)
    assert "slow" in picks[:WORKERS]  # no history yet: equal forecasts, the first listed
    later = picks[REQUESTS // 2 :]
    share = later.count("slow") / len(later)
    early = picks[: REQUESTS // 2]
    print(f"slow deployment: {early.count('slow')}/{len(early)} of the first half, "
          f"{later.count('slow')}/{len(later)} of the later half ({share:.1%})")  # fmt: skip
    assert share < 0.30
    assert (callback.posted, callback.rejected, callback.failed) == (REQUESTS, 0, 0), (
        callback.last_error
    )
    assert strategy.fallbacks == 0
    assert sum(strategy.in_flight(d) for d in strategy.models()) == 0  # every call reported
    with TailcastClient(tailcast_url, timeout_s=5.0) as client:
        fast_f, slow_f = client.forecasts(
            [ForecastItem(SERVED, f"{n}-gpu") for n in ("fast", "slow")]
        )
    assert slow_f.quantiles[0.5] > 2 * fast_f.quantiles[0.5]  # the forecasts know it


def wait_until(done: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``done`` (LiteLLM runs blocking calls' callbacks on a thread pool: slow when loaded)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "LiteLLM did not report the call"
        time.sleep(0.05)


def blocking_calls(tailcast_url: str, name: str, url: str, calls: int) -> tuple[int, int, int]:
    """``calls`` ``Router.completion`` calls to one deployment; the logger's counts after."""
    model = deployment(name, url)
    strategy = TailcastRoutingStrategy([model], tailcast_url, timeout_s=2.0)
    router = Router(model_list=[model], num_retries=0)
    router.register_plugin(strategy)
    callback = TailcastCompletionLogger(tailcast_url, strategy, timeout_s=10.0)
    litellm.logging_callback_manager.add_litellm_callback(callback)
    try:
        for i in range(calls):
            message = [{"role": "user", "content": f"{i}"}]
            if name == "down":
                with pytest.raises(CONNECTION_ERRORS):
                    router.completion(model=SERVED, messages=message)
            else:
                router.completion(model=SERVED, messages=message)
        wait_until(lambda: strategy.in_flight(model) == 0)  # reported: no longer counted
        wait_until(lambda: name == "down" or callback.posted == calls)
    finally:
        litellm.logging_callback_manager.remove_callback_from_all_lists(callback)
    return callback.posted, callback.rejected, callback.failed


def test_blocking_calls_and_failures_are_reported(tailcast_url: str) -> None:
    hits: list[float] = []
    with running(llm_server(0.0, hits)) as up:
        assert blocking_calls(tailcast_url, "fast", up, 3) == (3, 0, 0)
    assert len(hits) == 3
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert blocking_calls(tailcast_url, "down", down, 1) == (0, 0, 0)  # ended, not a completion
