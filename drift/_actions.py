"""Acting on drift events: store them, queue their alerts, request retraining.

Example:
    >>> from datetime import UTC, datetime
    >>> from core.drift import DriftEvent, DriftGroup
    >>> class Memory:
    ...     def __init__(self): self.events, self.alerts = {}, []
    ...     def record_drift_event(self, e):
    ...         new = e.event_id not in self.events
    ...         self.events[e.event_id] = e
    ...         return new
    ...     def enqueue_alert(self, event_id, url, body, now):
    ...         self.alerts.append(url); return event_id
    >>> asked = []
    >>> r = DriftResponder(Memory(), ["http://a", "http://b"], RetrainDebouncer(60),
    ...                    lambda model, event: asked.append(model))
    >>> g = DriftGroup(served_model="m", prompt_class="default", device="gpu")
    >>> e = DriftEvent.create(g, "ood", datetime(2026, 1, 1, tzinfo=UTC), "1", 300, {})
    >>> r.handle([e, e]), r.sink.alerts, asked
    (1, ['http://a', 'http://b'], ['m'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from core.drift import DriftEvent
from drift._debounce import RetrainDebouncer
from drift._outbox import DriftEventSink
from drift._webhook import alert_body

RetrainCallback = Callable[[str, DriftEvent], None]


class DriftResponder:
    """Turns monitor events into store rows, outbox alerts and retraining requests.

    Args:
        sink: Where events and alerts go (the feature store).
        webhook_urls: Every URL an alert is POSTed to.
        debouncer: Cooldown of retraining requests; ``None``: never request retraining.
        on_retrain: Called as ``on_retrain(served_model, event)`` for a granted request
            (injected by pipelines; drift/ does not know how to retrain).
        on_alert: Called after new alerts were queued (e.g. ``Deliverer.wake``).
    """

    def __init__(
        self,
        sink: DriftEventSink,
        webhook_urls: Sequence[str] = (),
        debouncer: RetrainDebouncer | None = None,
        on_retrain: RetrainCallback | None = None,
        on_alert: Callable[[], None] | None = None,
    ) -> None:
        self.sink = sink
        self.webhook_urls = list(webhook_urls)
        self.debouncer = debouncer
        self.on_retrain = on_retrain
        self.on_alert = on_alert

    def handle(self, events: Iterable[DriftEvent]) -> int:
        """Act on ``events``; how many were new (already-stored events are skipped)."""
        new = 0
        for event in events:
            if not self.sink.record_drift_event(event):
                continue
            new += 1
            now = datetime.now(UTC)
            body = alert_body(event)
            for url in self.webhook_urls:
                self.sink.enqueue_alert(event.event_id, url, body, now)
            if self.webhook_urls and self.on_alert is not None:
                self.on_alert()
            if (
                event.kind == "ood"
                and self.debouncer is not None
                and self.on_retrain is not None
                and self.debouncer.should_request(event.group.served_model, event.at)
            ):
                self.on_retrain(event.group.served_model, event)
        return new
