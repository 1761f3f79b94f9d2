"""Drift monitoring of issued forecasts: per-group PIT tests, alerts, retraining requests.

Between retrainings, :class:`AdaptiveCalibrator` keeps the served quantiles calibrated
online (adaptive conformal offsets per group and level).

drift/ imports only core (plus river, scipy, numpy, pandas; evidently inside
:mod:`drift.reports`). The store side of events and the alert outbox lives in the
feature store, which satisfies the protocols in :mod:`drift._outbox`.
"""

from core.drift import (
    AlertMessage,
    DeliveryAttempt,
    DriftEvent,
    DriftGroup,
    DriftObservation,
    GroupStatus,
    pit_and_pinball,
)
from drift._actions import DriftResponder, RetrainCallback
from drift._adwin import AdwinDetector
from drift._config import MonitorConfig, Trigger
from drift._conformal import (
    CONFORMAL_FORMAT,
    AdaptiveCalibrator,
    ConformalConfig,
    apply_offsets,
)
from drift._coverage import coverage_test
from drift._debounce import RetrainDebouncer
from drift._deliver import Deliverer, replica_id
from drift._group import GroupMonitor
from drift._monitor import DriftMonitor
from drift._outbox import AlertOutbox, DriftEventSink
from drift._pinball import pinball_ratio
from drift._state import (
    JUDGE_KEY,
    STATE_FORMAT,
    AdwinSnapshot,
    GroupSnapshot,
    JudgeSnapshot,
)
from drift._uniformity import ad_uniform, ks_distance, ks_uniform
from drift._webhook import SIGNATURE_HEADER, alert_body, sign, verify

__all__ = [
    "CONFORMAL_FORMAT",
    "JUDGE_KEY",
    "SIGNATURE_HEADER",
    "STATE_FORMAT",
    "AdaptiveCalibrator",
    "AdwinDetector",
    "AdwinSnapshot",
    "AlertMessage",
    "AlertOutbox",
    "ConformalConfig",
    "Deliverer",
    "DeliveryAttempt",
    "DriftEvent",
    "DriftEventSink",
    "DriftGroup",
    "DriftMonitor",
    "DriftObservation",
    "DriftResponder",
    "GroupMonitor",
    "GroupSnapshot",
    "GroupStatus",
    "JudgeSnapshot",
    "MonitorConfig",
    "RetrainCallback",
    "RetrainDebouncer",
    "Trigger",
    "ad_uniform",
    "alert_body",
    "apply_offsets",
    "coverage_test",
    "ks_distance",
    "ks_uniform",
    "pinball_ratio",
    "pit_and_pinball",
    "replica_id",
    "sign",
    "verify",
]
