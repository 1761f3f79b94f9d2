"""Workflow jobs: fit on a DIR of agentic task data, score on another, or publish a bundle.

Wires the feature store (a scratch DuckDB store computes point-in-time endpoint features
of the calls), training (the per-call latency predictor through
:func:`training.train_predictor`, then :func:`training.workflow.fit_workflow_model`) and
the bundle directory the service loads (``<home>/workflows/vNNNN``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from core import Settings
from core.predictor import Predictor, TextSpec, text_featurizer
from core.workflow import (
    COUNT_TEXT,
    ENDPOINT_COLUMNS,
    WORKFLOWS_DIR,
    WorkflowModel,
    bundle_versions,
    draw,
)

#: Per-call features a future call has (context from the step profile, endpoint speed).
LATENCY_FEATURES: tuple[str, ...] = (
    "log_input_tokens",
    "cached_fraction",
    "log_uncached_tokens",
    "log_step",
    "log_ep_tokens_per_s",
    "log_ep_latency_s",
    "has_endpoint_history",
)
Progress = Callable[[str, int, int], None]
Endpoints = dict[str, dict[str, float | None]]


@dataclass
class FittedWorkflows:
    """A fitted workflow model with what scoring it needs."""

    model: WorkflowModel
    data: Any  # training.workflow.WorkflowData
    endpoints: Endpoints


def _noop(stage: str, done: int, total: int) -> None:
    del stage, done, total


def endpoint_features(frame: pa.Table) -> Endpoints:
    """Endpoint features at the first logged call of each task run, by ``run/instance``."""
    cols = {c: frame.column(c).to_pylist() for c in ("workflow_id", "step", *ENDPOINT_COLUMNS)}
    first: dict[str, tuple[float, dict[str, float | None]]] = {}
    for i, task in enumerate(cols["workflow_id"]):
        step = float(cols["step"][i] if cols["step"][i] is not None else np.inf)
        if task is not None and (task not in first or step < first[task][0]):
            first[task] = (step, {c: cols[c][i] for c in ENDPOINT_COLUMNS})
    return {task: values for task, (_, values) in first.items()}


def _calls_frame(calls_path: Path, work: Path) -> pa.Table:
    from feature_store import DuckDBStore
    from feature_store.importers import get_importer

    with DuckDBStore(work / "calls.duckdb") as store:
        store.ingest_batches(get_importer("minisweagent").read(calls_path))
        return store.training_frame(None, require=("latency_s",))


def train_latency_predictor(
    frame: pa.Table, work: Path, trials: int, timeout_s: float, seed: int, progress: Progress
) -> tuple[Predictor, set[str]]:
    """Train the per-call latency predictor; returns it and the held-out request ids."""
    from training import SearchSpace, TrainConfig, TrainRequest, train_predictor

    request = TrainRequest(
        served_model="workflow-calls",
        trials=trials,
        timeout_s=timeout_s,
        storage=None,
        seed=seed,
        base=TrainConfig(numeric=LATENCY_FEATURES, batch_size=512, max_epochs=40, patience=6),
        space=SearchSpace(text_variants=(TextSpec(kind="none"),), loss_spaces=("transformed",)),
        prompt_classes=0,
        max_cost_us=None,
        baselines=(),
    )
    done = [0]

    def on_trial(_: Any) -> None:
        done[0] += 1
        progress("latency predictor", done[0], trials)

    def no_text(spec: TextSpec, prompts: Any, keys: Any) -> tuple[np.ndarray, None, None]:
        del spec, keys
        return np.zeros((len(prompts), 0), dtype=np.float32), None, None

    progress("latency predictor", 0, trials)
    outcome = train_predictor(frame, request, no_text, work / "plots", on_trial=on_trial)
    split = outcome.split
    ids = np.asarray(outcome.data.cols["request_id"], dtype=object)
    held = np.concatenate([split.val, split.cal, split.test])
    return outcome.predictor, {str(r) for r in ids[held]}


def fit_workflows(
    train_dir: Path,
    *,
    trials: int = 4,
    timeout_s: float = 300.0,
    seed: int = 0,
    progress: Progress = _noop,
) -> FittedWorkflows:
    """Fit the workflow model (and its latency predictor) on the data in ``train_dir``."""
    from training.workflow import CALLS_FILE, fit_workflow_model, load_workflow_data

    data = load_workflow_data(train_dir)
    with tempfile.TemporaryDirectory(prefix="tailcast-workflows-") as tmp:
        progress("ingest calls", 0, 1)
        frame = _calls_frame(train_dir / CALLS_FILE, Path(tmp))
        progress("ingest calls", 1, 1)
        predictor, held = train_latency_predictor(
            frame, Path(tmp), trials, timeout_s, seed, progress
        )
    endpoints = endpoint_features(frame)
    ids = data.calls["task"] + "/" + data.calls["step"].astype("Int64").astype(str)
    data.calls["held_out"] = ids.isin(held)
    progress("embed task texts", 0, 1)
    embeddings = embed_tasks(data.tasks["task_text"].tolist())
    progress("embed task texts", 1, 1)
    meta = {"train_dir": str(train_dir), "trained_at": datetime.now(UTC).isoformat()}
    model = fit_workflow_model(data, predictor, embeddings, endpoints, metadata=meta)
    return FittedWorkflows(model=model, data=data, endpoints=endpoints)


def embed_tasks(texts: list[str]) -> np.ndarray:
    """Task-text embeddings for the call-count model."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    featurizer = text_featurizer(COUNT_TEXT)
    assert featurizer is not None
    return featurizer.transform(texts)


