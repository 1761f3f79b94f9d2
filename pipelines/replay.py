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
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from core import Settings
from core.drift import DriftGroup, DriftObservation
from core.predictor import ALL_FEATURES
from pipelines._replay_loop import Loop, Stream
from pipelines._replay_types import (
    COVERAGE_LEVELS,
    EPOCH,
    ONE_US,
    REPLAY_MONITOR,
    Advance,
    ReplayRequest,
    ReplayResult,
    Stage,
)
from pipelines.retrain import STATIC_FEATURES, RetrainConfig, retrain

if TYPE_CHECKING:
    from drift import MonitorConfig
    from feature_store import RecordStore


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
    from feature_store import DuckDBStore

    started = time.perf_counter()
    say: Stage = stage or (lambda _: None)
    if request.train_data is None and request.train_before is None:
        raise ValueError("--train-before is required when --train-data is not given")
    settings = _isolated_settings(home)
    same = request.train_data is None or request.train_data.resolve() == request.data.resolve()
    with DuckDBStore(settings.resolved_store_path) as train_store:
        say(f"ingest {request.train_data or request.data}")
        _ingest(train_store, request.train_data or request.data, request.fmt)
        replay_store: RecordStore = train_store
        if not same:
            say(f"ingest {request.data}")
            replay_store = DuckDBStore(home / "replay.duckdb")
            _ingest(replay_store, request.data, request.fmt)
        try:
            result, stream = _run(request, settings, train_store, replay_store, say, advance)
        finally:
            if not same:
                replay_store.close()
    _measure(result, stream, request.window)
    result.seconds = time.perf_counter() - started
    return result


def _isolated_settings(home: Path) -> Settings:
    """Settings with every path under ``home``.

    Explicit paths: TAILCAST_* variables of the environment must not point the replay
    at the user's store or registry.
    """
    return Settings(
        home=home,
        store_path=home / "train.duckdb",
        mlflow_tracking_uri=f"sqlite:///{(home / 'mlflow.db').as_posix()}",
        optuna_storage=f"sqlite:///{(home / 'optuna.db').as_posix()}",
    )


def _run(
    request: ReplayRequest,
    settings: Settings,
    train_store: RecordStore,
    replay_store: RecordStore,
    say: Stage,
    advance: Advance | None,
) -> tuple[ReplayResult, Stream]:
    """Train the first model, then stream the completions through the loop."""
    from drift import AdaptiveCalibrator, ConformalConfig, DriftMonitor, MonitorConfig
    from pipelines._replay_conformal import OnlineOffsets
    from registry import MLflowRegistry

    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    numeric = STATIC_FEATURES if request.features == "static" else ALL_FEATURES
    overrides = {"numeric": numeric, "seed": request.seed, "policy": request.policy}
    base = RetrainConfig(**{**overrides, **request.retrain_config})
    same = replay_store is train_store
    cutoff = request.train_before or _last_completion(
        train_store, request.served_model, base.target
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
    frame = replay_store.training_frame(request.served_model, start=start, require=(base.target,))
    stream = Stream(frame, base.target)
    if stream.n == 0:
        raise ValueError(f"{request.data}: no completions of {request.served_model!r} to replay")
    say(f"replay {stream.n:,} completions")
    result = ReplayResult(
        served_model=request.served_model,
        features=request.features,
        replayed=stream.n,
        initial_version=initial.version,
        train_rows=initial.rows["train"],
        adaptive_calibration=request.adaptive_calibration,
    )
    monitor = DriftMonitor(MonitorConfig(**request.monitor))
    loop = Loop(request, settings, registry, train_store, stream, monitor, result, base, say)
    if request.adaptive_calibration:
        calibrator = AdaptiveCalibrator(ConformalConfig(**request.conformal))
        loop.calibration = OnlineOffsets(calibrator, stream, request.served_model)
    took_over = start or min(stream.frame.column("submitted_at").to_pylist())
    loop.run(initial.version, took_over, advance)
    return result, stream


def _measure(result: ReplayResult, stream: Stream, window: int) -> None:
    """Coverage before the first alarm, after the first takeover, overall; and the model's.

    The first three are of the served forecasts, the last of the model's own.
    """
    hits = stream.hits
    first = result.first_alarm_after
    if first is not None:
        result.coverage_before = _coverage(hits[max(0, first - window) : first])
        result.coverage_before_n = min(first, window)
    takeover = next((r["after"] for r in result.retrains if r["promoted"]), None)
    if takeover is not None and takeover < stream.n:
        result.coverage_after = _coverage(hits[takeover : takeover + window])
        result.coverage_after_n = min(stream.n - takeover, window)
    result.coverage_all = _coverage(hits)
    result.coverage_model_all = _coverage(stream.model_hits)
    result.hits, result.model_hits, result.stream = hits, stream.model_hits, stream


def coverage_windows(
    hits: npt.NDArray[np.bool_], size: int = 500, skip: int = 500
) -> dict[str, list[float]]:
    """Coverage of every level per window of ``size`` completions after the first ``skip``.

    Args:
        hits: ``(replayed, levels)`` booleans, ``y <= quantile`` (``ReplayResult.hits``
            or ``model_hits``).
        size: Completions per window; a last partial window is left out.
        skip: Completions left out at the start (the calibrator's warm-up).

    Returns:
        Level (``"0.9"``) -> coverage of each window, in order.

    >>> h = np.zeros((1700, len(COVERAGE_LEVELS)), dtype=np.bool_)
    >>> h[:, 2] = np.arange(1700) % 10 != 0
    >>> coverage_windows(h)["0.9"]
    [0.9, 0.9]
    """
    starts = range(skip, hits.shape[0] - size + 1, size)
    return {
        f"{lv:g}": [float(hits[s : s + size, k].mean()) for s in starts]
        for k, lv in enumerate(COVERAGE_LEVELS)
    }


def first_alarm(result: ReplayResult, config: MonitorConfig) -> int | None:
    """First alarm another monitor configuration raises on the forecasts of the first model.

    Replays the u and pinball values the first model's forecasts gave (up to the first
    swap of models) through a fresh :class:`drift.DriftMonitor` with ``config``.
    """
    from drift import DriftMonitor

    stream: Stream = result.stream
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


__all__ = [
    "COVERAGE_LEVELS",
    "REPLAY_MONITOR",
    "ReplayRequest",
    "ReplayResult",
    "coverage_windows",
    "first_alarm",
    "plot_coverage",
    "replay",
]
