"""The replay's stream of completions and its observe / alarm / retrain / swap loop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from core import RECORD_FIELDS, Settings
from core.drift import DriftEvent, DriftGroup, DriftObservation, pit_and_pinball
from core.quantiles import ppf_rows
from pipelines._replay_types import (
    COVERAGE_LEVELS,
    F64,
    ONE_US,
    Advance,
    ReplayRequest,
    ReplayResult,
    Stage,
)
from pipelines.retrain import RetrainConfig, RetrainOutcome, retrain

if TYPE_CHECKING:
    from drift import DriftMonitor
    from feature_store import RecordStore
    from pipelines._replay_conformal import OnlineOffsets
    from registry import MLflowRegistry


class Stream:
    """The replayed completions in completion order, with the model's verdict on each."""

    def __init__(self, frame: pa.Table, target: str) -> None:
        import pyarrow.compute as pc

        keep = pc.and_(pc.is_valid(frame.column(target)), pc.greater(frame.column(target), 0))
        frame = frame.filter(keep)
        self.frame = frame.take(pc.sort_indices(frame, [("completed_at", "ascending")]))
        self.n = self.frame.num_rows
        self.y = self.frame.column(target).to_numpy(zero_copy_only=False).astype(np.float64)
        self.at: list[datetime] = self.frame.column("completed_at").to_pylist()
        self.submitted: list[datetime] = self.frame.column("submitted_at").to_pylist()
        self.devices = [str(d) for d in self.frame.column("device").to_pylist()]
        # Under the model's own forecasts (what the drift monitor judges):
        self.u = np.zeros(self.n)
        self.pinball = np.zeros(self.n)
        self.model_hits = np.zeros((self.n, len(COVERAGE_LEVELS)), dtype=np.bool_)
        # Under the served forecasts (the model's, adjusted when calibrating online):
        self.hits = np.zeros((self.n, len(COVERAGE_LEVELS)), dtype=np.bool_)
        self.served_pinball = np.zeros(self.n)
        self.classes: list[str] = [""] * self.n
        self.levels: tuple[float, ...] = ()
        self.values = np.zeros((self.n, 0))  # the model's quantiles (seconds) at ``levels``

    def judge(self, model: Any, start: int) -> tuple[F64, F64, list[str]]:
        """u, pinball and prompt class of completions ``start:`` under ``model``.

        The served forecasts are the model's until :meth:`rescore` adjusts them.
        """
        part = self.frame.slice(start)
        cols = {name: part.column(name).to_pylist() for name in part.column_names}
        values, classes = model.predict_with_classes(cols, part.num_rows)
        values = np.maximum(values, 0.0)
        if tuple(model.spec.levels) != self.levels:
            self.levels = tuple(model.spec.levels)
            self.values = np.zeros((self.n, len(self.levels)))
        self.values[start:] = values
        levels = np.asarray(self.levels, dtype=np.float64)
        u, loss = pit_and_pinball(levels, values, self.y[start:])
        q = ppf_rows(levels, values, np.asarray(COVERAGE_LEVELS), lower=0.0)
        self.model_hits[start:] = self.hits[start:] = self.y[start:, None] <= q
        self.u[start:], self.pinball[start:] = np.clip(u, 0.0, 1.0), loss
        self.served_pinball[start:] = loss
        self.classes[start:] = classes
        return self.u[start:], loss, classes

    def rescore(self, i: int, issued: F64) -> None:
        """Completion ``i`` was served ``issued`` (seconds at :attr:`levels`), not the model's."""
        levels = np.asarray(self.levels, dtype=np.float64)
        row = issued.reshape(1, -1)
        _, loss = pit_and_pinball(levels, row, self.y[i : i + 1])
        q = ppf_rows(levels, row, np.asarray(COVERAGE_LEVELS), lower=0.0)
        self.hits[i] = self.y[i] <= q[0]
        self.served_pinball[i] = loss[0]

    def records(self, stop: int) -> list[dict[str, Any]]:
        """Record fields of completions ``:stop`` (for another store)."""
        part = self.frame.slice(0, stop).select(list(RECORD_FIELDS))
        rows: list[dict[str, Any]] = part.to_pylist()
        return rows


