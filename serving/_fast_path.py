"""A pure-ASGI fast path for ``POST /v1/forecasts``, the call routers make per request.

It answers the hot route before Starlette's router, exception and body-limit layers
and FastAPI's dependency machinery run (about a third of the CPU of a single-request
call), with the same behaviour: the same handler (:func:`serving.routes.forecasts.answer`),
the same error bodies (422 ``{"detail": [...]}`` with field paths, 404/413 ``{"detail":
"..."}``, 413 ``Content Too Large`` for an oversized body) and the same metrics (it sets
``scope["route"]`` so the metrics middleware labels it ``/v1/forecasts``). Every other
request passes through untouched; the FastAPI route stays for the OpenAPI document.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

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


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
