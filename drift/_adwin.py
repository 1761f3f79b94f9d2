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

from river.drift import ADWIN


class AdwinDetector:
    """A river :class:`~river.drift.ADWIN` with a memory of its detections.

    Args:
        delta: ADWIN's confidence parameter (smaller: fewer false detections).
        clock: How often (in updates) ADWIN checks for a change.
    """

    def __init__(self, delta: float = 0.002, clock: int = 32) -> None:
        self._adwin = ADWIN(delta=delta, clock=clock)  # type: ignore[no-untyped-call]
        self.detections = 0
        self.last_detection: int | None = None
        self.n = 0

    def update(self, x: float) -> bool:
        """Feed one value; ``True`` when ADWIN detected a change at this value."""
        self._adwin.update(x)  # type: ignore[no-untyped-call]
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