@dataclass
class Loop:
    """The replay loop: observe, alarm, retrain, swap.

    With ``calibration``, each completion's served forecast is the model's adjusted by
    the online calibrator (offsets as of its submission), learned from once observed;
    the monitor still judges the model's own forecasts.
    """

    request: ReplayRequest
    settings: Settings
    registry: MLflowRegistry
    store: RecordStore
    stream: Stream
    monitor: DriftMonitor
    result: ReplayResult
    config: RetrainConfig
    say: Stage
    calibration: OnlineOffsets | None = None

    def run(self, version: int, since: datetime, advance: Advance | None) -> None:
        """Stream every completion; retrain (and swap models) on alarms.

        Args:
            version: The model version in charge first.
            since: When it took over (start of a retraining job's recent window).
            advance: Progress callback.
        """
        served = self.request.served_model
        model, _ = self.registry.load(served, version=version)
        pos, took_over, n = 0, 0, self.stream.n
        requested: int | None = None  # the alarm a retraining job is waiting for data for
        while pos < n:
            u, loss, classes = self.stream.judge(model, pos)
            swap: RetrainOutcome | None = None
            i = pos
            for i in range(pos, n):
                if self.calibration is not None:
                    self.calibration.serve(i)
                obs = DriftObservation(
                    group=DriftGroup(
                        served_model=served,
                        prompt_class=classes[i - pos],
                        device=self.stream.devices[i],
                    ),
                    u=float(u[i - pos]),
                    pinball=float(loss[i - pos]),
                    model_version=str(version),
                    observed_at=self.stream.at[i],
                )
                events = self.monitor.observe(obs)
                self._record(events, i)
                if advance is not None and (i % 50 == 0 or i == n - 1):
                    advance(i + 1, n)
                if requested is None and any(e.kind == "ood" for e in events):
                    requested = i + 1 if self._may_retrain() else None
                if requested is not None and i + 1 - took_over >= self.request.retrain_after:
                    swap = self._retrain(i, since, requested)
                    requested = None
                    if swap.promoted:
                        break
            pos = i + 1
            if swap is not None and swap.promoted:
                model, _ = self.registry.load(served, version=swap.version)
                version, since, took_over = swap.version, self.stream.at[i], pos
                self.monitor.reset(served)
                if self.calibration is not None:
                    self.calibration.reset(pos)

    def _may_retrain(self) -> bool:
        return self.request.retrain and len(self.result.retrains) < self.request.max_retrains

    def _record(self, events: list[DriftEvent], i: int) -> None:
        for e in events:
            self.result.events.append(
                {
                    "after": i + 1,
                    "kind": e.kind,
                    "group": e.group.model_dump(),
                    "group_key": e.group.key(),
                    "at": e.at.isoformat(),
                    "model_version": e.model_version,
                    "n_samples": e.n_samples,
                    "statistics": e.statistics,
                }
            )

    def _retrain(self, i: int, since: datetime, alarm: int) -> RetrainOutcome:
        """Retrain on everything observed up to completion ``i`` (alarm at ``alarm``)."""
        self.say(f"retrain after an alarm at completion {i + 1:,}")
        if self.store is not None and not self._same_store():
            self.store.ingest_rows(self.stream.records(i + 1), source="replay")
        outcome = retrain(
            self.request.served_model,
            self.settings,
            self.store,
            self.registry,
            config=self.config,
            as_of=self.stream.at[i] + ONE_US,
            recent_start=since,
            trigger="drift",
        )
        self.result.retrains.append(
            {
                "alarm_after": alarm,
                "after": i + 1,
                "at": self.stream.at[i].isoformat(),
                "version": outcome.version,
                "promoted": outcome.promoted,
                "warm_start": outcome.warm_start,
                "rows": outcome.rows,
                "holdout": outcome.holdout,
                "run_id": outcome.run_id,
            }
        )
        return outcome

    def _same_store(self) -> bool:
        req = self.request
        return req.train_data is None or req.train_data.resolve() == req.data.resolve()
