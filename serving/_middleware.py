"""Request metrics as pure ASGI middleware.

Pure ASGI (not ``BaseHTTPMiddleware``) keeps the per-request overhead at a few
microseconds on the hot path.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving._metrics import ServiceMetrics

#: Endpoint label of requests that matched no route (keeps label cardinality bounded).
UNMATCHED = "unmatched"


class MetricsMiddleware:
    """Observe every HTTP request's latency and status under its route template.

    Args:
        app: The wrapped application.
        metrics: Where to record.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # Labelled children by (endpoint, method[, status]): ``labels()`` takes a lock
        # and builds the key on every call; the label sets are few (route templates).
        self._seconds: dict[tuple[str, str], Any] = {}
        self._counts: dict[tuple[str, str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, then record its latency (seconds) and status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = str(getattr(route, "path", UNMATCHED))
            method = str(scope.get("method", ""))
            self._histogram(endpoint, method).observe(time.perf_counter() - start)
            self._counter(endpoint, method, str(status)).inc()

    def _histogram(self, endpoint: str, method: str) -> Any:
        key = (endpoint, method)
        child = self._seconds.get(key)
        if child is None:
            child = self._seconds[key] = self.metrics.request_seconds.labels(endpoint, method)
        return child

    def _counter(self, endpoint: str, method: str, status: str) -> Any:
        key = (endpoint, method, status)
        child = self._counts.get(key)
        if child is None:
            child = self._counts[key] = self.metrics.requests.labels(endpoint, method, status)
        return child
