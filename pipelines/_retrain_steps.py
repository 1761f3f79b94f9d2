"""Steps of a retraining job: the job's frames, and the two ways to fit a challenger.

:func:`job_frames` cuts the recent window, the reference sample and the held-out rows
from a frame; :func:`recalibrated` is the warm start (the champion's network with
conformal offsets from the recent window); :func:`trained` is one fit of the champion's
architecture or a fresh in-memory search. :func:`pipelines.retrain.retrain` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from core import Settings
from core.predictor import ALL_FEATURES, Predictor
from feature_store import RecordStore

#: Contiguous blocks of the recent window the recalibrated challenger is cross-fitted on.
CROSS_FOLDS = 5

if TYPE_CHECKING:
    from pipelines.retrain import RetrainConfig
    from training import TrainingData, TrainRequest


@dataclass(frozen=True)
class JobFrames:
    """The frames of one job (Arrow tables, submission order)."""

    train: pa.Table
    holdout: pa.Table
    rows: dict[str, int]
    recent_start: datetime


def job_frames(
    frame: pa.Table,
    config: RetrainConfig,
    *,
    as_of: datetime,
    recent_start: datetime | None,
    holdout: bool,
) -> JobFrames:
    """Split a frame (everything known at ``as_of``) into training and held-out rows.

    Args:
        frame: Rows in submission order.
        config: Window, reference and holdout sizes.
        as_of: The knowledge cut-off (end of the recent window).
        recent_start: Start of the recent window, taken as given; default ``as_of -
            window_h``, extended to the last ``min_recent`` rows when shorter.
        holdout: Whether to hold out the most recent rows.
    """
    n = frame.num_rows
    start = recent_start or as_of - timedelta(hours=config.window_h)
    submitted = frame.column("submitted_at")
    after = pc.greater_equal(submitted, pa.scalar(start, type=submitted.type))
    in_window = int(pc.sum(pc.cast(after, pa.int64())).as_py() or 0)
    floor = 0 if recent_start is not None else min(config.min_recent, n)
    first_recent = n - max(in_window, floor)
    recent = np.arange(first_recent, n)
    n_hold = 0
    if holdout and len(recent) > 0:
        n_hold = max(round(config.holdout_fraction * len(recent)), config.min_holdout)
        n_hold = min(n_hold, len(recent) // 2)
    fit_recent = recent[: len(recent) - n_hold]
    older = np.arange(first_recent)
    n_ref = min(len(older), round(config.reference_fraction * len(fit_recent)))
    rng = np.random.default_rng(config.seed)
    reference = np.sort(rng.choice(older, size=n_ref, replace=False)) if n_ref else older[:0]
    train_rows = np.concatenate([reference, fit_recent])
    rows = {
        "recent": len(recent),
        "reference": n_ref,
        "train": len(train_rows),
        "holdout": n_hold,
        "known": n,
    }
    return JobFrames(
        train=frame.take(pa.array(train_rows, pa.int64())),
        holdout=frame.take(pa.array(recent[len(fit_recent) :], pa.int64())),
        rows=rows,
        recent_start=frame.column("submitted_at")[first_recent].as_py()
        if first_recent < n
        else as_of,
    )


def _in_memory_search(
    request: TrainRequest, champion: Predictor | None, warm: bool
) -> TrainRequest:
    """The request of this job: the champion's architecture (warm) or a fresh space."""
    from training import SearchSpace

    if not warm or champion is None:
        return request
    spec = champion.spec
    width = spec.hidden[0] if spec.hidden else 64
    space = SearchSpace(
        text_variants=(spec.text,),
        projections=(spec.projection // spec.members or request.base.projection,),
        widths=(width,),
        depth=(len(spec.hidden), len(spec.hidden)),
        dropout=(request.base.dropout, request.base.dropout),
        lr=(request.base.lr, request.base.lr),
        loss_spaces=(request.base.loss_space,),
        text_weight_decay=(request.base.text_weight_decay, request.base.text_weight_decay),
    )
    return request.model_copy(update={"space": space, "trials": 1})


def score(
    predictor: Predictor, data: TrainingData, train: Any, held: TrainingData
) -> dict[str, Any]:
    from training import evaluate_models

    scores, _ = evaluate_models(
        predictor, data, train, np.arange(held.n, dtype=np.int64), baselines=(), eval_data=held
    )
    return dict(scores["tailcast"])


@dataclass
class Fitted:
    """A challenger before registration, with what it was fitted on."""

    predictor: Predictor
    data: TrainingData
    train_rows: npt.NDArray[np.int64]
    metrics: dict[str, float]
    plots: dict[str, Path]
    trials: int
    holdout: dict[str, dict[str, Any]] = field(default_factory=dict)


def recalibrated(champion: Predictor, parts: JobFrames, config: RetrainConfig) -> Fitted:
    """Warm start: the champion's network, conformal offsets from the recent window.

    The recent rows were never seen by the champion's network, so they are valid
    calibration data for what comes next; prompt classes are re-clustered on the
    reference sample and the recent rows together. Challenger and champion are compared
    on the whole recent window, the challenger *cross-fitted*: each of ``folds``
    contiguous blocks is scored by offsets calibrated on the other blocks (so every
    score is out of sample, and the comparison rests on the whole window rather than
    its newest fifth).
    """
    from training import TrainingData

    data = TrainingData.from_arrow(parts.train, config.target)
    submitted = data.cols["submitted_at"]
    recent = np.flatnonzero(np.asarray([t >= parts.recent_start for t in submitted]))
    recent = recent.astype(np.int64)
    if len(recent) < config.min_calibration:
        raise ValueError(
            f"only {len(recent)} recent rows to recalibrate on; need >= {config.min_calibration}"
        )

    def offsets_from(rows: npt.NDArray[np.int64]) -> Predictor:
        from training import calibrate

        return calibrate(
            champion,
            data,
            rows,
            prompt_classes=champion.spec.prompt_classes,
            min_group=config.min_group,
            seed=config.seed,
            train=np.arange(data.n, dtype=np.int64),
        )

    folds = np.array_split(recent, CROSS_FOLDS)
    crossed = np.concatenate(
        [
            offsets_from(np.setdiff1d(recent, fold)).predict(data.rows(fold), len(fold))
            for fold in folds
        ]
    )
    held = data.rows(recent)
    holdout = {
        "challenger": _scores(data.y[recent], crossed, champion.spec.levels),
        "champion": _scores(
            data.y[recent], champion.predict(held, len(recent)), champion.spec.levels
        ),
    }
    return Fitted(offsets_from(recent), data, recent, {}, {}, 0, holdout)


def _scores(y: npt.NDArray[np.float64], q: Any, levels: tuple[float, ...]) -> dict[str, Any]:
    """Mean pinball, CRPS and coverage at :data:`training.EVAL_LEVELS` (as evaluate_models)."""
    from training import EVAL_LEVELS, metrics

    at = np.array(EVAL_LEVELS)
    quantiles = metrics.interpolate_quantiles(q, np.array(levels), at, lower=0.0)
    return dict(metrics.score(y, quantiles, at, lower=0.0))


def trained(
    served_model: str,
    settings: Settings,
    store: RecordStore,
    parts: JobFrames,
    config: RetrainConfig,
    champion: Predictor | None,
    run_dir: Path,
    on_trial: Callable[[Any], None] | None,
) -> Fitted:
    """A fresh search, or (``champion`` given) one fit of the champion's architecture."""
    from pipelines.train import flat_metrics, text_provider
    from training import TrainRequest, train_predictor

    numeric = config.numeric or (champion.spec.numeric if champion is not None else ALL_FEATURES)
    request = TrainRequest(
        served_model=served_model,
        target=config.target,
        trials=config.trials,
        timeout_s=config.timeout_s,
        storage=None,
        seed=config.seed,
        min_group=config.min_group,
        cross_fit=config.cross_fit,
    )
    request = request.model_copy(
        update={"base": request.base.model_copy(update={"numeric": tuple(numeric)})}
    )
    if config.text_kinds is not None:
        variants = tuple(v for v in request.space.text_variants if v.kind in config.text_kinds)
        request = request.model_copy(
            update={"space": request.space.model_copy(update={"text_variants": variants})}
        )
    request = _in_memory_search(request, champion, champion is not None)
    provider = text_provider(store, settings.home / "cache" / "static_tables", None)
    outcome = train_predictor(parts.train, request, provider, run_dir, on_trial=on_trial)
    metrics = flat_metrics(outcome.comparison)
    return Fitted(
        outcome.predictor,
        outcome.data,
        outcome.split.train,
        metrics,
        dict(outcome.plots),
        request.trials,
    )
