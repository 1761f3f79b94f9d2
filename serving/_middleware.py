"""Request metrics as pure ASGI middleware.

Pure ASGI (not ``BaseHTTPMiddleware``) keeps the per-request overhead at a few
microseconds on the hot path.
"""

from __future__ import annotations

import time

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
            self.metrics.request_seconds.labels(endpoint, method).observe(
                time.perf_counter() - start
            )
            self.metrics.requests.labels(endpoint, method, str(status)).inc()
