"""``tailcast drift replay``: a past period streamed through the monitor and the retrain loop.

The replay trains a predictor on the records of ``train_data`` (default: ``data``)
submitted before ``train_before``, then streams the completions of ``data`` from
``replay_from`` on, in completion-time order, through a :class:`drift.DriftMonitor`:
each completion's ``u`` and pinball loss are computed under the forecast the model
in charge would have issued (its features are point in time: endpoint and workflow
features only use what had completed before the request was submitted), grouped by
(served model, prompt class from the predictor, device). With ``retrain``, an alarm
requests a :func:`pipelines.retrain.retrain` job; it runs once ``retrain_after``
completions have been observed since the alarming model took over (its calibration
data), on everything observed up to then (the recent window being the completions
since that model took over). When the challenger is promoted it issues the forecasts
from the next completion on and the monitor forgets the served model's groups.

Everything (DuckDB stores, the MLflow SQLite registry, run directories) lives under
the ``home`` given (the CLI uses a temporary directory), never the user's store.
When ``train_data`` is another file, ``data`` gets its own store (its endpoint and
workflow features come from its own history, as in ``tailcast evaluate``), and the
completions observed before an alarm are added to the training store for the retrain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from core import RECORD_FIELDS, Settings
from core.drift import DriftEvent, DriftGroup, DriftObservation, pit_and_pinball
from core.predictor import ALL_FEATURES
from core.quantiles import ppf_rows
from pipelines.retrain import STATIC_FEATURES, Policy, RetrainConfig, RetrainOutcome, retrain

if TYPE_CHECKING:
    from drift import DriftMonitor, MonitorConfig
    from feature_store import RecordStore
    from registry import MLflowRegistry

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
    seed: int = 0


@dataclass
class ReplayResult:
    """What the replay saw (see :meth:`as_json`)."""

    served_model: str
    features: str
    replayed: int
    initial_version: int
    train_rows: int
    events: list[dict[str, Any]] = field(default_factory=list)
    retrains: list[dict[str, Any]] = field(default_factory=list)
    coverage_before: dict[str, float] | None = None
    coverage_before_n: int = 0
    coverage_after: dict[str, float] | None = None
    coverage_after_n: int = 0
    coverage_all: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    hits: npt.NDArray[np.bool_] | None = None  # (replayed, levels): y <= quantile
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
            "seconds": round(self.seconds, 1),
        }


Stage = Callable[[str], None]
Advance = Callable[[int, int], None]


def _ingest(store: RecordStore, path: Path, fmt: str) -> None:
    from feature_store.importers import detect_format, get_importer

    importer = get_importer(detect_format(path) if fmt == "auto" else fmt)
    report = store.ingest_batches(importer.read(path), source=str(path))
    if report.accepted == 0 and report.duplicates == 0:
        raise ValueError(f"{path}: no valid records ({len(report.rejected)} rejected)")


def _coverage(hits: npt.NDArray[np.bool_]) -> dict[str, float]:
    return {f"{lv:g}": float(hits[:, k].mean()) for k, lv in enumerate(COVERAGE_LEVELS)}


def _last_completion(store: RecordStore, served_model: str, target: str) -> datetime:
    frame = store.training_frame(served_model, columns=("completed_at",), require=(target,))
    if frame.num_rows == 0:
        raise ValueError(f"no records of {served_model!r} with {target} to train on")
    last: datetime = max(frame.column("completed_at").to_pylist())
    return last + ONE_US


class _Stream:
    """The replayed completions in completion order, with the model's verdict on each."""

    def __init__(self, frame: pa.Table, target: str) -> None:
        import pyarrow.compute as pc

        keep = pc.and_(pc.is_valid(frame.column(target)), pc.greater(frame.column(target), 0))
        frame = frame.filter(keep)
        self.frame = frame.take(pc.sort_indices(frame, [("completed_at", "ascending")]))
        self.n = self.frame.num_rows
        self.y = self.frame.column(target).to_numpy(zero_copy_only=False).astype(np.float64)
        self.at: list[datetime] = self.frame.column("completed_at").to_pylist()
        self.devices = [str(d) for d in self.frame.column("device").to_pylist()]
        self.hits = np.zeros((self.n, len(COVERAGE_LEVELS)), dtype=np.bool_)
        self.u = np.zeros(self.n)
        self.pinball = np.zeros(self.n)
        self.classes: list[str] = [""] * self.n

    def judge(self, model: Any, start: int) -> tuple[F64, F64, list[str]]:
        """u, pinball and prompt class of completions ``start:`` under ``model``."""
        part = self.frame.slice(start)
        cols = {name: part.column(name).to_pylist() for name in part.column_names}
        values, classes = model.predict_with_classes(cols, part.num_rows)
        values = np.maximum(values, 0.0)
        levels = np.asarray(model.spec.levels, dtype=np.float64)
        u, loss = pit_and_pinball(levels, values, self.y[start:])
        q = ppf_rows(levels, values, np.asarray(COVERAGE_LEVELS), lower=0.0)
        self.hits[start:] = self.y[start:, None] <= q
        self.u[start:], self.pinball[start:] = np.clip(u, 0.0, 1.0), loss
        self.classes[start:] = classes
        return self.u[start:], loss, classes

    def records(self, stop: int) -> list[dict[str, Any]]:
        """Record fields of completions ``:stop`` (for another store)."""
        part = self.frame.slice(0, stop).select(list(RECORD_FIELDS))
        rows: list[dict[str, Any]] = part.to_pylist()
        return rows


