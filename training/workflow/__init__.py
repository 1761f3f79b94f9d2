"""Training side of workflow forecasts: fit and score :class:`core.workflow.WorkflowModel`.

Reads the agentic task data (calls and task runs), fits the call-count model on
task-text embeddings, the tool-time tables and the per-call latency calibration, and
scores the compositions on held-out task runs.
"""

from training.workflow._calibrate import (
    REMAINING_BUCKETS,
    remaining_calibration,
    remaining_knots,
    remaining_pits,
    remaining_truth,
    task_calls,
)
from training.workflow._data import (
    CALLS_FILE,
    TASKS_FILE,
    WorkflowData,
    instance_fold,
    load_workflow_data,
    split_by_instance,
    write_subset,
)
from training.workflow._evaluate import (
    COHORTS,
    EVAL_LEVELS,
    REMAINING_STEPS,
    bonferroni,
    cohort_curves,
    coverage_pvalue,
    evaluate_workflows,
)
from training.workflow._fit import (
    count_kernels,
    fit_workflow_model,
    intraclass_correlation,
    max_calls_for,
    step_profile,
    tool_tables,
    wrapup_pmf,
)

__all__ = [
    "CALLS_FILE",
    "COHORTS",
    "EVAL_LEVELS",
    "REMAINING_BUCKETS",
    "REMAINING_STEPS",
    "TASKS_FILE",
    "WorkflowData",
    "bonferroni",
    "cohort_curves",
    "count_kernels",
    "coverage_pvalue",
    "evaluate_workflows",
    "fit_workflow_model",
    "instance_fold",
    "intraclass_correlation",
    "load_workflow_data",
    "max_calls_for",
    "remaining_calibration",
    "remaining_knots",
    "remaining_pits",
    "remaining_truth",
    "split_by_instance",
    "step_profile",
    "task_calls",
    "tool_tables",
    "wrapup_pmf",
    "write_subset",
]
