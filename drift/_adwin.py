"""River ADWIN adapter: change detection on a stream of floats (u, or pinball loss).

ADWIN keeps an adaptive window and drops its older part when the means of the two
parts differ significantly. The adapter remembers whether a change was detected and
the window mean, so the monitor can ask "did the level move, and which way?".

Example:
    >>> import numpy as np
    >>> det = AdwinDetector(delta=0.002)
    >>> rng = np.random.default_rng(0)
    >>> stream = np.r_[rng.uniform(size=300), 0.5 + rng.uniform(size=300) / 2]
    >>> hits = [i for i, x in enumerate(stream) if det.update(float(x))]
    >>> hits[0] > 300, det.detections >= 1, round(det.mean, 2)
    (True, True, 0.75)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from functools import cache
from importlib.metadata import version
from typing import Any

from drift._state import AdwinSnapshot

#: The installed river version: ADWIN windows it encoded decode only under it.
RIVER_VERSION = version("river")


@cache
def _adwin_class() -> Any:
    """The ADWIN class of river, imported on first use.

    ``river.drift`` pulls in river's datasets (about a second of imports), which the
    service must not pay before it binds its port.
    """
    from river.drift import ADWIN

    return ADWIN


class AdwinDetector:
    """A river :class:`~river.drift.ADWIN` with a memory of its detections.

    Args:
        delta: ADWIN's confidence parameter (smaller: fewer false detections).
        clock: How often (in updates) ADWIN checks for a change.
    """

    def __init__(self, delta: float = 0.002, clock: int = 32) -> None:
        self._adwin = _adwin_class()(delta=delta, clock=clock)
        self.delta = delta
        self.clock = clock
        self.detections = 0
        self.last_detection: int | None = None
        self.n = 0

    def update(self, x: float) -> bool:
        """Feed one value; ``True`` when ADWIN detected a change at this value."""
        self._adwin.update(x)
        self.n += 1
        if self._adwin.drift_detected:
            self.detections += 1
            self.last_detection = self.n
            return True
        return False

    @property
    def mean(self) -> float:
        """Mean of ADWIN's current window (0.0 before any update)."""
        return float(self._adwin.estimation)

    @property
    def width(self) -> int:
        """Length of ADWIN's current window."""
        return int(self._adwin.width)

    def snapshot(self) -> AdwinSnapshot:
        """The detector's state, ADWIN's window in river's own encoding (not pickle)."""
        raw: bytes = self._adwin._helper.__getstate__()
        return AdwinSnapshot(
            n=self.n,
            detections=self.detections,
            last_detection=self.last_detection,
            drift_detected=bool(self._adwin.drift_detected),
            delta=self.delta,
            clock=self.clock,
            river=RIVER_VERSION,
            window=base64.b64encode(raw).decode("ascii"),
        )

    @classmethod
    def restore(
        cls, snap: AdwinSnapshot, delta: float, clock: int = 32, replay: Iterable[float] = ()
    ) -> AdwinDetector:
        """A detector continuing ``snap``.

        ADWIN's window is decoded when ``snap`` was written by this river version with
        the same ``delta`` and ``clock``; otherwise (or when it cannot be decoded) ADWIN
        is rebuilt from ``replay`` (the group's bounded window, oldest first), an
        approximation of the lost longer window. Counts and the last detection are kept.
        """
        det = cls(delta, clock)
        det.n, det.detections, det.last_detection = snap.n, snap.detections, snap.last_detection
        same = (snap.river, snap.delta, snap.clock) == (RIVER_VERSION, delta, clock)
        if same and det._decode(snap.window):
            det._adwin._drift_detected = snap.drift_detected
            return det
        for x in replay:
            det._adwin.update(x)
        det._adwin._drift_detected = False
        return det

    def _decode(self, window: str) -> bool:
        """Load ADWIN's window from river's encoding; whether that worked."""
        try:
            raw = base64.b64decode(window.encode("ascii"), validate=True)
            self._adwin._helper.__setstate__(raw)
        except (ValueError, binascii.Error):
            return False
        except BaseException as exc:  # river's Rust decoder panics on a malformed window
            if type(exc).__name__ != "PanicException":
                raise
            self._adwin = _adwin_class()(delta=self.delta, clock=self.clock)
            return False
        return True
