"""What ``tailcast drift replay`` is asked (:class:`ReplayRequest`) and what it saw.

See :mod:`pipelines.replay` for the replay itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from pipelines.retrain import Policy

F64 = npt.NDArray[np.float64]

#: Levels coverage is reported at.
COVERAGE_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9, 0.95, 0.99)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Monitor settings of the replay: the calls of one agentic task are correlated (same
#: repository, similar outputs) and a sequential run spends ~100 calls on a task, so a
#: window of 500 spans few tasks and a well-calibrated model still fails the KS test on
#: held-out tasks (KS distance 0.19 on the same-period slice of the tests). A window of
#: 1,000 and an effect-size floor of 0.12 keep those quiet; the 2026-04-11 slow-down
#: still alarms after 125-150 completions (``python -m benchmarks drift``).
REPLAY_MONITOR: dict[str, Any] = {"window": 1000, "ks_tolerance": 0.12}
ONE_US = timedelta(microseconds=1)


class ReplayRequest(BaseModel):
    """What to replay (frozen configuration).

    Attributes:
        served_model: The served model whose records are replayed.
        data: Records to replay.
        fmt: Format of ``data`` and ``train_data`` (``auto``: detect).
        train_data: Records to train on (default ``data``).
        train_before: Train on records submitted before this (default: all of
            ``train_data``; required when ``train_data`` is not given).
        replay_from: Replay completions of records submitted from this on (default:
            ``train_before`` when ``train_data`` is not given, else the start of ``data``).
        features: ``static`` leaves out the runtime features that track the endpoint's
            recent speed (:data:`pipelines.retrain.SPEED_FEATURES`); ``all`` keeps them.
        retrain: Run the retraining loop on alarms.
        trials: Optuna trials of the initial search.
        window: Completions the before/after coverage is measured over.
        max_retrains: Alarms that retrain at most (later alarms are only reported).
        retrain_after: Completions since the alarming model took over that a job
            waits for before it runs (its calibration data: the monitor alarms as soon
            as the evidence suffices, often after a hundred or so completions). The
            default, 500, leaves 400 calibration rows after the 20% hold-out: the
            standard error of a 0.9 coverage estimate is then 1.5 points.
        monitor: :class:`drift.MonitorConfig` fields (default :data:`REPLAY_MONITOR`).
        policy: Promotion policy of the alarm-triggered jobs. ``always`` by default:
            the alarm is the evidence against the model in charge, and the replay
            measures the model that replaces it (the job still records challenger
            against champion; ``auto_if_better`` decides on a noisy few hundred rows).
        retrain_config: Overrides of :class:`pipelines.retrain.RetrainConfig` fields for
            the alarm-triggered jobs.
        adaptive_calibration: Serve each forecast adjusted by an online adaptive
            conformal calibrator (:class:`drift.AdaptiveCalibrator`, per group and
            level, offsets as of the request's submission, learned from each outcome
            once observed; reset when a retrained model takes over). Coverage and
            ``hits`` are of the served forecasts; the monitor judges the model's own.
        conformal: :class:`drift.ConformalConfig` fields of that calibrator.
        seed: Seed of the search and fits.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    served_model: str
    data: Path
    fmt: str = "auto"
    train_data: Path | None = None
    train_before: datetime | None = None
    replay_from: datetime | None = None
    features: Literal["static", "all"] = "all"
    retrain: bool = False
    trials: int = Field(default=4, ge=1)
    window: int = Field(default=1000, ge=1)
    max_retrains: int = Field(default=3, ge=0)
    retrain_after: int = Field(default=500, ge=1)
    policy: Policy = "always"
    monitor: dict[str, Any] = Field(default_factory=lambda: dict(REPLAY_MONITOR))
    retrain_config: dict[str, Any] = Field(default_factory=dict)
    adaptive_calibration: bool = True
    conformal: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0


@dataclass
class ReplayResult:
    """What the replay saw (see :meth:`as_json`)."""

    served_model: str
    features: str
    replayed: int
    initial_version: int
    train_rows: int
    adaptive_calibration: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    retrains: list[dict[str, Any]] = field(default_factory=list)
    coverage_before: dict[str, float] | None = None
    coverage_before_n: int = 0
    coverage_after: dict[str, float] | None = None
    coverage_after_n: int = 0
    coverage_all: dict[str, float] = field(default_factory=dict)
    coverage_model_all: dict[str, float] = field(default_factory=dict)  # model's own forecasts
    seconds: float = 0.0
    hits: npt.NDArray[np.bool_] | None = None  # (replayed, levels): y <= served quantile
    model_hits: npt.NDArray[np.bool_] | None = None  # the same under the model's own forecasts
    stream: Any = None  # the replayed completions with u, pinball, classes (for re-analysis)

    @property
    def alarms(self) -> list[dict[str, Any]]:
        """The ``ood`` events."""
        return [e for e in self.events if e["kind"] == "ood"]

    @property
    def first_alarm_after(self) -> int | None:
        """Completions replayed up to and including the one that raised the first alarm."""
        return self.alarms[0]["after"] if self.alarms else None

    def as_json(self) -> dict[str, Any]:
        """JSON-ready result (what ``--json`` prints)."""
        groups: dict[str, dict[str, int]] = {}
        for e in self.events:
            counts = groups.setdefault(e["group_key"], {"ood": 0, "recovered": 0})
            counts[e["kind"]] += 1
        return {
            "served_model": self.served_model,
            "features": self.features,
            "replayed": self.replayed,
            "initial_version": self.initial_version,
            "train_rows": self.train_rows,
            "adaptive_calibration": self.adaptive_calibration,
            "first_alarm_after": self.first_alarm_after,
            "alarms": self.alarms,
            "events": self.events,
            "groups": groups,
            "retrains": self.retrains,
            "coverage_before": self.coverage_before,
            "coverage_before_n": self.coverage_before_n,
            "coverage_after": self.coverage_after,
            "coverage_after_n": self.coverage_after_n,
            "coverage_all": self.coverage_all,
            "coverage_model_all": self.coverage_model_all,
            "seconds": round(self.seconds, 1),
        }


Stage = Callable[[str], None]
"""Called with a description when a phase starts (progress)."""
Advance = Callable[[int, int], None]
"""Called with (completions replayed, total) as the stream advances."""
