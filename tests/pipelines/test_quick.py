"""Quick models (the first champions of ``tailcast run``) log what a person needs in MLflow.

A real search on a small generated workload, a real SQLite MLflow registry: the run
carries the selected hyperparameters and a baseline to compare with, and the version
its validation loss.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core import Settings
from feature_store import DuckDBStore
from feature_store.workload import WorkloadConfig, generate_workload
from pipelines.quick import QuickTrain, train_and_register
from pipelines.train import text_provider
from registry import MLflowRegistry


@pytest.mark.slow
def test_a_quick_champion_logs_hyperparameters_a_baseline_and_its_loss(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    workload = generate_workload(WorkloadConfig(seed=3, n_records=3_000))
    served = str(workload.column("served_model")[0])
    with DuckDBStore(settings.resolved_store_path) as store:
        store.ingest_batches([workload.append_column("_line", [list(range(workload.num_rows))])])
        frame = store.training_frame(served, require=("latency_s",))
        provider = text_provider(store, tmp_path / "tables", None)
        plan = QuickTrain(key=served, trials=1, timeout_s=60, text=("none",))
        version, promoted = train_and_register(settings, frame, plan, provider)
    assert (version, promoted) == (1, True)
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    registered = registry.version(served, version)
    assert registered.mean_pinball is not None
    assert registered.mean_pinball > 0
    run = registry.client.get_run(registered.run_id or "")
    assert {"selected_trial", "hidden", "lr"} <= set(run.data.params)
    assert run.data.metrics["empirical.mean_pinball"] > 0  # the reference in comparison.png
