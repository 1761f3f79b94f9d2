"""Delivering the outbox: signed POSTs, exponential backoff, at least once.

A :class:`Deliverer` drains the durable outbox (:class:`~drift._outbox.AlertOutbox`,
implemented by the feature store): it claims due alerts for a lease (so deliverers of
several replicas on one store never send the same alert at the same time), POSTs each
with its signature; a 2xx marks it delivered, anything else (status, refused
connection, timeout) logs the attempt and reschedules it ``base_delay_s * 2**(attempt -
1)`` later (capped at ``max_delay_s``). Because the outbox lives in the store, a new
deliverer after a restart picks up whatever was still pending, and an alert claimed by
a deliverer that died is due again once its lease ends (delivery is at least once).

Example:
    >>> [Deliverer.backoff(a, 2.0, 60.0) for a in (1, 2, 3, 6, 7)]
    [2.0, 4.0, 8.0, 60.0, 60.0]
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from core.drift import AlertMessage, DeliveryAttempt
from drift._outbox import AlertOutbox
from drift._webhook import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def replica_id() -> str:
    """A new id of this process among the store's users: ``hostname-pid-random``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class Deliverer:
    """Sends the pending alerts of an outbox.

    Args:
        outbox: The durable outbox (the feature store).
        secret: HMAC key; ``None`` sends unsigned alerts (no signature header).
        timeout_s: Per-request timeout in seconds.
        base_delay_s: Delay after the first failed attempt, seconds; doubles each time.
        max_delay_s: Cap of the delay between attempts, seconds.
        max_attempts: Give up (the alert stays in the log, undelivered, no longer due)
            after this many attempts; ``None`` retries forever.
        clock: Source of "now" (UTC).
        holder: Who claims the alerts (default: a new :func:`replica_id`).
        lease_s: Seconds a claim lasts. Alerts are claimed a few at a time (at most
            ``lease_s / (2 * timeout_s)``), so a claim never runs out while its alerts
            wait for the ones before them.
    """

    def __init__(
        self,
        outbox: AlertOutbox,
        secret: str | None = None,
        *,
        timeout_s: float = 5.0,
        base_delay_s: float = 1.0,
        max_delay_s: float = 3600.0,
        max_attempts: int | None = None,
        clock: Clock = _utcnow,
        holder: str | None = None,
        lease_s: float = 60.0,
    ) -> None:
        self.outbox = outbox
        self.secret = secret
        self.timeout_s = timeout_s
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.max_attempts = max_attempts
        self.clock = clock
        self.holder = holder or replica_id()
        self.lease_s = lease_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def backoff(attempt: int, base_delay_s: float, max_delay_s: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(max_delay_s, base_delay_s * 2.0 ** (attempt - 1)))

    def _post(self, alert: AlertMessage) -> tuple[int | None, str | None]:
        data = alert.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tailcast-drift/1",
            EVENT_HEADER: alert.event_id,
            DELIVERY_HEADER: alert.alert_id,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(data, self.secret)
        req = urllib.request.Request(alert.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                code = int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code), f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return code, None if 200 <= code < 300 else f"HTTP {code}"

    def deliver(self, alert: AlertMessage) -> DeliveryAttempt:
        """Attempt one alert now; log the attempt and mark or reschedule it."""
        start = time.perf_counter()
        at = self.clock()
        code, error = self._post(alert)
        n = alert.attempts + 1
        ok = error is None
        attempt = DeliveryAttempt(
            alert_id=alert.alert_id,
            attempt=n,
            at=at,
            status_code=code,
            error=error,
            delivered=ok,
            duration_s=time.perf_counter() - start,
        )
        if ok:
            self.outbox.record_attempt(attempt, None)
            self.outbox.mark_delivered(alert.alert_id, at)
        else:
            give_up = self.max_attempts is not None and n >= self.max_attempts
            delay = self.backoff(n, self.base_delay_s, self.max_delay_s)
            self.outbox.record_attempt(attempt, None if give_up else at + timedelta(seconds=delay))
        return attempt

    def deliver_due(self, limit: int = 100) -> list[DeliveryAttempt]:
        """One pass: claim and attempt the alerts due now, at most ``limit``; the attempts."""
        chunk = max(1, min(limit, int(self.lease_s / (2.0 * self.timeout_s))))
        attempts: list[DeliveryAttempt] = []
        while len(attempts) < limit:
            n = min(chunk, limit - len(attempts))
            claimed = self.outbox.claim_alerts(self.clock(), self.holder, self.lease_s, n)
            attempts += [self.deliver(a) for a in claimed]
            if len(claimed) < n:
                break
        return attempts

    # --- background thread --------------------------------------------------------
    def start(self, poll_s: float = 1.0) -> None:
        """Deliver in a daemon thread, a pass every ``poll_s`` seconds (or on :meth:`wake`)."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                # Keep delivering whatever fails: every attempt is logged in the outbox.
                with contextlib.suppress(Exception):
                    self.deliver_due()
                self._wake.wait(poll_s)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="tailcast-drift-deliverer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Start a pass now (e.g. right after enqueueing)."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread (the outbox keeps whatever is still pending)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
