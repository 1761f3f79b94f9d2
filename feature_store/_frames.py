"""SQL for point-in-time-correct training frames and live endpoint features.

Workflow features (``wf_prev_output_tokens``, ``wf_prev_latency_s``) describe the
previous call of the same workflow, and are null unless that call had completed
before this one was submitted.

Endpoint features summarize the last ``window`` completions of the same
(served_model, device) that *finished strictly before* a record was submitted.
They are computed once per completion with a window function ordered by
completion time, then attached to each record with an ASOF join on
``submitted_at > completed_at``: the newest completion known at submission.
A training row therefore sees exactly what a live predictor would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core import RECORD_FIELDS

ENDPOINT_FEATURES: tuple[str, ...] = (
    "ep_completions",
    "ep_median_tokens_per_s",
    "ep_median_latency_s",
)
WORKFLOW_FEATURES: tuple[str, ...] = ("wf_prev_output_tokens", "wf_prev_latency_s")
EXTRA_COLUMNS: tuple[str, ...] = (
    "prompt_sha256",
    "completed_at",
    *ENDPOINT_FEATURES,
    *WORKFLOW_FEATURES,
)
FRAME_COLUMNS: tuple[str, ...] = (*RECORD_FIELDS, *EXTRA_COLUMNS)


def _completions_cte(window: int, as_of_param: bool) -> str:
    limit = "AND completed_at <= ?" if as_of_param else ""
    return (
        "comp AS (SELECT served_model, device, completed_at, "
        f"count(*) OVER w AS ep_completions, "
        "median(output_tokens / latency_s) OVER w AS ep_median_tokens_per_s, "
        "median(latency_s) OVER w AS ep_median_latency_s "
        f"FROM records WHERE latency_s IS NOT NULL {limit} "
        "WINDOW w AS (PARTITION BY served_model, device ORDER BY completed_at, request_id "
        f"ROWS BETWEEN {window - 1} PRECEDING AND CURRENT ROW) "
        # Completions finishing at the same instant: keep the last in window order, whose
        # window holds them all (the ASOF join would otherwise pick one at random).
        "QUALIFY row_number() OVER (PARTITION BY served_model, device, completed_at "
        "ORDER BY request_id DESC) = 1)"
    )


def workflow_prev_sql(among: str = "", collate: str = "") -> str:
    """Each workflow record's previous call: ``lag`` in (step, submitted_at, request_id).

    Args:
        among: An extra condition on ``records r`` (e.g. only some workflows).
        collate: A collation suffix for ``request_id`` (PostgreSQL: ``COLLATE "C"``, the
            byte order DuckDB sorts text in).
    """
    extra = f" AND ({among})" if among else ""
    return (
        "SELECT r.request_id, r.submitted_at, "
        "lag(r.output_tokens) OVER wf AS wf_prev_output_tokens, "
        "lag(r.latency_s) OVER wf AS wf_prev_latency_s, "
        "lag(r.completed_at) OVER wf AS prev_completed_at "
        f"FROM records r WHERE r.workflow_id IS NOT NULL{extra} "
        "WINDOW wf AS (PARTITION BY r.served_model, r.workflow_id ORDER BY r.step, "
        f"r.submitted_at, r.request_id{collate})"
    )


_WORKFLOW_PREV = workflow_prev_sql()


def training_frame_sql(
    served_model: str | None,
    start: datetime | None,
    end: datetime | None,
    columns: Sequence[str] | None,
    *,
    as_of: datetime | None,
    require: Sequence[str],
    window: int,
) -> tuple[str, list[Any]]:
    """Build the training-frame query and its parameters.

    Raises:
        ValueError: On no columns, an unknown column or a window below 1.
    """
    if window < 1:
        raise ValueError("endpoint window must be >= 1")
    wanted = tuple(columns) if columns is not None else FRAME_COLUMNS
    if not wanted:
        raise ValueError("a training frame needs at least one column")
    unknown = sorted(set(wanted) - set(FRAME_COLUMNS))
    bad_require = sorted(set(require) - set(RECORD_FIELDS))
    if unknown or bad_require:
        raise ValueError(f"unknown columns {unknown + bad_require}; known: {list(FRAME_COLUMNS)}")
    params: list[Any] = []
    if as_of is not None:
        params.append(as_of)
    where = ["TRUE"]
    if served_model is not None:
        where.append("r.served_model = ?")
        params.append(served_model)
    if start is not None:
        where.append("r.submitted_at >= ?")
        params.append(start)
    if end is not None:
        where.append("r.submitted_at < ?")
        params.append(end)
    if as_of is not None:
        where.append("(r.completed_at IS NULL OR r.completed_at <= ?)")
        params.append(as_of)
    where += [f"r.{c} IS NOT NULL" for c in require]

    def col(name: str) -> str:
        if name == "prompt":
            return "p.text AS prompt"
        if name == "ep_completions":
            return "coalesce(c.ep_completions, 0) AS ep_completions"
        if name in ENDPOINT_FEATURES:
            return f"c.{name}"
        if name in WORKFLOW_FEATURES:
            # The previous call of the same workflow, only if it had finished.
            return f"CASE WHEN w.prev_completed_at < r.submitted_at THEN w.{name} END AS {name}"
        return f"r.{name}"

    sql = (
        f"WITH {_completions_cte(window, as_of is not None)} "
        f"SELECT {', '.join(col(c) for c in wanted)} FROM records r "
        "LEFT JOIN prompts p ON p.sha256 = r.prompt_sha256 "
        f"LEFT JOIN ({_WORKFLOW_PREV}) w ON w.request_id = r.request_id "
        "ASOF LEFT JOIN comp c ON r.served_model = c.served_model AND r.device = c.device "
        "AND r.submitted_at > c.completed_at "
        f"WHERE {' AND '.join(where)} ORDER BY r.submitted_at, r.request_id"
    )
    return sql, params


def previous_calls_sql(ids: str, collate: str = "") -> str:
    """Query for the training frame's ``wf_prev_*`` of some stored records.

    Only the workflows of the records asked for are windowed, so the cost follows their
    calls, not the store. Rows: request_id, wf_prev_output_tokens, wf_prev_latency_s,
    for the records whose previous call had completed before they were submitted.

    Args:
        ids: SQL for the set of request ids (a subquery or ``ANY(...)`` list), used twice.
        collate: As for :func:`workflow_prev_sql`.
    """
    wanted = (
        "EXISTS (SELECT 1 FROM records t WHERE t.request_id "
        f"{ids} AND t.served_model = r.served_model AND t.workflow_id = r.workflow_id)"
    )
    return (
        "SELECT request_id, wf_prev_output_tokens, wf_prev_latency_s "
        f"FROM ({workflow_prev_sql(wanted, collate)}) w "
        f"WHERE w.request_id {ids} AND w.prev_completed_at < w.submitted_at"
    )


def endpoint_stats_sql(
    served_model: str, device: str, at: datetime, window: int
) -> tuple[str, list[Any]]:
    """Query for the endpoint features a live predictor sees at time ``at``."""
    if window < 1:
        raise ValueError("endpoint window must be >= 1")
    sql = (
        "WITH recent AS (SELECT output_tokens, latency_s FROM records "
        "WHERE served_model = ? AND device = ? AND latency_s IS NOT NULL AND completed_at < ? "
        f"ORDER BY completed_at DESC, request_id DESC LIMIT {int(window)}) "
        "SELECT count(*), median(output_tokens / latency_s), median(latency_s) FROM recent"
    )
    return sql, [served_model, device, at]