def check_held_out(train_ids: Any, test_ids: Any, test_dir: Path) -> None:
    """Raise ``ValueError`` when a test task instance is also a training one."""
    overlap = set(test_ids) & set(train_ids)
    if overlap:
        raise ValueError(
            f"{test_dir}: {len(overlap)} task instance(s) also in the training data "
            f"(e.g. {sorted(overlap)[0]}); held-out tasks must be new"
        )


def score_workflows(
    fitted: FittedWorkflows,
    test_dir: Path,
    *,
    samples: int = 2000,
    seed: int = 0,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Score a fitted workflow model on the task runs in ``test_dir``; JSON-ready result.

    Raises:
        ValueError: If a task instance of ``test_dir`` is also in the training data.
    """
    from training.workflow import CALLS_FILE, evaluate_workflows, load_workflow_data

    test = load_workflow_data(test_dir)
    check_held_out(fitted.data.tasks["instance_id"], test.tasks["instance_id"], test_dir)
    with tempfile.TemporaryDirectory(prefix="tailcast-workflows-") as tmp:
        endpoints = endpoint_features(_calls_frame(test_dir / CALLS_FILE, Path(tmp)))
    embeddings = embed_tasks(test.tasks["task_text"].tolist())
    model = fitted.model
    draws = draw(samples, 2 * model.max_calls, seed)
    total = len(test.tasks)
    done = [0]

    def on_task() -> None:
        done[0] += 1
        progress("score held-out tasks", done[0], total)

    result = evaluate_workflows(
        model, fitted.data, test, embeddings, endpoints, draws, on_task=on_task
    )
    result["train_tasks"] = len(fitted.data.tasks)
    result["samples"] = samples
    return result


def evaluate_workflow_dirs(
    train_dir: Path,
    test_dir: Path,
    *,
    trials: int = 4,
    timeout_s: float = 300.0,
    seed: int = 0,
    samples: int = 2000,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Fit on ``train_dir``, score on ``test_dir`` (``tailcast evaluate-workflows``).

    Both DIRs are read and checked (held-out instances are new) before any fitting.
    """
    from training.workflow import load_workflow_data

    check_held_out(
        load_workflow_data(train_dir).tasks["instance_id"],
        load_workflow_data(test_dir).tasks["instance_id"],
        test_dir,
    )
    fitted = fit_workflows(
        train_dir, trials=trials, timeout_s=timeout_s, seed=seed, progress=progress
    )
    return score_workflows(fitted, test_dir, samples=samples, seed=seed, progress=progress)


def publish_workflows(
    settings: Settings,
    data_dir: Path,
    *,
    trials: int = 4,
    timeout_s: float = 300.0,
    seed: int = 0,
    progress: Progress = _noop,
) -> tuple[int, Path]:
    """Fit on ``data_dir`` and write the next bundle version under ``<home>/workflows``.

    The bundle is written to a temporary directory and renamed into place, so the
    service never sees a half-written one. Returns ``(version, path)``.
    """
    fitted = fit_workflows(
        data_dir, trials=trials, timeout_s=timeout_s, seed=seed, progress=progress
    )
    root = settings.home / WORKFLOWS_DIR
    root.mkdir(parents=True, exist_ok=True)
    versions = bundle_versions(settings.home)
    version = (versions[-1][0] if versions else 0) + 1
    meta = {**fitted.model.spec.metadata, "version": str(version)}
    model = WorkflowModel(
        fitted.model.spec.model_copy(update={"metadata": meta}),
        fitted.model.arrays,
        fitted.model.predictor,
    )
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    model.save(staging)
    final = root / f"v{version:04d}"
    staging.rename(final)
    return version, final
