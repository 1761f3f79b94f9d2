"""Traces as the simulation job reads them: arrivals, sessions and the training split.

:func:`load_trace` reads ``azure``, ``mooncake`` (independent requests) or
``minisweagent`` (agentic sessions: each call is submitted when the previous call of
its task has completed plus that call's tool time) and marks which requests train the
predictor: the first ``train_fraction`` of an arrival trace by time, or for sessions
the tasks outside the test fold of :func:`training.split_by_group` salted with
:data:`SESSION_SALT` (20% of the tasks, replayed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

FORMATS = ("azure", "mooncake", "minisweagent")
"""Trace formats the job reads."""
MAX_THINK_S = 60.0
"""Cap of a session call's tool time, seconds."""
SESSION_SALT = "tailcast-simulate"
"""Salt of the session split and of :func:`pipelines.simulate.task_folds`."""


@dataclass
class TraceData:
    """A trace as the simulation job needs it.

    Attributes:
        times: Submission time of each request relative to the trace start, seconds
            (for session calls: the task's first call only is meaningful).
        parent: Previous call of the same task (``-1``: first call / independent).
        think: Tool time between the parent's completion and this call, seconds.
        cols: Request columns for the predictor (record fields and workflow features).
        output_tokens: Generated tokens (true; only the service-time composition uses them).
        train: Rows that train the predictor (never simulated).
        sessions: Whether calls depend on each other.
    """

    times: F64
    parent: I64
    think: F64
    cols: dict[str, Any]
    output_tokens: F64
    train: npt.NDArray[np.bool_]
    sessions: bool

    @property
    def n(self) -> int:
        """Rows."""
        return len(self.times)

    def subset(self, rows: I64) -> TraceData:
        """The rows ``rows`` (parents re-indexed; parents outside the subset dropped)."""
        position = np.full(self.n, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        parent = self.parent[rows]
        parent = np.where(parent >= 0, position[np.maximum(parent, 0)], -1)
        return TraceData(
            times=self.times[rows],
            parent=parent,
            think=self.think[rows],
            cols={k: np.asarray(v)[rows] for k, v in self.cols.items()},
            output_tokens=self.output_tokens[rows],
            train=self.train[rows],
            sessions=self.sessions,
        )


def load_trace(path: Path, fmt: str, train_fraction: float = 0.4) -> TraceData:
    """Read a trace (see the module doc for the formats and the training split).

    Raises:
        ValueError: An unknown format.
    """
    if fmt == "minisweagent":
        return _load_sessions(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown trace format {fmt!r}; simulate reads {', '.join(FORMATS)}")
    import pyarrow as pa

    from feature_store.importers import get_importer

    tables = list(get_importer(fmt).read(path))
    table = pa.concat_tables(tables)
    good = np.asarray(table.column("_error").is_null().to_numpy(zero_copy_only=False))
    table = table.filter(pa.array(good))
    stamps = table.column("submitted_at").cast(pa.int64()).to_numpy().astype(np.float64) / 1e6
    order = np.argsort(stamps, kind="stable")
    stamps = stamps[order] - stamps[order][0]
    n = len(stamps)

    def numeric(name: str) -> F64:
        if name not in table.column_names:
            return np.zeros(n)
        col = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        out: F64 = np.nan_to_num(col)[order]
        return out

    cols: dict[str, Any] = {
        "request_id": np.asarray(table.column("request_id").to_pylist(), dtype=object)[order],
        "served_model": np.full(n, fmt, dtype=object),
        "input_tokens": numeric("input_tokens"),
        "cached_tokens": numeric("cached_tokens"),
    }
    if "workflow_id" in table.column_names and table.column("workflow_id").null_count < n:
        workflows = table.column("workflow_id").to_pylist()
        cols["workflow_id"] = np.asarray(workflows, dtype=object)[order]
        cols["step"] = numeric("step")
        cols["wf_prev_output_tokens"] = _previous_in_workflow(
            cols["workflow_id"], cols["step"], stamps, numeric("output_tokens")
        )
    return TraceData(
        times=stamps,
        parent=np.full(n, -1, dtype=np.int64),
        think=np.zeros(n),
        cols=cols,
        output_tokens=numeric("output_tokens"),
        train=np.arange(n) < int(train_fraction * n),
        sessions=False,
    )


def _previous_in_workflow(workflow: Any, step: F64, stamps: F64, values: F64) -> F64:
    """``values`` of the previous request of the same workflow (by step, then time), else NaN.

    The feature store's ``wf_prev_*`` lag, computed on arrays.
    """
    order = np.lexsort((stamps, step, workflow.astype(str)))
    out = np.full(len(values), np.nan)
    same = workflow[order][1:] == workflow[order][:-1]
    out[order[1:][same]] = values[order[:-1][same]]
    return out


def _load_sessions(path: Path) -> TraceData:
    import pandas as pd

    from training import group_keys, split_by_group

    calls = pd.read_csv(path)
    calls = calls.sort_values(["run", "instance_id", "step"], kind="stable").reset_index(drop=True)
    task = calls["run"] + "/" + calls["instance_id"]
    first = task.ne(task.shift())
    n = len(calls)
    parent = np.where(first, -1, np.arange(n) - 1).astype(np.int64)
    tool = (calls["tool_end_ts"] - calls["call_end_ts"]).to_numpy(np.float64)
    think = np.zeros(n)
    think[~first.to_numpy()] = np.clip(np.nan_to_num(tool[:-1][~first.to_numpy()[1:]]), 0, None)
    think = np.minimum(think, MAX_THINK_S)
    start = calls["call_start_ts"].fillna(calls["call_end_ts"]).to_numpy(np.float64)
    prev_out = calls["completion_tokens"].shift().where(~first).to_numpy(np.float64)
    prev_lat = calls["latency_s"].shift().where(~first).to_numpy(np.float64)
    cols: dict[str, Any] = {
        "request_id": (task + "/" + calls["step"].astype(str)).to_numpy(dtype=object),
        "served_model": calls["model"].to_numpy(dtype=object),
        "workflow_id": task.to_numpy(dtype=object),
        "step": calls["step"].to_numpy(np.float64),
        "input_tokens": calls["prompt_tokens"].to_numpy(np.float64),
        "cached_tokens": calls["cached_tokens"].to_numpy(np.float64),
        "prompt": calls["prev_text"].fillna("").to_numpy(dtype=object),
        "wf_prev_output_tokens": prev_out,
        "wf_prev_latency_s": prev_lat,
    }
    # Own salt: the training job splits the training tasks again with its default salt,
    # and needs tasks in every one of its folds.
    split = split_by_group(group_keys(cols), salt=SESSION_SALT)
    train = np.ones(n, dtype=bool)
    train[split.test] = False
    return TraceData(
        times=start - np.nanmin(start),
        parent=parent,
        think=think,
        cols=cols,
        output_tokens=calls["completion_tokens"].to_numpy(np.float64),
        train=train,
        sessions=True,
    )
