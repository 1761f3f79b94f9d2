"""``none``: a fixed cluster."""

from __future__ import annotations

from typing import ClassVar

from scheduler_hooks.scaling._base import Scaler, ScalingView


class NoScaler(Scaler):
    """Keeps the current number of replicas."""

    name: ClassVar[str] = "none"

    def target(self, view: ScalingView) -> int:
        """The current count (serving + pending)."""
        return len(view.replicas) + view.pending
