"""Span counters of ``POST /v1/traces``, in the service's own metrics registry.

``tailcast_otlp_spans_total{outcome}`` counts spans by what became of them: ``accepted``
(stored now), ``duplicate`` (stored before), ``rejected`` (malformed or invalid) and
``ignored`` (no GenAI request span). The counters join a service's registry on its
first OTLP request.
"""

from __future__ import annotations

import threading
import weakref

from prometheus_client import CollectorRegistry, Counter

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def span_counter(registry: CollectorRegistry) -> Counter:
    """The ``tailcast_otlp_spans`` counter of ``registry`` (created on first use)."""
    counter = _by_registry.get(registry)
    if counter is None:
        with _lock:
            counter = _by_registry.get(registry)
            if counter is None:
                counter = Counter(
                    "tailcast_otlp_spans",
                    "Spans received on POST /v1/traces, by outcome.",
                    ["outcome"],
                    registry=registry,
                )
                _by_registry[registry] = counter
    return counter


def count_spans(
    registry: CollectorRegistry, *, accepted: int, duplicates: int, rejected: int, ignored: int
) -> None:
    """Add one request's span outcomes to ``registry``'s counter."""
    counter = span_counter(registry)
    for outcome, n in (
        ("accepted", accepted),
        ("duplicate", duplicates),
        ("rejected", rejected),
        ("ignored", ignored),
    ):
        if n:
            counter.labels(outcome=outcome).inc(n)
