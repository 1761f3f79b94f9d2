"""The router contract: pick one replica for one request, from the replicas' state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from scheduler_hooks._book import ForecastBook
from scheduler_hooks._state import ReplicaState


class Truth(Protocol):
    """What only an oracle may know: true service times and end times."""

    def work(self, request: int, device: int) -> float:
        """Service time of ``request`` on device type ``device`` at nominal speed, seconds."""
        ...

    def end(self, request: int) -> float:
        """When running ``request`` finishes (absolute seconds)."""
        ...


@dataclass
class RoutingContext:
    """Everything a router may read besides the replicas.

    Attributes:
        now: Current time, seconds.
        rng: Seeded generator for randomized policies.
        book: Forecast draws (forecast-driven routers); ``None`` when absent.
        truth: True service and end times (the oracle only); ``None`` when absent.
    """

    now: float
    rng: np.random.Generator
    book: ForecastBook | None = None
    truth: Truth | None = None


class Router(ABC):
    """A routing policy.

    Subclasses set :attr:`name` (the CLI name) and implement :meth:`choose`. A router
    may keep state between calls (``round_robin`` does); build one per simulation.
    """

    name: ClassVar[str]
    needs_forecasts: ClassVar[bool] = False
    needs_truth: ClassVar[bool] = False

    @abstractmethod
    def choose(self, request: int, replicas: Sequence[ReplicaState], ctx: RoutingContext) -> int:
        """Pick a replica for ``request``.

        Args:
            request: The request id (indexes the forecast book and the truth).
            replicas: Candidate replicas (non-empty), all accepting requests.
            ctx: Time, randomness, forecasts and (oracle only) truth.

        Returns:
            The index of the chosen replica in ``replicas``.
        """

    def reset(self) -> None:  # noqa: B027 (optional hook, deliberately not abstract)
        """Forget state kept between calls (default: nothing to forget)."""


def argmin_first(values: Sequence[float] | np.ndarray) -> int:
    """Index of the smallest value; ties go to the first (deterministic)."""
    return int(np.argmin(np.asarray(values, dtype=np.float64)))
