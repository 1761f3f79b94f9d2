"""A small typed client of the tailcast service, sync and async (``httpx``).

The hooks (LiteLLM, Ray Serve) ask the service for forecasts through it:
:meth:`TailcastClient.forecasts` posts a batch to ``POST /v1/forecasts`` (split into
chunks of ``max_batch`` items) and answers one :class:`Forecast` per request, in
order. Every call has a timeout (seconds, default 1 s: a router must not wait long);
failures raise :class:`TailcastClientError` subclasses that say what went wrong.

Example:
    >>> item = ForecastItem("chat", "h100-sxm", input_tokens=800, num_running=3)
    >>> item.to_json()
    {'served_model': 'chat', 'device': 'h100-sxm', 'input_tokens': 800, 'runtime': {'num_running': 3}}
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
import numpy as np
import numpy.typing as npt

from core.errors import TailcastError

F64 = npt.NDArray[np.float64]

#: Quantile levels hooks ask for: enough for Monte Carlo draws between them.
GRID: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


class TailcastClientError(TailcastError):
    """A call to the tailcast service failed."""


class TailcastUnavailableError(TailcastClientError):
    """The service could not be reached, or did not answer within the timeout."""


class TailcastHTTPError(TailcastClientError):
    """The service answered with an error status.

    Attributes:
        status_code: The HTTP status (e.g. 404 for an unknown served model).
        detail: The service's reason (``detail`` of the error body, else the body text).
    """

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"tailcast answered {status_code}: {detail}")


@dataclass(frozen=True, slots=True)
class ForecastItem:
    """One request about to be placed (the fields of ``POST /v1/forecasts`` items).

    Attributes:
        served_model: Served model (a key of ``GET /v1/models``).
        device: Device type or endpoint it would run on.
        request_id: Echoed back.
        prompt: Prompt text (text features).
        input_tokens: Prompt length, tokens.
        cached_tokens: Prompt tokens expected from a prefix cache.
        num_running: Requests running on the replica now.
        num_waiting: Requests queued on the replica now.
        kv_cache_util: The replica's KV-cache utilisation in [0, 1].
        prompt_class: Caller's class label.
        workflow_id: Agentic task id.
        step: 0-based call index within the workflow.
    """

    served_model: str
    device: str
    request_id: str | None = None
    prompt: str | None = None
    input_tokens: int | None = None
    cached_tokens: int | None = None
    num_running: int | None = None
    num_waiting: int | None = None
    kv_cache_util: float | None = None
    prompt_class: str | None = None
    workflow_id: str | None = None
    step: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The item as the service reads it (``None`` fields left out)."""
        out: dict[str, Any] = {"served_model": self.served_model, "device": self.device}
        for name in ("request_id", "prompt", "input_tokens", "cached_tokens", "prompt_class"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        runtime = {
            k: v
            for k, v in (
                ("num_running", self.num_running),
                ("num_waiting", self.num_waiting),
                ("kv_cache_util", self.kv_cache_util),
            )
            if v is not None
        }
        if runtime:
            out["runtime"] = runtime
        if self.workflow_id is not None:
            out["workflow_id"] = self.workflow_id
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True, slots=True)
class Forecast:
    """The latency distribution of one request, seconds.

    Attributes:
        served_model: The served model.
        model_version: Registry version of the predictor that answered.
        quantiles: Level -> latency, seconds, by increasing level.
        mean: Expected latency, seconds.
        request_id: The caller's id, if one was given.
        prompt_class: The class the predictor used.
        cdf: Latency (seconds) -> P(latency <= it), when asked for.
    """

    served_model: str
    model_version: int
    quantiles: Mapping[float, float]
    mean: float
    request_id: str | None = None
    prompt_class: str = "none"
    cdf: Mapping[float, float] | None = field(default=None)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Forecast:
        """Read one forecast of the service's answer."""
        q = sorted((float(k), float(v)) for k, v in data["quantiles"].items())
        cdf = data.get("cdf")
        return cls(
            served_model=str(data["served_model"]),
            model_version=int(data["model_version"]),
            quantiles=dict(q),
            mean=float(data["mean"]),
            request_id=data.get("request_id"),
            prompt_class=str(data.get("prompt_class", "none")),
            cdf=None if cdf is None else {float(k): float(v) for k, v in cdf.items()},
        )

    def levels(self) -> F64:
        """The quantile levels ``(K,)``, increasing."""
        return np.fromiter(self.quantiles.keys(), dtype=np.float64)

    def values(self) -> F64:
        """The latencies at :meth:`levels`, seconds ``(K,)``."""
        return np.fromiter(self.quantiles.values(), dtype=np.float64)


