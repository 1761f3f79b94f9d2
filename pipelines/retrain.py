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

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import Settings
from core.predictor import ALL_FEATURES, Predictor
from feature_store import RecordStore
from pipelines._retrain_lock import RetrainLockedError, holds_retrain_lock
from pipelines._retrain_steps import JobFrames, job_frames, recalibrated, score, trained

if TYPE_CHECKING:
    from registry import MLflowRegistry

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

log = logging.getLogger(__name__)

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
    from pipelines.train import flat_metrics, input_example
    from training import TrainingData, plots

    config = config or RetrainConfig()
    as_of = as_of or datetime.now(UTC)
    target = config.target
    frame = store.training_frame(served_model, end=as_of, as_of=as_of, require=(target,))
    if frame.num_rows == 0:
        raise ValueError(f"no records with {target} for served model {served_model!r}")
    champion_version = registry.alias_version(served_model)
    champion = (
        registry.load(served_model, version=champion_version.version)[0]
        if champion_version is not None
        else None
    )
    parts = job_frames(frame, config, as_of=as_of, recent_start=recent_start, holdout=False)
    warm = (
        config.warm_start != "off"
        and champion is not None
        and parts.rows["train"] < config.search_min_rows
    )
    if champion is not None and not (warm and config.warm_start == "recalibrate"):
        # Compared on the newest rows, held out of training (a recalibration is
        # cross-fitted over the whole window instead).
        parts = job_frames(frame, config, as_of=as_of, recent_start=recent_start, holdout=True)
    run_dir = settings.home / "runs" / f"retrain-{served_model}-{as_of:%Y%m%dT%H%M%S}"
    fitted = (
        recalibrated(champion, parts, config)
        if warm and champion is not None and config.warm_start == "recalibrate"
        else trained(
            served_model,
            settings,
            store,
            parts,
            config,
            champion if warm else None,
            run_dir,
            on_trial,
        )
    )
    meta = {
        "served_model": served_model,
        "trained_as_of": as_of.isoformat(),
        "target": target,
        "trigger": trigger,
    }
    challenger = Predictor(
        fitted.predictor.spec.model_copy(update={"metadata": meta}),
        fitted.predictor.arrays,
        fitted.predictor.tokenizer_json,
    )
    holdout: dict[str, dict[str, Any]] = dict(fitted.holdout)
    metrics = dict(fitted.metrics)
    artifacts = dict(fitted.plots)
    if champion is not None and not holdout and parts.holdout.num_rows:
        held = TrainingData.from_arrow(parts.holdout, target)
        for name, model in (("challenger", challenger), ("champion", champion)):
            holdout[name] = score(model, fitted.data, fitted.train_rows, held)
    if holdout:
        metrics.update(flat_metrics({f"holdout.{k}": v for k, v in holdout.items()}))
        artifacts["holdout"] = plots.reliability_diagram(
            {
                name: (list(map(float, s["coverage"])), list(s["coverage"].values()))
                for name, s in holdout.items()
            },
            run_dir / "holdout_reliability.png",
        )
    metrics.update({f"rows_{k}": float(v) for k, v in parts.rows.items()})
    if holdout:  # the rows behind the holdout.* metrics (a recalibration cross-fits recent)
        metrics["rows_compared"] = float(_compared_on(parts.rows)[0])
    if "mean_pinball" not in metrics and "challenger" in holdout:  # recalibrated: no search
        metrics["mean_pinball"] = float(holdout["challenger"]["mean_pinball"])
    params = {
        "served_model": served_model,
        "job": "retrain",
        "trigger": trigger,
        "policy": config.policy,
        "warm_start": config.warm_start if warm else "off",
        "as_of": as_of.isoformat(),
        "recent_start": (recent_start or as_of - timedelta(hours=config.window_h)).isoformat(),
        "champion_before": champion_version.version if champion_version else None,
        "trials": fitted.trials,
        "numeric": ",".join(challenger.spec.numeric),
        "reference_fraction": config.reference_fraction,
        "holdout_fraction": config.holdout_fraction,
    }
    version = registry.log_training(
        served_model,
        challenger,
        params=params,
        metrics=metrics,
        artifacts=artifacts,
        input_example=input_example(fitted.data.rows(fitted.train_rows[:3])),
        tags={"trained_as_of": as_of.isoformat(), "job": "retrain", "trigger": trigger},
    )
    promoted = _decide(config.policy, holdout)
    if promoted:
        registry.promote(served_model, version.version)
    if version.run_id:
        registry.client.set_tag(version.run_id, "promoted", str(promoted).lower())
    detail = outcome_detail(config.policy, holdout, *_compared_on(parts.rows))
    outcome = "promoted" if promoted else "not promoted"
    registry.tag_version(
        served_model, version.version, {"outcome": outcome, "outcome_detail": detail}
    )
    how = f"warm start ({config.warm_start})" if warm else f"{fitted.trials}-trial search"
    (log.info if promoted else log.warning)(
        "retrained %s (%s): v%d %s, %s", served_model, how, version.version, outcome, detail
    )
    return RetrainOutcome(
        served_model=served_model,
        run_id=version.run_id,
        version=version.version,
        promoted=promoted,
        policy=config.policy,
        champion_before=champion_version.version if champion_version else None,
        warm_start=config.warm_start if warm else "off",
        rows=parts.rows,
        holdout=holdout,
        metrics=metrics,
        as_of=as_of,
    )


def _compared_on(rows: dict[str, int]) -> tuple[int, str]:
    """(rows, what they are) behind the challenger/champion comparison."""
    if rows.get("holdout", 0):
        return rows["holdout"], "held-out"
    return rows.get("recent", 0), "recent (cross-fitted)"


def outcome_detail(
    policy: Policy, holdout: dict[str, dict[str, Any]], rows: int, basis: str = "held-out"
) -> str:
    """Why a challenger was (not) promoted, for people (tagged on its version).

    >>> outcome_detail("auto_if_better", {"challenger": {"mean_pinball": 1.5},
    ...     "champion": {"mean_pinball": 1.25}}, 300)
    'policy auto_if_better: challenger mean pinball 1.5 s vs champion 1.25 s on 300 held-out rows'
    >>> outcome_detail("auto_if_better", {}, 0)
    'policy auto_if_better: no champion to compare with'
    """
    if "champion" not in holdout or "challenger" not in holdout:
        return f"policy {policy}: no champion to compare with"
    ours, theirs = holdout["challenger"]["mean_pinball"], holdout["champion"]["mean_pinball"]
    return (
        f"policy {policy}: challenger mean pinball {ours:.4g} s vs champion {theirs:.4g} s "
        f"on {rows} {basis} rows"
    )


def _decide(policy: Policy, holdout: dict[str, dict[str, Any]]) -> bool:
    """Whether the challenger becomes the champion under ``policy``."""
    if policy == "always":
        return True
    if policy == "manual":
        return False
    if "champion" not in holdout:
        return True
    return bool(holdout["challenger"]["mean_pinball"] < holdout["champion"]["mean_pinball"])
