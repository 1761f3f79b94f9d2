"""What the simulator replays: arrivals, session dependencies and true service times."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Workload:
    """Requests to replay.

    Attributes:
        arrival: Submission time of each independent request, seconds; for a
            dependent call the time is decided during the run (value ignored).
        parent: The call a request waits for (``-1``: independent). A dependent call
            is submitted ``think`` seconds after its parent completes (agentic
            sessions: the previous call plus its tool time).
        think: Seconds between the parent's completion and this submission.
        work: True service time of each request on each device type at nominal
            speed, seconds, shape ``(n, D)``.
        devices: Device type names, the columns of ``work``.
    """

    arrival: F64
    parent: I64
    think: F64
    work: F64
    devices: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.arrival)
        if self.work.shape != (n, len(self.devices)):
            raise ValueError(f"work must be ({n}, {len(self.devices)}), got {self.work.shape}")
        if len(self.parent) != n or len(self.think) != n:
            raise ValueError("arrival, parent and think must have one value per request")
        if np.any(self.parent >= np.arange(n)):
            raise ValueError("a request's parent must come before it")
        if not np.all(np.isfinite(self.work)) or np.any(self.work <= 0):
            raise ValueError("service times must be finite and > 0")
        roots = self.parent < 0
        if not np.all(np.isfinite(self.arrival[roots])):
            raise ValueError("independent requests need finite arrival times")

    @property
    def n(self) -> int:
        """Number of requests."""
        return len(self.arrival)

    @classmethod
    def independent(cls, arrival: F64, work: F64, devices: tuple[str, ...]) -> Workload:
        """A workload of independent requests (an arrival trace)."""
        n = len(arrival)
        return cls(
            np.asarray(arrival, dtype=np.float64),
            np.full(n, -1, dtype=np.int64),
            np.zeros(n),
            np.asarray(work, dtype=np.float64),
            devices,
        )


def parse_cluster(spec: str) -> tuple[tuple[str, int], ...]:
    """Parse a cluster spec ``device:count[,device:count...]``.

    >>> parse_cluster("a100:4, h100:2")
    (('a100', 4), ('h100', 2))

    Raises:
        ValueError: A malformed part (the message quotes it).
    """
    out: list[tuple[str, int]] = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*:\s*(\d+)\s*", part)
        if m is None or int(m.group(2)) < 1:
            raise ValueError(f"bad cluster part {part!r}; expected device:count, e.g. a100:4")
        out.append((m.group(1).lower(), int(m.group(2))))
    return tuple(out)
