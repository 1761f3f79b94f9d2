"""A pure-ASGI fast path for ``POST /v1/forecasts``, the call routers make per request.

It answers the hot route before any of FastAPI's layers run (its error, telemetry and
body-limit middleware, Starlette's router and exception handling, the dependency
machinery): :class:`ServiceAPI` builds its middleware stack as metrics, then this fast
path, then FastAPI's own stack. Same behaviour: the same handler
(:func:`serving.routes.forecasts.answer`), the same error bodies (422 ``{"detail":
[...]}`` with field paths, 404/413 ``{"detail": "..."}``, 413 ``Content Too Large`` for
an oversized body) and the same metrics (it sets ``scope["route"]`` so the metrics
middleware labels it ``/v1/forecasts``). Every other request passes through untouched;
the FastAPI route stays for the OpenAPI document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from serving._metrics import ServiceMetrics
from serving._middleware import MetricsMiddleware
from serving.routes.forecasts import answer

PATH = "/v1/forecasts"
_JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True, slots=True)
class _Route:
    """What the metrics middleware reads from ``scope["route"]``."""

    path: str


_ROUTE = _Route(PATH)


class _TooLargeError(Exception):
    """The body exceeds the limit."""


class ForecastFastPath:
    """Serve ``POST /v1/forecasts`` directly; pass everything else to ``app``.

    Args:
        app: The wrapped application.
        max_body_bytes: Largest body accepted (413 above it).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the hot route, or delegate."""
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        service = getattr(scope["app"].state, "service", None)
        if service is None:  # lifespan not run (never in production): the normal path
            await self.app(scope, receive, send)
            return
        scope["route"] = _ROUTE
        try:
            raw = await self._body(scope, receive)
            status, payload = 200, orjson.dumps(await answer(service, raw))
        except _TooLargeError:
            await _send(send, 413, b"Content Too Large", [(b"content-type", b"text/plain")])
            return
        except RequestValidationError as exc:
            status, payload = 422, orjson.dumps({"detail": jsonable_encoder(exc.errors())})
        except HTTPException as exc:
            status, payload = exc.status_code, orjson.dumps({"detail": exc.detail})
        await _send(send, status, payload, _JSON)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length" and int(value) > self.max_body_bytes:
                raise _TooLargeError
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPException(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class ServiceAPI(FastAPI):
    """FastAPI whose stack is metrics, then the forecast fast path, then FastAPI's own.

    Args:
        metrics: Where :class:`~serving._middleware.MetricsMiddleware` records.
        max_body_bytes: The fast path's body limit (FastAPI's ``max_body_size`` too).
        **kwargs: Passed to :class:`fastapi.FastAPI`.
    """

    def __init__(self, *, metrics: ServiceMetrics, max_body_bytes: int, **kwargs: Any) -> None:
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        super().__init__(max_body_size=max_body_bytes, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the stack; the hot route skips FastAPI's per-call telemetry check.

        FastAPI asks its native OpenTelemetry instrumentation whether it is enabled on
        every request (microseconds); ``POST /v1/forecasts`` goes straight to the stack
        built once (its metrics are tailcast's own, ``tailcast_http_*``).
        """
        stack = self.middleware_stack
        hot = scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST"
        if stack is None or not hot:
            await super().__call__(scope, receive, send)
            return
        if self.root_path:
            scope["root_path"] = self.root_path
        scope["app"] = self
        await stack(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        """FastAPI's stack, wrapped by the fast path and, outermost, the metrics."""
        inner = ForecastFastPath(super().build_middleware_stack(), self.max_body_bytes)
        return MetricsMiddleware(inner, self.metrics)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
