"""The state of one replica as policies see it (pure data, shared by the simulator)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(eq=False)
class ReplicaState:
    """One serving replica: a device type with ``slots`` concurrent requests and a FCFS queue.

    Attributes:
        device: Index of the replica's device type (into the forecast's device axis).
        slots: Requests served at once (the continuous-batching limit).
        speed: Speed multiplier (1.0 nominal; 0.5 serves at half speed). Forecast-driven
            policies do not read it: a slowed replica is what a stale predictor misses.
        running: Request ids in service.
        started: When each running request started, seconds (same order as ``running``).
        queue: Waiting request ids, first come first served.
        name: Display name (e.g. ``a100#2``).
        accepting: False while draining or cold-starting: routers skip it.
    """

    device: int
    slots: int = 1
    speed: float = 1.0
    running: list[int] = field(default_factory=list)
    started: list[float] = field(default_factory=list)
    queue: deque[int] = field(default_factory=deque)
    name: str = ""
    accepting: bool = True

    @property
    def outstanding(self) -> int:
        """Requests running or waiting."""
        return len(self.running) + len(self.queue)

    @property
    def busy(self) -> int:
        """Slots in use."""
        return len(self.running)

    def elapsed(self, now: float) -> list[float]:
        """Seconds each running request has been in service."""
        return [now - s for s in self.started]
