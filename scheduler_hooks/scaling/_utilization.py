"""``utilization``: the baseline: busy-slot utilisation and queue thresholds (HPA-style)."""

from __future__ import annotations

import math
from typing import ClassVar

from scheduler_hooks.scaling._base import Scaler, ScalingView


class UtilizationScaler(Scaler):
    """Scale on busy slots and waiting requests, as a Kubernetes HPA does on a utilisation metric.

    Utilisation = busy slots / slots over serving replicas, averaged over the recent
    window when the view carries it (as HPA averages its metric). Two rules:

    * ``target`` set (the HPA algorithm): ``ceil(serving x utilisation / target)``
      replicas, unchanged while ``|utilisation / target - 1| <= tolerance`` (HPA's 10%
      tolerance); at least one more than now when more than ``queue_high`` requests
      wait per replica (the queue threshold, e.g. KEDA on a queue-length metric);
    * ``target=None`` (step thresholds): one more replica when utilisation is above
      ``high`` or more than ``queue_high`` requests wait per replica; one fewer when
      it is below ``low`` and nothing waits.

    Pending (cold-starting) replicas count as already added and are never cancelled.

    >>> from scheduler_hooks._state import ReplicaState
    >>> busy = [ReplicaState(0, running=[1]), ReplicaState(0, running=[2])]
    >>> UtilizationScaler().target(ScalingView(0.0, busy, 0, 1.0, 1, 0))
    3
    >>> UtilizationScaler(target=0.4).target(ScalingView(0.0, busy, 0, 1.0, 1, 0, utilization=0.7))
    4

    Args:
        high: Step rule: scale up above this utilisation.
        low: Step rule: scale down below it (with an empty queue).
        queue_high: Waiting requests per serving replica above which it scales up.
        target: Target utilisation of the HPA rule (``None``: the step rule).
        tolerance: HPA's dead band around ``target`` (relative).
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
        target: float | None = None,
        tolerance: float = 0.1,
    ) -> None:
        super().__init__(min_replicas, max_replicas, cooldown_s, stabilization_s)
        if target is not None and not 0.0 < target <= 1.0:
            raise ValueError(f"target utilisation must be in (0, 1], got {target}")
        self.high, self.low, self.queue_high = high, low, queue_high
        self.target_utilization, self.tolerance = target, tolerance

    def target(self, view: ScalingView) -> int:
        """The rule's wish (serving + pending)."""
        current = len(view.replicas) + view.pending
        if not view.replicas:
            return current + 1
        util = view.utilization
        if util is None:
            util = sum(r.busy for r in view.replicas) / sum(r.slots for r in view.replicas)
        waiting = sum(len(r.queue) for r in view.replicas) / len(view.replicas)
        goal = self.target_utilization
        if goal is not None:
            want = current
            if abs(util / goal - 1.0) > self.tolerance:
                want = math.ceil(len(view.replicas) * util / goal - 1e-9)
                if view.pending:  # as HPA: cold-starting replicas are never cancelled
                    want = max(want, current)
            if waiting > self.queue_high:
                want = max(want, current + 1)
            return want
        if util > self.high or waiting > self.queue_high:
            return current + 1
        if util < self.low and waiting == 0:
            return current - 1
        return current
