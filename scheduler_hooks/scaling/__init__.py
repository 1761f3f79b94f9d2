"""Scalers: how many replicas to run, decided every few seconds with a cooldown.

By CLI name: ``none`` (fixed cluster), ``utilization`` (the baseline: HPA's target
utilisation rule or step thresholds, plus a queue threshold) and ``forecast``
(replicas needed so the predicted tail latency of queued + arriving work over the cold
start meets the SLO, from a Monte Carlo of the forecast draws).
"""

from __future__ import annotations

from typing import Any

from scheduler_hooks.scaling._base import Scaler, ScalingView
from scheduler_hooks.scaling._forecast import ForecastScaler
from scheduler_hooks.scaling._none import NoScaler
from scheduler_hooks.scaling._utilization import UtilizationScaler

SCALERS: dict[str, type[Scaler]] = {
    cls.name: cls for cls in (NoScaler, UtilizationScaler, ForecastScaler)
}
"""Every scaler by CLI name."""


def make_scaler(name: str, **options: Any) -> Scaler:
    """Build the scaler called ``name``; options its constructor does not take are dropped.

    Raises:
        ValueError: Unknown name (the message lists the known ones).
    """
    if name not in SCALERS:
        raise ValueError(f"unknown scaler {name!r}; known scalers: {', '.join(SCALERS)}")
    cls = SCALERS[name]
    import inspect

    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted})


__all__ = [
    "SCALERS",
    "ForecastScaler",
    "NoScaler",
    "Scaler",
    "ScalingView",
    "UtilizationScaler",
    "make_scaler",
]
