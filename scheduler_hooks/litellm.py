"""LiteLLM: a ``CustomRoutingStrategyBase`` that routes by tailcast forecasts (``tail_aware``).

Install with ``pip install 'tailcast[litellm]'`` and register on the SDK router::

    router = litellm.Router(model_list=[...])
    strategy = TailcastRoutingStrategy(
        lambda: router.registry().all(),  # ``router.model_list`` before litellm 1.110
        "http://tailcast:8000",
    )
    router.register_plugin(strategy)  # ``set_custom_routing_strategy`` on older releases
    litellm.logging_callback_manager.add_litellm_callback(
        TailcastCompletionLogger("http://tailcast:8000", strategy)
    )

For a request to model group ``model``, the strategy takes the group's deployments
(``model_name == model``), asks tailcast for the request's latency on each (device:
``model_info["tailcast_device"]``, else ``litellm_params["tailcast_device"]``, else
the default; served model: ``model_info["tailcast_served_model"]``, else the group
name; ``input_tokens`` estimated as prompt characters / 4; the last user message as
the prompt), and returns the deployment with the smallest predicted P95 completion
time, counting the requests it sent there that have not finished yet. LiteLLM does
not tell a routing strategy when a call ends: on its own, the strategy counts a
request in flight until its forecast P50 has passed. With a
:class:`~scheduler_hooks.litellm_callback.TailcastCompletionLogger` wired (a LiteLLM
callback), each request counts until its success or failure is logged (matched by
LiteLLM's ``litellm_trace_id``), at most ``stale_s``; the logger also posts every
completion to tailcast, so the endpoint features of later forecasts see each
deployment's observed latency. When tailcast cannot answer in ``timeout_s`` the
deployment with the fewest in flight is returned.

The base class is LiteLLM's when LiteLLM is installed; the two methods keep its
signatures either way (``tests/scheduler_hooks/test_litellm.py`` checks them against
LiteLLM's class; ``test_litellm_router.py`` routes through a real ``litellm.Router``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from scheduler_hooks._select import tail_aware_choice
from scheduler_hooks.client import (
    GRID,
    AsyncTailcastClient,
    Forecast,
    ForecastItem,
    TailcastClient,
    TailcastClientError,
)

if TYPE_CHECKING:

    class _Base:
        """LiteLLM's ``litellm.types.router.CustomRoutingStrategyBase`` (two methods)."""

else:
    try:
        from litellm.types.router import CustomRoutingStrategyBase as _Base
    except ImportError:  # the documented interface, without LiteLLM installed
        _Base = object

Deployment = dict[str, Any]
ModelList = Callable[[], Sequence[Deployment]] | Sequence[Deployment]


def prompt_of(messages: Sequence[dict[str, Any]] | None, input: Any) -> str | None:
    r"""The text to forecast: the last user message, else an embedding ``input``.

    >>> prompt_of([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], None)
    'b'
    >>> prompt_of(None, ["x", "y"])
    'x\ny'
    """
    for message in reversed(messages or []):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str):
            return content
    if isinstance(input, str):
        return input
    if isinstance(input, list) and all(isinstance(x, str) for x in input):
        return "\n".join(input)
    return None


def _setting(deployment: Deployment, key: str) -> Any:
    info = deployment.get("model_info") or {}
    params = deployment.get("litellm_params") or {}
    return info.get(key, params.get(key))


def target_of(deployment: Deployment, group: str, device: str) -> tuple[str, str]:
    """The (served model, device) tailcast knows ``deployment`` of model group ``group`` by.

    >>> target_of({"model_info": {"tailcast_device": "h100-sxm"}}, "chat", "unknown")
    ('chat', 'h100-sxm')
    """
    served = _setting(deployment, "tailcast_served_model") or group
    return str(served), str(_setting(deployment, "tailcast_device") or device)


def deployment_id(deployment: Deployment) -> str:
    """The deployment's ``model_info.id`` (LiteLLM fills it in), else its model."""
    info = deployment.get("model_info") or {}
    params = deployment.get("litellm_params") or {}
    return str(info.get("id") or params.get("model") or id(deployment))


def request_key(request_kwargs: dict[str, Any] | None) -> str:
    """The key a request is counted under: LiteLLM's ``litellm_trace_id``, else a new id."""
    trace = (request_kwargs or {}).get("litellm_trace_id")
    return str(trace) if trace else uuid.uuid4().hex


