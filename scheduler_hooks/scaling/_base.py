"""The scaler contract: how many replicas the cluster should have now."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from scheduler_hooks._book import ForecastBook
from scheduler_hooks._state import ReplicaState


@dataclass
class ScalingView:
    """What a scaler may read.

    Attributes:
        now: Current time, seconds.
        replicas: Replicas serving (accepting) now.
        pending: Replicas cold-starting (already paid for, not yet serving).
        arrival_rate: Requests per second over the recent window.
        slots: Slots of the replica type a scale-up adds.
        device: Device type index a scale-up adds.
        book: Forecast draws (the ``forecast`` scaler); ``None`` when absent.
        recent: Ids of requests that arrived in the recent window.
        recent_arrivals: Their arrival times, seconds (same order; may be empty).
        utilization: Busy slots / slots of the serving replicas, time-averaged over the
            recent window (``None``: unknown; scalers then read the instant state).
        scale_down: Which replicas the cluster gives up on a scale-down (``replicas``
            are in order of addition): ``least_loaded`` (the fewest outstanding
            requests), ``newest`` (cold-starting ones, then the most recently added) or
            ``pending_first`` (cold-starting ones, then the least loaded).
    """

    now: float
    replicas: Sequence[ReplicaState]
    pending: int
    arrival_rate: float
    slots: int
    device: int
    book: ForecastBook | None = None
    recent: Sequence[int] = ()
    recent_arrivals: Sequence[float] = ()
    utilization: float | None = None
    scale_down: Literal["least_loaded", "newest", "pending_first"] = "least_loaded"


class Scaler(ABC):
    """A scaling policy with a cooldown.

    Args:
        min_replicas: Never fewer (serving + pending).
        max_replicas: Never more (the replica budget).
        cooldown_s: Seconds after a change during which no further change is made.
        stabilization_s: Window of past wishes a scale-down respects.
    """

    name: ClassVar[str]
    needs_forecasts: ClassVar[bool] = False

    def __init__(
        self,
        min_replicas: int = 1,
        max_replicas: int = 64,
        cooldown_s: float = 30.0,
        stabilization_s: float = 300.0,
    ) -> None:
        if not 1 <= min_replicas <= max_replicas:
            raise ValueError(
                f"need 1 <= min_replicas <= max_replicas, got {min_replicas}, {max_replicas}"
            )
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.cooldown_s, self.stabilization_s = cooldown_s, stabilization_s
        self._last_change = -float("inf")
        self._wishes: deque[tuple[float, int]] = deque()

    def desired(self, view: ScalingView) -> int:
        """Replicas wanted (serving + pending), clipped to the budget.

        Held during the cooldown after a change; a scale-down goes only to the highest
        wish of the last ``stabilization_s`` seconds (as Kubernetes' HPA does), so a
        short lull does not give away replicas a burst will need after a cold start.
        """
        current = len(view.replicas) + view.pending
        if view.now - self._last_change < self.cooldown_s:
            return current
        want = min(max(self.target(view), self.min_replicas), self.max_replicas)
        self._wishes.append((view.now, want))
        while self._wishes and self._wishes[0][0] < view.now - self.stabilization_s:
            self._wishes.popleft()
        if want < current:
            want = min(current, max(w for _, w in self._wishes))
        if want != current:
            self._last_change = view.now
        return want

    @abstractmethod
    def target(self, view: ScalingView) -> int:
        """The policy's unclipped wish (serving + pending)."""
