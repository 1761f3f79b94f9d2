"""The LiteLLM routing strategy against the real service, and LiteLLM's interface.

The strategy subclasses ``litellm.types.router.CustomRoutingStrategyBase`` and keeps its
two methods' parameters and defaults (``Router.register_plugin``, formerly
``set_custom_routing_strategy``, binds exactly these). ``test_litellm_router.py`` routes
through a real ``litellm.Router``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before LiteLLM loads: no network fetch

import numpy as np
import pytest
from litellm.types.router import CustomRoutingStrategyBase

from scheduler_hooks._select import tail_aware_choice
from scheduler_hooks.client import GRID, ForecastItem, TailcastClient
from scheduler_hooks.litellm import TailcastRoutingStrategy, deployment_id

if TYPE_CHECKING:
    from _fixtures import DEVICE, SERVED
    from _hook_fixtures import serving_champion
else:
    from tests.serving._fixtures import DEVICE, SERVED
    from tests.serving._hook_fixtures import serving_champion


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


MODELS = [
    {"model_name": SERVED, "litellm_params": {"model": "openai/a"}, "model_info": {"id": "a"}},
    {
        "model_name": SERVED,
        "litellm_params": {"model": "openai/b", "tailcast_device": DEVICE},
        "model_info": {"id": "b"},
    },
    {"model_name": "other", "litellm_params": {"model": "openai/c"}, "model_info": {"id": "c"}},
]
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x" * 2000}]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_champion(tmp_path_factory.mktemp("litellm")) as url:
        yield url


def test_signatures_match_litellms_interface() -> None:
    strategy = TailcastRoutingStrategy([], "http://127.0.0.1:9")
    assert isinstance(strategy, CustomRoutingStrategyBase)
    for name in ("get_available_deployment", "async_get_available_deployment"):
        ours = inspect.signature(getattr(strategy, name))
        theirs = inspect.signature(getattr(CustomRoutingStrategyBase, name))
        assert list(ours.parameters) == list(theirs.parameters)[1:]  # without self
        assert [p.default for p in ours.parameters.values()] == [
            p.default for p in list(theirs.parameters.values())[1:]
        ]
    assert inspect.iscoroutinefunction(strategy.async_get_available_deployment)


@pytest.mark.slow
def test_picks_by_forecast_and_counts_in_flight(base_url: str) -> None:
    clock = Clock()
    strategy = TailcastRoutingStrategy(MODELS, base_url, device=DEVICE, slots=1, clock=clock)
    assert strategy.get_available_deployment("missing", MESSAGES) is None

    def expected(loads: list[int]) -> str:
        items = [
            ForecastItem(SERVED, DEVICE, prompt="x" * 2000, input_tokens=500, num_running=n)
            for n in loads
        ]
        with TailcastClient(base_url) as client:
            rows = np.stack([f.values() for f in client.forecasts(items)])
        return "ab"[tail_aware_choice(GRID, rows, loads, 1)]

    first = strategy.get_available_deployment(SERVED, MESSAGES)
    assert first is not None
    assert deployment_id(first) == expected([0, 0]) == "a"  # equal forecasts: the first
    with TailcastClient(base_url) as client:
        p50 = client.forecast(ForecastItem(SERVED, DEVICE, prompt="x" * 2000, input_tokens=500,
                                           num_running=0)).quantiles[0.5]  # fmt: skip
    second = strategy.get_available_deployment(SERVED, MESSAGES)
    assert second is not None
    assert deployment_id(second) == expected([1, 0])  # "a" is busy until its P50 has passed
    loads = [1, 1] if deployment_id(second) == "b" else [2, 0]
    assert [strategy.in_flight(d) for d in MODELS[:2]] == loads

    clock.now += p50 + 1e-6
    assert [strategy.in_flight(d) for d in MODELS[:2]] == [0, 0]
    third = asyncio.run(strategy.async_get_available_deployment(SERVED, MESSAGES))
    assert third is not None
    assert deployment_id(third) == "a"
    strategy.completed("a")
    assert strategy.in_flight(MODELS[0]) == 0
    assert strategy.fallbacks == 0


def test_falls_back_to_fewest_in_flight_when_tailcast_is_down() -> None:
    clock = Clock()
    strategy = TailcastRoutingStrategy(lambda: MODELS, "http://127.0.0.1:9", clock=clock)
    picks = [strategy.get_available_deployment(SERVED, MESSAGES) for _ in range(2)]
    assert [deployment_id(d) for d in picks if d is not None] == ["a", "a"]  # no hold: 0 s
    assert strategy.fallbacks == 2
    embed = asyncio.run(strategy.async_get_available_deployment("other", input=["q"]))
    assert embed is not None
    assert deployment_id(embed) == "c"