def replay(
    request: ReplayRequest,
    home: Path,
    *,
    stage: Stage | None = None,
    advance: Advance | None = None,
) -> ReplayResult:
    """Run a replay (see the module docstring) with everything under ``home``.

    Args:
        request: What to replay.
        home: A directory for the stores, the MLflow registry and run directories.
        stage: Called with a description when a phase starts (progress).
        advance: Called with (completions replayed, total) as the stream advances.

    Raises:
        ValueError: Missing ``train_before`` without ``train_data``; no usable records.
    """
    from drift import DriftMonitor, MonitorConfig
    from feature_store import DuckDBStore
    from registry import MLflowRegistry

    started = time.perf_counter()
    say: Stage = stage or (lambda _: None)
    if request.train_data is None and request.train_before is None:
        raise ValueError("--train-before is required when --train-data is not given")
    # Explicit paths: TAILCAST_* variables of the environment must not point the replay
    # at the user's store or registry.
    settings = Settings(
        home=home,
        store_path=home / "train.duckdb",
        mlflow_tracking_uri=f"sqlite:///{(home / 'mlflow.db').as_posix()}",
        optuna_storage=f"sqlite:///{(home / 'optuna.db').as_posix()}",
    )
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    same = request.train_data is None or request.train_data.resolve() == request.data.resolve()
    numeric = STATIC_FEATURES if request.features == "static" else ALL_FEATURES
    base = RetrainConfig(
        **{
            "numeric": numeric,
            "seed": request.seed,
            "policy": request.policy,
            **request.retrain_config,
        }
    )
    target = base.target
    with DuckDBStore(settings.resolved_store_path) as train_store:
        say(f"ingest {request.train_data or request.data}")
        _ingest(train_store, request.train_data or request.data, request.fmt)
        replay_store: RecordStore = train_store
        if not same:
            say(f"ingest {request.data}")
            replay_store = DuckDBStore(home / "replay.duckdb")
            _ingest(replay_store, request.data, request.fmt)
        try:
            cutoff = request.train_before or _last_completion(
                train_store, request.served_model, target
            )
            say(f"train {request.served_model} on records before {cutoff:%Y-%m-%d %H:%M} UTC")
            initial = retrain(
                request.served_model,
                settings,
                train_store,
                registry,
                config=base.model_copy(update={"policy": "always", "trials": request.trials}),
                as_of=cutoff,
                recent_start=EPOCH,
                trigger="replay-initial",
            )
            start = request.replay_from or (request.train_before if same else None)
            stream = _Stream(
                replay_store.training_frame(request.served_model, start=start, require=(target,)),
                target,
            )
            if stream.n == 0:
                raise ValueError(
                    f"{request.data}: no completions of {request.served_model!r} to replay"
                )
            say(f"replay {stream.n:,} completions")
            result = ReplayResult(
                served_model=request.served_model,
                features=request.features,
                replayed=stream.n,
                initial_version=initial.version,
                train_rows=initial.rows["train"],
            )
            monitor = DriftMonitor(MonitorConfig(**request.monitor))
            loop = _Loop(
                request, settings, registry, train_store, stream, monitor, result, base, say
            )
            took_over = start or min(stream.frame.column("submitted_at").to_pylist())
            loop.run(initial.version, took_over, advance)
        finally:
            if not same:
                replay_store.close()
    hits = stream.hits
    first = result.first_alarm_after
    if first is not None:
        result.coverage_before = _coverage(hits[max(0, first - request.window) : first])
        result.coverage_before_n = min(first, request.window)
    takeover = next((r["after"] for r in result.retrains if r["promoted"]), None)
    if takeover is not None and takeover < stream.n:
        result.coverage_after = _coverage(hits[takeover : takeover + request.window])
        result.coverage_after_n = min(stream.n - takeover, request.window)
    result.coverage_all = _coverage(hits)
    result.hits, result.stream = hits, stream
    result.seconds = time.perf_counter() - started
    return result


