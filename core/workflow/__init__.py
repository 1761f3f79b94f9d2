"""Agentic workflow forecasts: call counts, tool times and distribution composition.

Pure and vectorized (NumPy): :mod:`core.workflow._compose` samples a task's remaining
time with common random numbers, :class:`CallCountModel` gives the call-count law from
the task text, :class:`ToolTimes` the tool time by command kind, and
:class:`WorkflowModel` is the bundle that ties them to a per-call latency predictor.
"""

from core.workflow._compose import (
    Draws,
    comonotone_sum,
    conditional_cdf,
    count_mean,
    count_quantiles,
    draw,
    latency_scores,
    pace,
    sample,
    shift_quantiles,
    sum_of_means,
    sum_of_p90,
)
from core.workflow._count import CallCountModel, unit_rows
from core.workflow._model import WorkflowModel
from core.workflow._spec import (
    COUNT_TEXT,
    ENDPOINT_COLUMNS,
    WORKFLOWS_DIR,
    LatencyTables,
    WorkflowSpec,
    bundle_versions,
    normal_cdf,
)
from core.workflow._tools import ToolTimes, command_kind

__all__ = [
    "COUNT_TEXT",
    "ENDPOINT_COLUMNS",
    "WORKFLOWS_DIR",
    "CallCountModel",
    "Draws",
    "LatencyTables",
    "ToolTimes",
    "WorkflowModel",
    "WorkflowSpec",
    "bundle_versions",
    "command_kind",
    "comonotone_sum",
    "conditional_cdf",
    "count_mean",
    "count_quantiles",
    "draw",
    "latency_scores",
    "normal_cdf",
    "pace",
    "sample",
    "shift_quantiles",
    "sum_of_means",
    "sum_of_p90",
    "unit_rows",
]
