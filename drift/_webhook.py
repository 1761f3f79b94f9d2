"""Drift alert webhooks: the JSON body and its HMAC-SHA256 signature.

The body is built once, stored in the outbox and sent byte for byte on every attempt,
so a receiver verifies the signature over exactly what it received and can drop
duplicates (delivery is at least once) by ``event.event_id``.

Example:
    >>> sig = sign(b'{"a": 1}', "s3cret")
    >>> sig.startswith("sha256="), verify(b'{"a": 1}', "s3cret", sig), verify(b"{}", "s3cret", sig)
    (True, True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import json

from core.drift import DriftEvent

SIGNATURE_HEADER = "X-Tailcast-Signature"
EVENT_HEADER = "X-Tailcast-Event"
DELIVERY_HEADER = "X-Tailcast-Delivery"
ALERT_TYPE = "tailcast.drift.v1"


def alert_body(event: DriftEvent) -> str:
    """The JSON text POSTed for ``event``: ``{"type", "event": {...}}``, keys sorted."""
    payload = {"type": ALERT_TYPE, "event": event.model_dump(mode="json")}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def sign(body: bytes, secret: str) -> str:
    """Signature header value ``sha256=<hex HMAC-SHA256 of body keyed by secret>``."""
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def verify(body: bytes, secret: str, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    return hmac.compare_digest(sign(body, secret), header.strip())
