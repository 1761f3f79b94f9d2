"""``utilization``: the threshold baseline (busy slots and queue length)."""

from __future__ import annotations

from typing import ClassVar

from scheduler_hooks.scaling._base import Scaler, ScalingView


class UtilizationScaler(Scaler):
    """Add a replica when busy or queued, remove one when idle (HPA-style thresholds).

    Utilisation = busy slots / slots over serving replicas, averaged over the recent
    window when the view carries it (as HPA averages its metric). Scale up by one when it is
    above ``high`` or more than ``queue_high`` requests wait per replica; down by one
    when it is below ``low`` and nothing waits.

    >>> from scheduler_hooks._state import ReplicaState
    >>> busy = [ReplicaState(0, running=[1]), ReplicaState(0, running=[2])]
    >>> UtilizationScaler().target(ScalingView(0.0, busy, 0, 1.0, 1, 0))
    3
    """

    name: ClassVar[str] = "utilization"

    def __init__(
        self,
        min_replicas: int = 1,
        max_replicas: int = 64,
        cooldown_s: float = 30.0,
        stabilization_s: float = 300.0,
        high: float = 0.8,
        low: float = 0.3,
        queue_high: float = 1.0,
    ) -> None:
        super().__init__(min_replicas, max_replicas, cooldown_s, stabilization_s)
        self.high, self.low, self.queue_high = high, low, queue_high

    def target(self, view: ScalingView) -> int:
        """Current count plus or minus one."""
        current = len(view.replicas) + view.pending
        if not view.replicas:
            return current + 1
        util = view.utilization
        if util is None:
            util = sum(r.busy for r in view.replicas) / sum(r.slots for r in view.replicas)
        waiting = sum(len(r.queue) for r in view.replicas) / len(view.replicas)
        if util > self.high or waiting > self.queue_high:
            return current + 1
        if util < self.low and waiting == 0:
            return current - 1
        return current
