"""Prometheus metrics of one service instance (its own registry, never the global one).

Example:
    >>> m = ServiceMetrics()
    >>> m.forecasts.labels(served_model="m").inc(3)
    >>> b"tailcast_forecasts_total" in m.render()
    True
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from serving._scaling import ScalingGauges

__all__ = ["CONTENT_TYPE", "ServiceMetrics"]

#: Request latency buckets, seconds: fine below 10 ms, where a router's budget lies.
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
)  # fmt: skip


class ServiceMetrics:
    """Every metric the service exports.

    Attributes:
        registry: The collector registry ``/metrics`` renders.
        request_seconds: Request latency by endpoint (route template) and method, seconds.
        requests: Requests by endpoint, method and status code.
        forecasts: Forecasts served, by served model.
        completions_accepted: Completion records newly stored.
        completions_duplicates: Completion records already stored (idempotent retries).
        completions_rejected: Completion records rejected by validation.
        model_version: 1 for the (served_model, version) being served.
        model_loaded_at: When each served model's predictor was loaded, Unix seconds.
        model_swaps: Predictor swaps after the first load, by served model.
        registry_errors: Failed registry polls or loads.
        registry_up: 1 when the last registry poll succeeded, else 0.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            "tailcast_http_request_duration_seconds",
            "HTTP request latency by endpoint, seconds.",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.requests = Counter(
            "tailcast_http_requests",
            "HTTP requests by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.forecasts = Counter(
            "tailcast_forecasts", "Forecasts served.", ["served_model"], registry=r
        )
        self.completions_accepted = Counter(
            "tailcast_completions_accepted", "Completion records newly stored.", registry=r
        )
        self.completions_duplicates = Counter(
            "tailcast_completions_duplicates",
            "Completion records already stored (idempotent retries).",
            registry=r,
        )
        self.completions_rejected = Counter(
            "tailcast_completions_rejected",
            "Completion records rejected by validation.",
            registry=r,
        )
        self.model_version = Gauge(
            "tailcast_model_version_info",
            "1 for the registry version each served model answers with.",
            ["served_model", "version"],
            registry=r,
        )
        self.model_loaded_at = Gauge(
            "tailcast_model_loaded_timestamp_seconds",
            "When the served predictor was loaded, Unix seconds.",
            ["served_model"],
            registry=r,
        )
        self.model_swaps = Counter(
            "tailcast_model_swaps",
            "Predictor swaps after the first load.",
            ["served_model"],
            registry=r,
        )
        self.registry_errors = Counter(
            "tailcast_registry_errors", "Failed registry polls or model loads.", registry=r
        )
        self.registry_up = Gauge(
            "tailcast_registry_up", "1 when the last registry poll succeeded, else 0.", registry=r
        )
        self.scaling = ScalingGauges(r)  # the scaling and AIBrix hooks' numbers

    def model_served(
        self, served_model: str, version: int, previous: int | None, loaded_at_s: float
    ) -> None:
        """Record that ``served_model`` now answers with ``version`` (was ``previous``)."""
        if previous is not None and previous != version:
            self.model_version.remove(served_model, str(previous))
            self.model_swaps.labels(served_model=served_model).inc()
        self.model_version.labels(served_model=served_model, version=str(version)).set(1)
        self.model_loaded_at.labels(served_model=served_model).set(loaded_at_s)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
