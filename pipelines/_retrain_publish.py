"""Registering a retraining job's challenger and deciding whether it becomes the champion.

:func:`register_and_decide` scores challenger and champion on the held-out rows (when
the fit did not already), logs one MLflow run with the job's parameters, metrics and a
reliability plot, applies the promotion policy and tags the version with the outcome
and why. :func:`pipelines.retrain.retrain` runs it after the fit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.predictor import Predictor
from pipelines._retrain_steps import Fitted, JobFrames, score

if TYPE_CHECKING:
    from pipelines.retrain import Policy, RetrainConfig, WarmStart
    from registry import MLflowRegistry, ModelVersion

log = logging.getLogger("pipelines.retrain")  # the job's log, whichever step writes it


@dataclass(frozen=True)
class Job:
    """What one retraining job was asked to do, for its run and tags.

    Attributes:
        served_model: The served model.
        config: The job's configuration.
        as_of: The knowledge cut-off.
        recent_start: Start of the recent window as given (None: ``as_of - window_h``).
        trigger: Why the job runs (``manual``, ``schedule``, ``drift``...).
        warm: How it trained (``off``: a fresh search).
        champion_before: The champion's version before the job (None: none).
    """

    served_model: str
    config: RetrainConfig
    as_of: datetime
    recent_start: datetime | None
    trigger: str
    warm: WarmStart
    champion_before: ModelVersion | None


def register_and_decide(
    job: Job,
    fitted: Fitted,
    parts: JobFrames,
    champion: Predictor | None,
    registry: MLflowRegistry,
    run_dir: Path,
) -> tuple[ModelVersion, dict[str, dict[str, Any]], dict[str, float], bool]:
    """Register the challenger, promote it under the policy and tag the outcome.

    Returns:
        The registered version, the held-out scores (``challenger`` / ``champion``;
        empty without a champion), the metrics logged and whether it was promoted.
    """
    from pipelines.train import input_example

    meta = {
        "served_model": job.served_model,
        "trained_as_of": job.as_of.isoformat(),
        "target": job.config.target,
        "trigger": job.trigger,
    }
    challenger = Predictor(
        fitted.predictor.spec.model_copy(update={"metadata": meta}),
        fitted.predictor.arrays,
        fitted.predictor.tokenizer_json,
    )
    holdout, metrics, artifacts = _evaluation(
        fitted, parts, (challenger, champion), job.config.target, run_dir
    )
    version = registry.log_training(
        job.served_model,
        challenger,
        params=_params(job, fitted, challenger),
        metrics=metrics,
        artifacts=artifacts,
        input_example=input_example(fitted.data.rows(fitted.train_rows[:3])),
        tags={"trained_as_of": job.as_of.isoformat(), "job": "retrain", "trigger": job.trigger},
    )
    promoted = _decide(job.config.policy, holdout)
    if promoted:
        registry.promote(job.served_model, version.version)
    if version.run_id:
        registry.client.set_tag(version.run_id, "promoted", str(promoted).lower())
    detail = outcome_detail(job.config.policy, holdout, *_compared_on(parts.rows))
    outcome = "promoted" if promoted else "not promoted"
    registry.tag_version(
        job.served_model, version.version, {"outcome": outcome, "outcome_detail": detail}
    )
    how = f"warm start ({job.warm})" if job.warm != "off" else f"{fitted.trials}-trial search"
    (log.info if promoted else log.warning)(
        "retrained %s (%s): v%d %s, %s", job.served_model, how, version.version, outcome, detail
    )
    return version, holdout, metrics, promoted


def _evaluation(
    fitted: Fitted,
    parts: JobFrames,
    models: tuple[Predictor, Predictor | None],
    target: str,
    run_dir: Path,
) -> tuple[dict[str, dict[str, Any]], dict[str, float], dict[str, Path]]:
    """Held-out scores, the run's metrics and its artifacts (a reliability plot of both).

    ``models`` is (challenger, champion); without a champion nothing is compared.
    """
    from pipelines.train import flat_metrics
    from training import TrainingData, plots

    challenger, champion = models
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
    return holdout, metrics, artifacts


def _params(job: Job, fitted: Fitted, challenger: Predictor) -> dict[str, Any]:
    """The MLflow run's parameters of the job."""
    config, as_of = job.config, job.as_of
    return {
        "served_model": job.served_model,
        "job": "retrain",
        "trigger": job.trigger,
        "policy": config.policy,
        "warm_start": job.warm,
        "as_of": as_of.isoformat(),
        "recent_start": (job.recent_start or as_of - timedelta(hours=config.window_h)).isoformat(),
        "champion_before": job.champion_before.version if job.champion_before else None,
        "trials": fitted.trials,
        "numeric": ",".join(challenger.spec.numeric),
        "reference_fraction": config.reference_fraction,
        "holdout_fraction": config.holdout_fraction,
    }


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
