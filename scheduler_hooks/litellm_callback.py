"""LiteLLM: a ``CustomLogger`` that feeds every completed call back to tailcast.

Register it with LiteLLM's callbacks, next to the routing strategy::

    strategy = TailcastRoutingStrategy(lambda: router.registry().all(), url)
    router.register_plugin(strategy)
    litellm.logging_callback_manager.add_litellm_callback(TailcastCompletionLogger(url, strategy))

On each successful call (``async_log_success_event`` for ``acompletion``,
``log_success_event`` for ``completion``) it tells the strategy the request finished
(:meth:`TailcastRoutingStrategy.completed`, keyed by LiteLLM's ``litellm_trace_id``)
and posts one completion to tailcast's ``POST /v1/completions``:

* ``request_id``: LiteLLM's ``litellm_call_id`` (writes are idempotent by it);
* ``served_model`` and ``device``: the deployment's, by the strategy's rule
  (:func:`~scheduler_hooks.litellm.target_of` on the deployment the call went to);
* ``submitted_at``, ``latency_s`` (seconds), ``ttft_s`` (streams only): LiteLLM's
  ``standard_logging_object`` times of the call (``startTime``, ``endTime``,
  ``completionStartTime``, epoch seconds);
* ``input_tokens``, ``output_tokens``: the response's usage;
* ``prompt``: the last user message, only with ``prompts=True``.

LiteLLM's callbacks are process-wide: the logger sees every call of the process (of
any router), and LiteLLM keeps one logger per class and public settings (a second
``TailcastCompletionLogger`` for the same service is not added). A failed call only
ends the request's count (its latency is not a completion's). A
callback never raises into LiteLLM: a refused record (4xx, e.g. a device name tailcast
rejects) or an unreachable service (after ``retries``) is logged and counted
(``rejected``, ``failed``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from scheduler_hooks.litellm import Deployment, TailcastRoutingStrategy, prompt_of, target_of

if TYPE_CHECKING:
    from litellm.integrations.custom_logger import CustomLogger as _Logger
else:
    try:
        from litellm.integrations.custom_logger import CustomLogger as _Logger
    except ImportError:  # the documented interface, without LiteLLM installed
        _Logger = object

logger = logging.getLogger(__name__)


def _epoch(value: Any) -> datetime | None:
    """A LiteLLM time (epoch seconds, or a naive local ``datetime``) as aware UTC."""
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return None


class TailcastCompletionLogger(_Logger):
    """Post LiteLLM completions to tailcast and end their in-flight count.

    Args:
        tailcast_url: The tailcast service.
        strategy: The router's strategy: told when each request ends, and asked for
            the deployment a call went to; it counts requests until then
            (:meth:`TailcastRoutingStrategy.track_completions`).
        device: Device of deployments that name none (the strategy's, when given).
        token: tailcast bearer token, if any (``POST /v1/completions`` needs it when
            the service has one).
        timeout_s: Longest wait for tailcast per post, seconds (callbacks run after
            the call has answered: this delays no request).
        retries: Posts retried after a transport error (timeout, connection reset);
            safe, as tailcast stores a ``request_id`` once.
        prompts: Send the last user message as the record's ``prompt``.
    """

    def __init__(
        self,
        tailcast_url: str,
        strategy: TailcastRoutingStrategy | None = None,
        *,
        device: str = "unknown",
        token: str | None = None,
        timeout_s: float = 5.0,
        retries: int = 1,
        prompts: bool = False,
    ) -> None:
        super().__init__()
        self.tailcast_url = tailcast_url.rstrip("/")  # public: LiteLLM's dedup key reads it
        self.strategy = strategy
        self.device = device if strategy is None else strategy.device
        self.prompts = prompts
        headers = {} if token is None else {"authorization": f"Bearer {token}"}
        self._options: dict[str, Any] = {
            "base_url": self.tailcast_url,
            "headers": headers,
            "timeout": httpx.Timeout(timeout_s),
        }
        self._sync: httpx.Client | None = None
        self._async: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None
        self.retries = retries
        self.posted = self.rejected = self.failed = 0
        self.last_error: str | None = None
        if strategy is not None:
            strategy.track_completions()

    # --- what a call tells ------------------------------------------------------------
    def deployment(self, kwargs: dict[str, Any]) -> tuple[str, Deployment]:
        """The id and the deployment (as far as known) a logged call went to."""
        params = kwargs.get("litellm_params") or {}
        info = params.get("model_info") or (params.get("metadata") or {}).get("model_info") or {}
        slo = kwargs.get("standard_logging_object") or {}
        model_id = str(slo.get("model_id") or info.get("id") or "")
        if self.strategy is not None and model_id:
            for known in self.strategy.models():
                if str((known.get("model_info") or {}).get("id")) == model_id:
                    return model_id, known
        return model_id, {"model_info": info, "litellm_params": params}

    def record(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> dict[str, Any] | None:
        """The completion record of a successful call (``None``: its times are unknown)."""
        slo = kwargs.get("standard_logging_object") or {}
        start = _epoch(slo.get("startTime")) or _epoch(start_time)
        end = _epoch(slo.get("endTime")) or _epoch(end_time)
        if start is None or end is None:
            return None
        group = str(slo.get("model_group") or kwargs.get("model") or "")
        served, device = target_of(self.deployment(kwargs)[1], group, self.device)
        usage = getattr(response_obj, "usage", None)
        out: dict[str, Any] = {
            "request_id": str(kwargs.get("litellm_call_id") or slo.get("id")),
            "served_model": served,
            "device": device,
            "submitted_at": start.isoformat(),
            "latency_s": max((end - start).total_seconds(), 1e-6),
            "input_tokens": slo.get("prompt_tokens") or getattr(usage, "prompt_tokens", None),
            "output_tokens": slo.get("completion_tokens")
            or getattr(usage, "completion_tokens", None),
        }
        first = _epoch(slo.get("completionStartTime"))
        if kwargs.get("stream") and first is not None and start <= first <= end:
            out["ttft_s"] = (first - start).total_seconds()
        if self.prompts:
            out["prompt"] = prompt_of(kwargs.get("messages"), kwargs.get("input"))
        return {k: v for k, v in out.items() if v is not None}

    def _finished(self, kwargs: dict[str, Any]) -> None:
        model_id = self.deployment(kwargs)[0]
        if self.strategy is not None and model_id:
            self.strategy.completed(model_id, kwargs.get("litellm_trace_id"))

    def _count(self, answer: httpx.Response) -> None:
        if answer.status_code != 200:
            self.rejected += 1
            logger.warning("tailcast refused a completion: %s %s", answer.status_code, answer.text)
            return
        rejected = answer.json().get("rejected") or []
        self.rejected += len(rejected)
        self.posted += 1 - len(rejected)
        if rejected:
            logger.warning("tailcast rejected a completion: %s", rejected)

    def _body(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> dict[str, Any] | None:
        """End the call's count; the ``POST /v1/completions`` body of its record, if any."""
        self._finished(kwargs)
        record = self.record(kwargs, response_obj, start_time, end_time)
        return None if record is None else {"completions": [record]}

    def _dropped(self, exc: httpx.TransportError, attempt: int) -> None:
        self.last_error = repr(exc)
        if attempt == self.retries:
            self.failed += 1
            logger.warning("tailcast unreachable, completion dropped: %r", exc)

    # --- LiteLLM's callbacks ----------------------------------------------------------
    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Asyncio calls: end the count, then post the completion."""
        body = self._body(kwargs, response_obj, start_time, end_time)
        if body is None:
            return
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:  # a client serves one loop
            self._async = (loop, httpx.AsyncClient(**self._options))
        for attempt in range(self.retries + 1):
            try:
                return self._count(await self._async[1].post("/v1/completions", json=body))
            except httpx.TransportError as exc:
                self._dropped(exc, attempt)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Asyncio calls that failed: end the count only."""
        self._finished(kwargs)

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Blocking calls: as :meth:`async_log_success_event`."""
        body = self._body(kwargs, response_obj, start_time, end_time)
        if body is None:
            return
        self._sync = self._sync or httpx.Client(**self._options)
        for attempt in range(self.retries + 1):
            try:
                return self._count(self._sync.post("/v1/completions", json=body))
            except httpx.TransportError as exc:
                self._dropped(exc, attempt)

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """Blocking calls that failed: end the count only."""
        self._finished(kwargs)

    async def aclose(self) -> None:
        """Close the HTTP clients (call it on the loop the asyncio calls ran on)."""
        if self._sync is not None:
            self._sync.close()
        if self._async is not None:
            await self._async[1].aclose()
        self._sync = self._async = None
