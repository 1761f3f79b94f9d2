"""Seeded PIT streams shared by the drift tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
from scipy.stats import norm  # type: ignore[import-untyped]

from core.drift import DriftEvent, DriftGroup, DriftObservation
from drift import DriftMonitor

T0 = datetime(2026, 4, 11, 7, 0, tzinfo=UTC)
GROUP = DriftGroup(served_model="deepseek-chat", prompt_class="default", device="deepseek-api")


def shifted(v: npt.NDArray[np.float64], delta: float) -> npt.NDArray[np.float64]:
    """PIT values of a forecast whose z-score is ``delta`` too low (observed slower)."""
    return np.asarray(norm.cdf(norm.ppf(v) + delta), dtype=np.float64)


def uniform_then_shifted(seed: int, before: int, after: int, delta: float) -> list[float]:
    """``before`` calibrated u values, then ``after`` from a forecast off by ``delta`` sigma."""
    v = np.random.default_rng(seed).uniform(size=before + after)
    return [float(x) for x in np.r_[v[:before], shifted(v[before:], delta)]]


def observations(
    u: Sequence[float],
    pinball: Sequence[float] | None = None,
    group: DriftGroup = GROUP,
    version: str | None = "1",
) -> list[DriftObservation]:
    """One observation per u value, a second apart from :data:`T0`."""
    losses = pinball if pinball is not None else [1.0] * len(u)
    return [
        DriftObservation(
            group=group,
            u=x,
            pinball=p,
            model_version=version,
            observed_at=T0 + timedelta(seconds=i),
        )
        for i, (x, p) in enumerate(zip(u, losses, strict=True))
    ]


def alarms(monitor: DriftMonitor, obs: Sequence[DriftObservation]) -> list[tuple[int, str]]:
    """``(1-based index of the observation, kind)`` of every event the stream causes."""
    out: list[tuple[int, str]] = []
    for i, o in enumerate(obs, start=1):
        events: list[DriftEvent] = monitor.observe(o)
        out.extend((i, e.kind) for e in events)
    return out
