"""Ray Serve hooks: a ``tail_aware`` request router and a forecast-driven autoscaling policy.

Install with ``pip install 'tailcast[ray]'`` (Ray Serve's request-router and
autoscaling-policy APIs are alpha in Ray 2.x; written against Ray 2.60).

* :class:`TailcastRequestRouter` (``RequestRouterConfig(request_router_class=
  "scheduler_hooks.ray_serve:TailcastRequestRouter", request_router_kwargs={...})``):
  for each request, asks tailcast for its latency on every candidate replica (the
  replica's device from its routing stats key ``device``, else the configured one; its
  requests in flight as ``num_running``; the request's ``input_tokens``/``prompt``
  when its first argument or keyword arguments carry them) and ranks first the
  replica with the smallest predicted P95 completion time
  (:func:`scheduler_hooks._select.tail_aware_choice`). In-flight counts are kept by the
  router itself from ``on_request_routed``/``on_request_completed``. When tailcast
  cannot answer in ``timeout_s`` the router ranks replicas by fewest in flight, so
  serving never waits on the forecaster.
* :class:`TailcastAutoscalingPolicy` (``AutoscalingPolicy(policy_function=
  "scheduler_hooks.ray_serve:TailcastAutoscalingPolicy", policy_kwargs={...})``):
  the requests Serve reports in flight (``ctx.total_num_requests``) and tailcast's
  forecast of one request's work give the rate by Little's law, and
  :func:`scheduler_hooks._plan.plan` (the ``forecast`` scaler) the replicas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ray.serve.config import AutoscalingContext
from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

from scheduler_hooks._plan import plan
from scheduler_hooks._select import tail_aware_choice
from scheduler_hooks.client import (
    GRID,
    AsyncTailcastClient,
    ForecastItem,
    TailcastClient,
    TailcastClientError,
)

#: Request fields read from a request's first argument or keyword arguments.
FIELDS = ("input_tokens", "cached_tokens", "prompt", "prompt_class", "workflow_id", "step")


def request_fields(args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Forecast fields of a Serve request: from ``kwargs``, else a mapping first argument.

    >>> request_fields([{"input_tokens": 900, "other": 1}], {})
    {'input_tokens': 900}
    >>> request_fields(["text"], {"prompt": "hi"})
    {'prompt': 'hi'}
    """
    source: Mapping[str, Any] = kwargs
    if not any(k in kwargs for k in FIELDS) and args and isinstance(args[0], Mapping):
        source = args[0]
    return {k: source[k] for k in FIELDS if source.get(k) is not None}


def rank_by_load(loads: Sequence[int]) -> list[int]:
    """Candidate indices by fewest in flight (ties: the first), the fallback ranking.

    >>> rank_by_load([3, 0, 1, 0])
    [1, 3, 2, 0]
    """
    return sorted(range(len(loads)), key=lambda i: (loads[i], i))