class TailcastRoutingStrategy(_Base):
    """Pick a LiteLLM deployment by predicted P95 completion time.

    Args:
        model_list: The router's deployments, or a callable answering them (e.g.
            ``lambda: router.registry().all()``, so later changes are seen).
        tailcast_url: The tailcast service.
        device: Device of deployments that name none.
        quantile: The completion-time level minimised.
        slots: Requests a deployment serves at once.
        timeout_s: Longest wait for tailcast, seconds, before the fallback.
        token: tailcast bearer token, if any.
        stale_s: Longest a request counts in flight once completions are reported
            (:meth:`track_completions`), seconds: a lost callback is forgotten then.
        clock: Seconds now (monotonic); tests pass their own.
    """

    def __init__(
        self,
        model_list: ModelList,
        tailcast_url: str,
        *,
        device: str = "unknown",
        quantile: float = 0.95,
        slots: int = 8,
        timeout_s: float = 0.05,
        token: str | None = None,
        stale_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._models = model_list
        self.device, self.quantile, self.slots, self.clock = device, quantile, slots, clock
        self.sync_client = TailcastClient(tailcast_url, token=token, timeout_s=timeout_s)
        self.async_client = AsyncTailcastClient(tailcast_url, token=token, timeout_s=timeout_s)
        #: Deployment id -> {request key: monotonic time it stops counting}, oldest first.
        self.busy_until: dict[str, dict[str, float]] = {}
        self.stale_s: float | None = None
        self._stale_after = stale_s
        self.fallbacks = 0

    def models(self) -> list[Deployment]:
        """Every deployment of the router, now."""
        return list(self._models() if callable(self._models) else self._models)

    def group(self, model: str) -> list[Deployment]:
        """Deployments of model group ``model``."""
        return [d for d in self.models() if d.get("model_name") == model]

    def track_completions(self) -> None:
        """Count each request until :meth:`completed` names it (at most ``stale_s``).

        Called by :class:`~scheduler_hooks.litellm_callback.TailcastCompletionLogger`
        when it is given this strategy; before that a request counts until its forecast
        P50 has passed.
        """
        self.stale_s = self._stale_after

    def in_flight(self, deployment: Deployment) -> int:
        """Requests sent to ``deployment`` that still count (see :meth:`track_completions`)."""
        now, key = self.clock(), deployment_id(deployment)
        live = {r: t for r, t in self.busy_until.get(key, {}).items() if t > now}
        self.busy_until[key] = live
        return len(live)

    def completed(self, deployment: Deployment | str, request: str | None = None) -> None:
        """A request to ``deployment`` (or its id) finished: stop counting it.

        Args:
            deployment: The deployment, or its ``model_info.id``.
            request: The request's key (LiteLLM's ``litellm_trace_id``); ``None``: the
                oldest request counted there. A key no longer counted is ignored.
        """
        key = deployment if isinstance(deployment, str) else deployment_id(deployment)
        busy = self.busy_until.get(key)
        if not busy:
            return
        busy.pop(next(iter(busy)) if request is None else request, None)

    def _prepare(
        self, model: str, messages: Sequence[dict[str, Any]] | None, input: Any
    ) -> tuple[list[Deployment], list[ForecastItem]] | None:
        """The group and its forecast items (``None``: no group)."""
        group = self.group(model)
        if not group:
            return None
        loads = [self.in_flight(d) for d in group]
        prompt = prompt_of(messages, input)
        tokens = None if prompt is None else max(len(prompt) // 4, 1)
        items = [
            ForecastItem(
                *target_of(d, model, self.device),
                prompt=prompt,
                input_tokens=tokens,
                num_running=load,
            )
            for d, load in zip(group, loads, strict=True)
        ]
        return group, items

    def _pick(
        self, group: Sequence[Deployment], forecasts: list[Forecast] | None, request: str
    ) -> Deployment:
        """Choose, on the loads as they are now (concurrent picks may have added some)."""
        loads = [self.in_flight(d) for d in group]
        if forecasts is None:
            self.fallbacks += 1
            best = min(range(len(group)), key=lambda i: (loads[i], i))
            hold = 0.0
        else:
            rows = np.stack([f.values() for f in forecasts])
            best = tail_aware_choice(GRID, rows, loads, self.slots, quantile=self.quantile)
            hold = forecasts[best].quantiles.get(0.5, forecasts[best].mean)
        chosen = group[best]
        if self.stale_s is not None:
            hold = self.stale_s
        self.busy_until.setdefault(deployment_id(chosen), {})[request] = self.clock() + hold
        return chosen

    def get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[Any] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> Deployment | None:
        """The deployment for this request (``None`` when the group is unknown)."""
        ask = self._prepare(model, messages, input)
        if ask is None:
            return None
        try:
            forecasts: list[Forecast] | None = self.sync_client.forecasts(ask[1], GRID)
        except TailcastClientError:
            forecasts = None
        return self._pick(ask[0], forecasts, request_key(request_kwargs))

    async def async_get_available_deployment(
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[Any] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> Deployment | None:
        """Asyncio form of :meth:`get_available_deployment`."""
        ask = self._prepare(model, messages, input)
        if ask is None:
            return None
        try:
            answers: list[Forecast] | None = await self.async_client.forecasts(ask[1], GRID)
        except TailcastClientError:
            answers = None
        return self._pick(ask[0], answers, request_key(request_kwargs))
