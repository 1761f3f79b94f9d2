"""Prometheus view of the drift monitor: group states, judged completions, retrain requests.

A custom collector reads the running :class:`~serving._drift.DriftService` at scrape
time, so the numbers are never stale and nothing is updated on the hot path. It is
registered once per app on the app's own registry (never the global one).

Example:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> registry = CollectorRegistry()
    >>> registry.register(DriftCollector(lambda: None))
    >>> b"tailcast_drift_monitor_up 0.0" in generate_latest(registry)
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from fastapi import FastAPI

    from serving._drift import DriftService

__all__ = ["DriftCollector"]

_GROUP = ["served_model", "prompt_class", "device"]

logger = logging.getLogger(__name__)


class DriftCollector(Collector):
    """Exports the drift monitor's state.

    Metrics:
        ``tailcast_drift_monitor_up``: 1 while a drift monitor runs, else 0.
        ``tailcast_drift_group_ood``: 1 when the (served model, prompt class, device)
            group is out of distribution, 0 when ok.
        ``tailcast_drift_group_observations``: completions judged in the group since it
            was created or last reset (a new champion resets it).
        ``tailcast_drift_completions_judged_total``: completions judged (PIT computed).
        ``tailcast_drift_failures_total``: batches the monitor failed to judge.
        ``tailcast_drift_retrain_requests_total``: retraining requests granted by the
            debouncer, by served model.
        ``tailcast_drift_judge``: 1 while this replica is the drift judge, else 0.
        ``tailcast_drift_inbox_backlog``: completions waiting in the store's drift inbox
            (one count query per scrape; absent when the store cannot answer).

    Args:
        source: Returns the running drift service, or ``None`` before start/after stop.
    """

    def __init__(self, source: Callable[[], DriftService | None]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families (called by the registry on every scrape)."""
        drift = self._source()
        up = GaugeMetricFamily("tailcast_drift_monitor_up", "1 while a drift monitor runs.")
        up.add_metric([], 0.0 if drift is None else 1.0)
        yield up
        if drift is None:
            return
        yield from _judge_metrics(drift)
        ood = GaugeMetricFamily(
            "tailcast_drift_group_ood", "1 when the group is out of distribution.", labels=_GROUP
        )
        count = GaugeMetricFamily(
            "tailcast_drift_group_observations",
            "Completions judged in the group since it was created or reset.",
            labels=_GROUP,
        )
        for status in drift.monitor.states():
            g = status.group
            labels = [g.served_model, g.prompt_class, g.device]
            ood.add_metric(labels, 1.0 if status.state == "ood" else 0.0)
            count.add_metric(labels, float(status.n))
        yield ood
        yield count
        yield CounterMetricFamily(
            "tailcast_drift_completions_judged",
            "Completions judged by the drift monitor.",
            value=float(drift.observed),
        )
        yield CounterMetricFamily(
            "tailcast_drift_failures",
            "Completion batches the drift monitor failed to judge.",
            value=float(drift.failures),
        )
        retrains = CounterMetricFamily(
            "tailcast_drift_retrain_requests",
            "Retraining requests granted by the debouncer.",
            labels=["served_model"],
        )
        for served_model, n in sorted(drift.retrain_requests.items()):
            retrains.add_metric([served_model], float(n))
        yield retrains
        done = CounterMetricFamily(
            "tailcast_drift_retrainings",
            "Drift-triggered retrainings this replica ran, by outcome (promoted, "
            "not_promoted, skipped: another process was retraining, failed).",
            labels=["served_model", "outcome"],
        )
        for (served_model, outcome), n in sorted(drift.retrain_outcomes.items()):
            done.add_metric([served_model, outcome], float(n))
        yield done


def _judge_metrics(drift: DriftService) -> Iterator[Metric]:
    """Whether this replica judges, and the inbox backlog (shared by every replica)."""
    judge = GaugeMetricFamily("tailcast_drift_judge", "1 while this replica is the drift judge.")
    judge.add_metric([], 1.0 if drift.is_judge else 0.0)
    yield judge
    try:
        backlog = drift.store.drift_inbox_size()
    except Exception:  # a scrape must not fail because the store is briefly unreachable
        logger.warning("cannot read the drift inbox size", exc_info=True)
        return
    yield GaugeMetricFamily(
        "tailcast_drift_inbox_backlog",
        "Completions waiting in the drift inbox to be judged.",
        value=float(backlog),
    )


def record_retraining(app: FastAPI, served_model: str, outcome: str) -> None:
    """Count a drift-triggered retraining's ``outcome`` in the app's drift metrics.

    Args:
        app: The service app (nothing is counted when it runs no drift monitor).
        served_model: The served model retrained.
        outcome: ``promoted``, ``not_promoted``, ``skipped`` or ``failed``.
    """
    drift: DriftService | None = getattr(app.state, "drift", None)
    if drift is not None:
        key = (served_model, outcome)
        drift.retrain_outcomes[key] = drift.retrain_outcomes.get(key, 0) + 1