def _body(items: Sequence[ForecastItem], quantiles: Sequence[float], cdf_at: Any) -> bytes:
    import orjson

    payload: dict[str, Any] = {"requests": [i.to_json() for i in items], "quantiles": quantiles}
    if cdf_at is not None:
        payload["cdf_at"] = list(cdf_at)
    return orjson.dumps(payload)


def _read(response: httpx.Response) -> list[Forecast]:
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise TailcastHTTPError(response.status_code, detail)
    return [Forecast.from_json(f) for f in response.json()["forecasts"]]


class _Base:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 1.0,
        max_batch: int = 1000,
        transport: Any = None,
    ) -> None:
        if timeout_s <= 0 or max_batch < 1:
            raise ValueError(f"need timeout_s > 0 and max_batch >= 1 ({timeout_s}, {max_batch})")
        self.base_url = base_url.rstrip("/")
        self.max_batch = max_batch
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        self._open(
            {
                "base_url": self.base_url,
                "timeout": httpx.Timeout(timeout_s),
                "headers": headers,
                "transport": transport,
            }
        )

    def _open(self, options: dict[str, Any]) -> None:
        raise NotImplementedError

    def _bodies(
        self, items: Sequence[ForecastItem], quantiles: Sequence[float], cdf_at: Any
    ) -> Iterator[bytes]:
        for i in range(0, len(items), self.max_batch):
            yield _body(items[i : i + self.max_batch], quantiles, cdf_at)

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            raise TailcastUnavailableError(f"{self.base_url}: {exc!r}") from exc


class TailcastClient(_Base):
    """Blocking client (one connection pool; close it, or use it as a context manager).

    Args:
        base_url: The service, e.g. ``http://127.0.0.1:8000``.
        token: Bearer token, when the service has one.
        timeout_s: Timeout of every call (connect, read, write, pool), seconds.
        max_batch: Items per ``POST /v1/forecasts`` call; longer lists are split.
        transport: An ``httpx`` transport (``httpx.AsyncBaseTransport`` for the async
            client), for tests or custom networking.
    """

    _http: httpx.Client

    def _open(self, options: dict[str, Any]) -> None:
        self._http = httpx.Client(**options)

    def forecasts(
        self,
        items: Sequence[ForecastItem],
        quantiles: Sequence[float] = GRID,
        cdf_at: Sequence[float] | None = None,
    ) -> list[Forecast]:
        """Forecast every item (bulk), one answer per item in order.

        Raises:
            TailcastHTTPError: The service refused the call (404 unknown served model,
                422 invalid item, ...).
            TailcastUnavailableError: Not reachable, or no answer within the timeout.
        """
        out: list[Forecast] = []
        for body in self._bodies(items, quantiles, cdf_at):
            with self._unavailable():
                response = self._http.post("/v1/forecasts", content=body)
            out.extend(_read(response))
        return out

    def forecast(
        self,
        item: ForecastItem,
        quantiles: Sequence[float] = GRID,
        cdf_at: Sequence[float] | None = None,
    ) -> Forecast:
        """Forecast one item (see :meth:`forecasts`)."""
        return self.forecasts([item], quantiles, cdf_at)[0]

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncTailcastClient(_Base):
    """Asyncio client; same arguments and answers as :class:`TailcastClient`."""

    _http: httpx.AsyncClient

    def _open(self, options: dict[str, Any]) -> None:
        self._http = httpx.AsyncClient(**options)

    async def forecasts(
        self,
        items: Sequence[ForecastItem],
        quantiles: Sequence[float] = GRID,
        cdf_at: Sequence[float] | None = None,
    ) -> list[Forecast]:
        """Forecast every item (see :meth:`TailcastClient.forecasts`)."""
        answers: list[Forecast] = []
        for body in self._bodies(items, quantiles, cdf_at):
            with self._unavailable():
                response = await self._http.post("/v1/forecasts", content=body)
            answers.extend(_read(response))
        return answers

    async def forecast(
        self,
        item: ForecastItem,
        quantiles: Sequence[float] = GRID,
        cdf_at: Sequence[float] | None = None,
    ) -> Forecast:
        """Forecast one item (see :meth:`TailcastClient.forecasts`)."""
        return (await self.forecasts([item], quantiles, cdf_at))[0]

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
