"""Drift reports: an evidently HTML report of a reference window against the current one.

The reference window is the training data of the model being judged; the current
window is what it has been judged on since. Both carry the features and, where known,
``u`` (the PIT value of each completion under the model's forecast; on the reference
that is the in-sample PIT). evidently (slow to import, ~8 s) and mlflow are imported
only inside the functions that need them.

Example:
    >>> report_id("deepseek-chat", datetime(2026, 4, 11, 7, 5, tzinfo=UTC))
    'deepseek-chat-20260411T070500Z'
    >>> report_id("a/b c", datetime(2026, 4, 11, tzinfo=UTC), "x")
    'a_b_c-20260411T000000Z-x'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.drift import DriftReportInfo

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

#: Fewest rows each window needs for a report (fewer say nothing about drift, and
#: evidently fails on some: one row leaves its text statistics no terms).
MIN_ROWS = 10


class NotEnoughDataError(LookupError, ValueError):
    """The windows cannot be compared: too few rows, or no column with values in both.

    A :class:`LookupError` (the data looked for is not there yet) and, for callers of
    earlier versions, a :class:`ValueError`.
    """


def report_id(served_model: str, at: datetime, suffix: str | None = None) -> str:
    """A file-name-safe report id: ``<served_model>-<UTC time>[-suffix]``."""
    parts = [_UNSAFE.sub("_", served_model), at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")]
    if suffix:
        parts.append(_UNSAFE.sub("_", suffix))
    return "-".join(parts)[:200]


def _shared_columns(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """Columns both frames have with at least one value each (evidently rejects empty ones)."""
    cols = [
        c
        for c in reference.columns
        if c in current.columns and reference[c].notna().any() and current[c].notna().any()
    ]
    if not cols:
        raise NotEnoughDataError("reference and current share no column with values")
    return cols


def _run(reference: pd.DataFrame, current: pd.DataFrame) -> Any:
    from evidently import Report  # type: ignore[import-untyped]
    from evidently.presets import DataDriftPreset  # type: ignore[import-untyped]

    for name, frame in (("reference", reference), ("current", current)):
        if len(frame) < MIN_ROWS:
            raise NotEnoughDataError(
                f"the {name} window has {len(frame)} rows; a drift report needs at least "
                f"{MIN_ROWS} in each"
            )
    cols = _shared_columns(reference, current)
    report = Report([DataDriftPreset()])
    return report.run(reference_data=reference[cols], current_data=current[cols])


def stat_key(method: str, column: str) -> str:
    """Summary key of one column's drift statistic, named by what the number is.

    evidently picks a test per column (by type and size): a test's p-value (low means
    drift) is ``pvalue:<column>``; a distance (Wasserstein, Jensen-Shannon, PSI...;
    high means drift) is ``distance:<column>``.

    >>> stat_key("K-S p_value", "u"), stat_key("Wasserstein distance (normed)", "u")
    ('pvalue:u', 'distance:u')
    """
    kind = "pvalue" if "p_value" in method.lower().replace("-", "_") else "distance"
    return f"{kind}:{column}"


def _summary(snapshot: Any) -> dict[str, float]:
    """Headline numbers of a snapshot: drift share, each column's p-value or distance."""
    out: dict[str, float] = {}
    for metric in snapshot.dict().get("metrics", []):
        cfg, value = metric.get("config", {}), metric.get("value")
        kind = str(cfg.get("type", ""))
        if kind.endswith("DriftedColumnsCount") and isinstance(value, dict):
            out["drifted_columns"] = float(value.get("count", 0.0))
            out["drift_share"] = float(value.get("share", 0.0))
        elif kind.endswith("ValueDrift") and isinstance(value, int | float):
            out[stat_key(str(cfg.get("method", "")), str(cfg.get("column")))] = float(value)
    return out


def build_report(reference: pd.DataFrame, current: pd.DataFrame, path: Path) -> Path:
    """Write an evidently data-drift report comparing ``current`` with ``reference``.

    Args:
        reference: The reference window (e.g. training data), one row per completion;
            numeric and categorical feature columns, optionally ``u`` (PIT values).
        current: The current window; only the columns both frames have (with at least
            one value in each) are compared.
        path: Where the HTML goes (parent directories are created).

    Returns:
        ``path``.

    Raises:
        NotEnoughDataError: When a frame has fewer than :data:`MIN_ROWS` rows or the frames
            share no column with values.
    """
    snapshot = _run(reference, current)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def write_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    directory: Path,
    served_model: str,
    *,
    now: datetime | None = None,
    suffix: str | None = None,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    experiment: str = "tailcast-drift",
) -> DriftReportInfo:
    """Build a report, save it as ``<directory>/<report_id>.html`` and log it to MLflow.

    Args:
        reference: The reference window (training data), features and optionally ``u``.
        current: The current window, same columns.
        directory: Where reports are kept (``settings.home / "drift_reports"``).
        served_model: The served model the windows belong to.
        now: Creation time (UTC); default: now.
        suffix: Extra id part (e.g. the triggering event's id), to keep ids unique.
        tracking_uri: MLflow tracking URI; with it (or ``run_id``) the HTML is logged as
            an artifact and the summary as metrics, in ``run_id`` or a new run of
            ``experiment``.
        run_id: An existing MLflow run to log into.
        experiment: Experiment of the new run when no ``run_id`` is given.

    Returns:
        The report's metadata (store it with the feature store's ``record_drift_report``).

    Raises:
        NotEnoughDataError: As :func:`build_report`; nothing is written.
    """
    created = (now or datetime.now(UTC)).astimezone(UTC)
    rid = report_id(served_model, created, suffix)
    path = directory / f"{rid}.html"
    snapshot = _run(reference, current)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    summary = _summary(snapshot)
    logged = None
    if tracking_uri is not None or run_id is not None:
        logged = _log_to_mlflow(path, summary, served_model, tracking_uri, run_id, experiment)
    return DriftReportInfo(
        report_id=rid,
        served_model=served_model,
        created_at=created,
        path=str(path),
        reference_rows=len(reference),
        current_rows=len(current),
        mlflow_run_id=logged,
        summary=summary,
    )


def _log_to_mlflow(
    path: Path,
    summary: dict[str, float],
    served_model: str,
    tracking_uri: str | None,
    run_id: str | None,
    experiment: str,
) -> str:
    """Log the HTML and the summary to MLflow; the run id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if run_id is None:
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
        run = client.create_run(exp_id, tags={"tailcast.served_model": served_model})
        run_id = str(run.info.run_id)
        owned = True
    else:
        owned = False
    client.log_artifact(run_id, str(path), artifact_path="drift_reports")
    for key, value in summary.items():
        client.log_metric(run_id, "drift." + _UNSAFE.sub("_", key), value)
    if owned:
        client.set_terminated(run_id)
    return run_id