def first_alarm(result: ReplayResult, config: MonitorConfig) -> int | None:
    """First alarm another monitor configuration raises on the forecasts of the first model.

    Replays the u and pinball values the first model's forecasts gave (up to the first
    swap of models) through a fresh :class:`drift.DriftMonitor` with ``config``.
    """
    from drift import DriftMonitor

    stream: _Stream = result.stream
    end = next((r["after"] for r in result.retrains if r["promoted"]), stream.n)
    monitor = DriftMonitor(config)
    for i in range(end):
        obs = DriftObservation(
            group=DriftGroup(
                served_model=result.served_model,
                prompt_class=stream.classes[i],
                device=stream.devices[i],
            ),
            u=float(stream.u[i]),
            pinball=float(stream.pinball[i]),
            model_version=str(result.initial_version),
            observed_at=stream.at[i],
        )
        if any(e.kind == "ood" for e in monitor.observe(obs)):
            return i + 1
    return None


def plot_coverage(result: ReplayResult, path: Path, level: float = 0.9, span: int = 200) -> Path:
    """Rolling coverage of the ``level`` quantile along the replay, alarms and swaps marked.

    Args:
        result: A finished replay.
        path: The PNG to write.
        level: One of :data:`COVERAGE_LEVELS`.
        span: Completions per rolling window.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    assert result.hits is not None
    hits = result.hits[:, COVERAGE_LEVELS.index(level)].astype(np.float64)
    rolling = np.convolve(hits, np.ones(span) / span, mode="valid")
    fig = Figure(figsize=(8, 3.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(np.arange(span, len(hits) + 1), rolling, lw=1.2, label=f"coverage of q{level:g}")
    ax.axhline(level, color="grey", ls="--", lw=0.8)
    for i, e in enumerate(result.alarms):
        ax.axvline(e["after"], color="red", lw=0.8, label="alarm" if i == 0 else None)
    for i, r in enumerate(x for x in result.retrains if x["promoted"]):
        ax.axvline(r["after"], color="green", lw=0.8, label="retrained model" if i == 0 else None)
    ax.set_xlabel("completions replayed")
    ax.set_ylabel(f"coverage (rolling {span})")
    ax.set_ylim(max(0.0, float(rolling.min(initial=level)) - 0.05), 1.0)
    ax.legend(loc="lower left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


@dataclass
class _Loop:
    """The replay loop: observe, alarm, retrain, swap."""

    request: ReplayRequest
    settings: Settings
    registry: MLflowRegistry
    store: RecordStore
    stream: _Stream
    monitor: DriftMonitor
    result: ReplayResult
    config: RetrainConfig
    say: Stage

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
