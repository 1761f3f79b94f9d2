"""The retraining job: recent window + reference sample -> challenger -> policy -> champion.

One function, :func:`retrain`, serves every trigger: ``tailcast pipeline retrain``, the
cron scheduler (:mod:`pipelines.schedule`), a drift alarm (:func:`drift_trigger`) and
``tailcast drift replay --retrain``. A job

1. builds the frame known at ``as_of``: the *recent window* (records submitted since
   ``recent_start``, default ``as_of - window``; at least the last ``min_recent``) plus
   a seeded *reference sample* of older records (``reference_fraction`` of the recent
   training rows), so the new model follows the present without forgetting the rest;
2. holds out the most recent ``holdout_fraction`` of the recent window (when there is a
   champion to compare with);
3. trains: a *warm start* when a champion exists and the frame is small
   (< ``search_min_rows``): by default the champion's network with conformal offsets
   recomputed on the recent window (``recalibrate``), or one fit of its architecture
   and features (``refit``); else a fresh Optuna search of ``trials`` trials (in
   memory: a shifted window must not join the study of older data);
4. scores challenger and champion on the held-out window and registers the challenger
   (one MLflow run: job parameters, the training metrics, ``holdout.challenger.*`` and
   ``holdout.champion.*``, a reliability plot of both);
5. promotes under the policy: ``auto_if_better`` (lower held-out mean pinball, or no
   champion), ``always``, or ``manual`` (a person promotes with ``tailcast models
   promote``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import Settings
from core.predictor import ALL_FEATURES, Predictor
from feature_store import RecordStore
from pipelines._retrain_lock import RetrainLockedError, holds_retrain_lock
from pipelines._retrain_publish import Job, register_and_decide
from pipelines._retrain_steps import JobFrames, job_frames, recalibrated, trained

if TYPE_CHECKING:
    from registry import MLflowRegistry, ModelVersion

__all__ = [
    "SPEED_FEATURES",
    "STATIC_FEATURES",
    "JobFrames",
    "Policy",
    "RetrainConfig",
    "RetrainLockedError",
    "RetrainOutcome",
    "WarmStart",
    "job_frames",
    "retrain",
]

Policy = Literal["auto_if_better", "manual", "always"]
WarmStart = Literal["recalibrate", "refit", "off"]

#: Runtime features that track the endpoint's recent speed (left out by ``--features static``).
SPEED_FEATURES: tuple[str, ...] = (
    "log_ep_tokens_per_s",
    "log_ep_latency_s",
    "has_endpoint_history",
    "log_prev_latency_s",
)
STATIC_FEATURES: tuple[str, ...] = tuple(f for f in ALL_FEATURES if f not in SPEED_FEATURES)


class RetrainConfig(BaseSettings):
    """How a retraining job runs (environment prefix ``TAILCAST_RETRAIN_``).

    Attributes:
        policy: Promotion policy (see the module docstring).
        window_h: Length of the recent window in hours, ending at the job's ``as_of``.
        min_recent: Most recent records the default window holds at least (a window
            with an explicit start, e.g. since a drifting model took over, is kept).
        reference_fraction: Older records sampled, as a fraction of the recent
            training rows (0: none).
        holdout_fraction: Most recent share of the window held out to compare
            challenger and champion.
        min_holdout: Held-out rows at least (when the window allows).
        trials: Optuna trials of a fresh search.
        search_min_rows: Frames with at least this many rows get a fresh search even
            when a champion could be warm-started.
        warm_start: ``recalibrate`` (the champion's network with conformal offsets
            from the recent window), ``refit`` (one fit of the champion's architecture
            and features on the job's frame) or ``off`` (always search).
        min_calibration: Recent rows a recalibration needs at least.
        min_group: Calibration rows a (prompt class, device) group needs for its own
            offsets.
        text_kinds: Text variants a fresh search may try (default: all).
        timeout_s: Seconds after which a search starts no new trial.
        numeric: Numeric features of a fresh model (default: the champion's, else all).
        target: The record field predicted.
        seed: Seed of the sample, the search and the fits.
        cross_fit: Members of a fitted (not recalibrated) predictor, as
            :attr:`training.TrainRequest.cross_fit` (0 or 1: one fit).
    """

    model_config = SettingsConfigDict(
        env_prefix="TAILCAST_RETRAIN_", env_file=".env", extra="ignore", frozen=True
    )

    policy: Policy = "auto_if_better"
    window_h: float = Field(default=24.0, gt=0)
    min_recent: int = Field(default=500, ge=0)
    reference_fraction: float = Field(default=0.5, ge=0)
    holdout_fraction: float = Field(default=0.2, ge=0, lt=1)
    min_holdout: int = Field(default=50, ge=1)
    trials: int = Field(default=4, ge=1)
    search_min_rows: int = Field(default=5000, ge=0)
    warm_start: WarmStart = "recalibrate"
    min_calibration: int = Field(default=100, ge=10)
    min_group: int = Field(default=200, ge=1)
    text_kinds: tuple[str, ...] | None = None
    timeout_s: float = Field(default=300.0, gt=0)
    numeric: tuple[str, ...] | None = None
    target: str = "latency_s"
    seed: int = 0
    cross_fit: int = Field(default=5, ge=0)


@dataclass
class RetrainOutcome:
    """What one retraining job did.

    Attributes:
        served_model: The served model.
        run_id: MLflow run of the job.
        version: Registered challenger version.
        promoted: Whether it became the champion.
        policy: The policy applied.
        champion_before: Champion version before the job (None: there was none).
        warm_start: Whether the champion's architecture was refitted (no search).
        rows: Rows per part (recent, reference, train, holdout).
        holdout: ``challenger`` / ``champion`` -> mean pinball, CRPS, coverage on the
            held-out window (empty without a champion).
        metrics: Everything logged to the MLflow run.
        as_of: The knowledge cut-off.
    """

    served_model: str
    run_id: str | None
    version: int
    promoted: bool
    policy: Policy
    champion_before: int | None
    warm_start: WarmStart
    rows: dict[str, int]
    holdout: dict[str, dict[str, Any]]
    metrics: dict[str, float]
    as_of: datetime

    def as_json(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "served_model": self.served_model,
            "run_id": self.run_id,
            "version": self.version,
            "promoted": self.promoted,
            "policy": self.policy,
            "champion_before": self.champion_before,
            "warm_start": self.warm_start,
            "rows": self.rows,
            "holdout": self.holdout,
            "as_of": self.as_of.isoformat(),
        }


@holds_retrain_lock
def retrain(
    served_model: str,
    settings: Settings,
    store: RecordStore,
    registry: MLflowRegistry,
    *,
    config: RetrainConfig | None = None,
    as_of: datetime | None = None,
    recent_start: datetime | None = None,
    trigger: str = "manual",
    on_trial: Callable[[Any], None] | None = None,
) -> RetrainOutcome:
    """Run one retraining job for ``served_model`` (see the module docstring).

    The job holds the store lock ``retrain:<served_model>`` throughout, so processes
    sharing the store never retrain one served model twice at once.

    Args:
        served_model: The served model.
        settings: Where run directories and caches go (``settings.home``).
        store: The feature store (records known at ``as_of`` are used).
        registry: The MLflow registry.
        config: Job configuration (default: from the environment).
        as_of: Knowledge cut-off (default now, UTC).
        recent_start: Start of the recent window (e.g. when the drifting model took
            over); default ``as_of - config.window_h``.
        trigger: Why the job runs (``manual``, ``schedule``, ``drift``...), logged.
        on_trial: Progress callback per search trial.

    Raises:
        ValueError: Fewer than 100 usable rows.
        RetrainLockedError: Another job of ``served_model`` holds the lock (nothing ran).
    """
    config = config or RetrainConfig()
    as_of = as_of or datetime.now(UTC)
    frame = store.training_frame(served_model, end=as_of, as_of=as_of, require=(config.target,))
    if frame.num_rows == 0:
        raise ValueError(f"no records with {config.target} for served model {served_model!r}")
    champion_version = registry.alias_version(served_model)
    champion = _champion(registry, served_model, champion_version)
    parts, warm = _plan(frame, config, champion, as_of, recent_start)
    job = Job(served_model, config, as_of, recent_start, trigger, warm, champion_version)
    run_dir = settings.home / "runs" / f"retrain-{served_model}-{as_of:%Y%m%dT%H%M%S}"
    if warm == "recalibrate" and champion is not None:
        fitted = recalibrated(champion, parts, config)
    else:
        warm_from = champion if warm != "off" else None
        fitted = trained(served_model, settings, store, parts, config, warm_from, run_dir, on_trial)
    published = register_and_decide(job, fitted, parts, champion, registry, run_dir)
    return _outcome(job, parts, *published)


def _outcome(
    job: Job,
    parts: JobFrames,
    version: ModelVersion,
    holdout: dict[str, dict[str, Any]],
    metrics: dict[str, float],
    promoted: bool,
) -> RetrainOutcome:
    """The job's summary from what :func:`register_and_decide` did."""
    before = job.champion_before
    return RetrainOutcome(
        served_model=job.served_model,
        run_id=version.run_id,
        version=version.version,
        promoted=promoted,
        policy=job.config.policy,
        champion_before=before.version if before else None,
        warm_start=job.warm,
        rows=parts.rows,
        holdout=holdout,
        metrics=metrics,
        as_of=job.as_of,
    )


def _champion(
    registry: MLflowRegistry, served_model: str, version: ModelVersion | None
) -> Predictor | None:
    """The champion's predictor (None: no champion)."""
    return None if version is None else registry.load(served_model, version=version.version)[0]


def _plan(
    frame: pa.Table,
    config: RetrainConfig,
    champion: Predictor | None,
    as_of: datetime,
    recent_start: datetime | None,
) -> tuple[JobFrames, WarmStart]:
    """The job's frames and how it trains (``off``: a fresh search).

    A warm start needs a champion and fewer than ``config.search_min_rows`` training
    rows. With a champion, the newest rows are held out for the comparison, except for
    a recalibration (it is cross-fitted over the whole window instead).
    """
    parts = job_frames(frame, config, as_of=as_of, recent_start=recent_start, holdout=False)
    warm = (
        config.warm_start != "off"
        and champion is not None
        and parts.rows["train"] < config.search_min_rows
    )
    if champion is not None and not (warm and config.warm_start == "recalibrate"):
        parts = job_frames(frame, config, as_of=as_of, recent_start=recent_start, holdout=True)
    return parts, config.warm_start if warm else "off"