class TailcastRequestRouter(RequestRouter):
    """Rank replicas by predicted P95 completion time (configure with ``initialize_state``)."""

    def initialize_state(
        self,
        tailcast_url: str = "http://127.0.0.1:8000",
        served_model: str = "default",
        device: str = "unknown",
        quantile: float = 0.95,
        slots: int | None = None,
        timeout_s: float = 0.05,
        token: str | None = None,
        **_: Any,
    ) -> None:
        """Configure (called by Serve with ``request_router_kwargs``).

        Args:
            tailcast_url: The tailcast service.
            served_model: The served model whose forecasts to ask for.
            device: Device of replicas that report none in their routing stats.
            quantile: The completion-time level minimised.
            slots: Requests a replica serves at once (default: its
                ``max_ongoing_requests``).
            timeout_s: Longest wait for tailcast, seconds, before the fallback ranking.
            token: tailcast bearer token, if any.
        """
        self.served_model, self.device, self.quantile = served_model, device, quantile
        self.slots = slots
        self.client = AsyncTailcastClient(tailcast_url, token=token, timeout_s=timeout_s)
        self.in_flight: dict[ReplicaID, int] = {}
        self.decisions = 0
        self.fallbacks = 0

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        """The replica with the smallest predicted P95 completion first, then the others."""
        cands = candidate_replicas
        if not cands:
            return []
        loads = [self.in_flight.get(r.replica_id, 0) for r in cands]
        fields = (
            request_fields(pending_request.args, pending_request.kwargs) if pending_request else {}
        )
        items = [
            ForecastItem(
                self.served_model,
                str(r.routing_stats.get("device") or self.device),
                num_running=load,
                **fields,
            )
            for r, load in zip(cands, loads, strict=True)
        ]
        try:
            forecasts = await self.client.forecasts(items, GRID)
        except TailcastClientError:
            self.fallbacks += 1
            order = rank_by_load(loads)
        else:
            rows = np.stack([f.values() for f in forecasts])
            slots = [self.slots or r.max_ongoing_requests for r in cands]
            best = tail_aware_choice(GRID, rows, loads, slots, quantile=self.quantile)
            order = [best, *(i for i in rank_by_load(loads) if i != best)]
            self.decisions += 1
        ranked = [[cands[order[0]]]]
        if len(order) > 1:
            ranked.append([cands[i] for i in order[1:]])
        return ranked

    def on_request_routed(
        self, pending_request: PendingRequest, replica_id: ReplicaID, result: Any
    ) -> None:
        """Count the request in flight on ``replica_id``."""
        self.in_flight[replica_id] = self.in_flight.get(replica_id, 0) + 1

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        """The request left ``replica_id``."""
        self.in_flight[replica_id] = max(self.in_flight.get(replica_id, 0) - 1, 0)


class TailcastAutoscalingPolicy:
    """Replicas from tailcast's forecast of the work Serve has in flight.

    Args:
        tailcast_url: The tailcast service.
        served_model: The served model whose forecasts to ask for.
        device: The device type a new replica runs on.
        input_tokens: Typical prompt length, tokens (unknown when ``None``).
        slots: Requests a replica serves at once.
        slo_s: Latency objective, seconds.
        quantile: Level that must meet it.
        timeout_s: Longest wait for tailcast, seconds.
        token: tailcast bearer token, if any.
    """

    def __init__(
        self,
        tailcast_url: str = "http://127.0.0.1:8000",
        served_model: str = "default",
        device: str = "unknown",
        input_tokens: int | None = None,
        slots: int = 1,
        slo_s: float = 30.0,
        quantile: float = 0.95,
        timeout_s: float = 1.0,
        token: str | None = None,
    ) -> None:
        self.item = ForecastItem(served_model, device, input_tokens=input_tokens)
        self.slots, self.slo_s, self.quantile = slots, slo_s, quantile
        self.url, self.token, self.timeout_s = tailcast_url, token, timeout_s

    def __call__(self, ctx: AutoscalingContext) -> tuple[int, dict[str, Any]]:
        """``(replicas, policy state)``; on a tailcast failure the current target is kept."""
        in_flight = float(ctx.total_num_requests)
        try:
            with TailcastClient(self.url, token=self.token, timeout_s=self.timeout_s) as client:
                forecast = client.forecast(self.item, GRID)
        except TailcastClientError as exc:
            return int(ctx.target_num_replicas), {"tailcast_error": str(exc)}
        mean = max(forecast.mean, 1e-9)
        p = plan(
            GRID,
            forecast.values(),
            mean,
            in_flight / mean,  # Little's law: rate = in flight / time in system
            slots=self.slots,
            slo_s=self.slo_s,
            quantile=self.quantile,
            min_replicas=max(int(ctx.capacity_adjusted_min_replicas), 1),
            max_replicas=max(int(ctx.capacity_adjusted_max_replicas), 1),
        )
        replicas = (
            0 if ctx.capacity_adjusted_min_replicas == 0 and in_flight == 0 else p.desired_replicas
        )
        state = {"tailcast_mean_work_s": mean, "tailcast_in_flight": in_flight}
        return replicas, state
