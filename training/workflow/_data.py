"""Agentic task data: the ``minisweagent_calls``/``minisweagent_tasks`` pair of one DIR.

A DIR holds ``minisweagent_calls.csv.gz`` (one row per LLM call) and
``minisweagent_tasks.csv.gz`` (one row per task run), as in ``../shared/data/agentic``.
A task run is keyed by ``(run, instance_id)``; its wall time (``wall_s``) runs from the
end of its first call to the end of its last.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CALLS_FILE, TASKS_FILE = "minisweagent_calls.csv.gz", "minisweagent_tasks.csv.gz"
CALL_COLUMNS = ("run", "instance_id", "model", "step", "call_end_ts", "latency_s", "tool_end_ts")
CALL_COLUMNS_OPTIONAL = ("command", "prompt_tokens", "cached_tokens")
TASK_COLUMNS = ("run", "instance_id", "model", "n_llm_calls", "wall_s", "task_text")


@dataclass
class WorkflowData:
    """Calls and task runs of one directory.

    Attributes:
        calls: One row per call, sorted by task run and step; adds ``task``
            (``"run/instance_id"``) and ``tool_s`` (tool time after the call, seconds,
            clipped at 0; NaN when not recorded).
        tasks: One row per task run; adds ``task`` and ``served_model`` (the model name
            after any ``provider/`` prefix).
    """

    calls: pd.DataFrame
    tasks: pd.DataFrame


def _read(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: cannot read as CSV ({exc})") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (line 1, the header)")
    return frame


def _numeric(frame: pd.DataFrame, path: Path, columns: tuple[str, ...]) -> None:
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # header is line 1
            raise ValueError(f"{path}: line {line}: field {column} is not a number")
        frame[column] = values


def load_workflow_data(directory: Path) -> WorkflowData:
    """Read and check one DIR.

    Raises:
        ValueError: Naming the file, line and field of the first problem.
    """
    calls_path, tasks_path = directory / CALLS_FILE, directory / TASKS_FILE
    calls = _read(calls_path, CALL_COLUMNS)
    tasks = _read(tasks_path, TASK_COLUMNS)
    _numeric(calls, calls_path, ("step", "call_end_ts", "latency_s", "tool_end_ts"))
    _numeric(tasks, tasks_path, ("n_llm_calls", "wall_s"))
    for column in CALL_COLUMNS_OPTIONAL:
        if column not in calls.columns:
            calls[column] = None
    calls["task"] = calls["run"].astype(str) + "/" + calls["instance_id"].astype(str)
    calls = calls.sort_values(["task", "step"], kind="stable").reset_index(drop=True)
    calls["tool_s"] = (calls["tool_end_ts"] - calls["call_end_ts"]).clip(lower=0.0)
    tasks = tasks.copy()
    tasks["task"] = tasks["run"].astype(str) + "/" + tasks["instance_id"].astype(str)
    tasks["served_model"] = tasks["model"].astype(str).str.rsplit("/", n=1).str[-1]
    tasks["task_text"] = tasks["task_text"].fillna("").astype(str)
    bad = tasks["n_llm_calls"] < 1
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise ValueError(f"{tasks_path}: line {line}: field n_llm_calls must be >= 1")
    if tasks.empty:
        raise ValueError(f"{tasks_path}: no task runs")
    return WorkflowData(calls=calls, tasks=tasks.reset_index(drop=True))


def instance_fold(instance_id: str, salt: str = "tailcast-workflows") -> float:
    """A stable unit-interval hash of a task instance (for held-out splits)."""
    digest = hashlib.blake2b(f"{salt}:{instance_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_by_instance(
    data: WorkflowData, test_fraction: float = 0.3, salt: str = "tailcast-workflows"
) -> tuple[WorkflowData, WorkflowData]:
    """Split into (train, test) so every run of one instance is on one side.

    >>> calls = pd.DataFrame({"instance_id": ["a", "b"], "task": ["r/a", "r/b"]})
    >>> tasks = pd.DataFrame({"instance_id": ["a", "b"], "task": ["r/a", "r/b"]})
    >>> tr, te = split_by_instance(WorkflowData(calls, tasks), 0.5)
    >>> len(tr.tasks) + len(te.tasks)
    2
    """
    test_ids = {
        i for i in data.tasks["instance_id"].unique() if instance_fold(i, salt) < test_fraction
    }

    def part(frame: pd.DataFrame, test: bool) -> pd.DataFrame:
        mask = frame["instance_id"].isin(test_ids)
        return frame[mask if test else ~mask].reset_index(drop=True)

    return (
        WorkflowData(part(data.calls, False), part(data.tasks, False)),
        WorkflowData(part(data.calls, True), part(data.tasks, True)),
    )


def write_subset(source: Path, directory: Path, instance_ids: set[str]) -> Path:
    """Write the rows of ``source`` whose ``instance_id`` is in ``instance_ids``.

    Values are copied as text, so the subset has exactly the source's format.

    Args:
        source: A DIR with both files.
        directory: Output DIR (created).
        instance_ids: Task instances to keep.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name in (CALLS_FILE, TASKS_FILE):
        frame = pd.read_csv(source / name, dtype=str, keep_default_na=False)
        frame[frame["instance_id"].isin(instance_ids)].to_csv(directory / name, index=False)
    return directory
