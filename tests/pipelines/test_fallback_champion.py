"""The fallback champion a first run serves: registered, promoted, tagged, held-out scored.

A generated workload in a real DuckDB store and a real SQLite MLflow registry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from core import Settings
from feature_store import DuckDBStore
from feature_store.workload import WorkloadConfig, generate_workload
from pipelines.fallback import COLUMNS, FallbackRequest, register_fallback
from registry import MLflowRegistry


def _frame(settings: Settings, records: int) -> tuple[str, pa.Table]:
    """A generated workload stored under ``settings``: its first served model's frame."""
    workload = generate_workload(WorkloadConfig(seed=5, n_records=records))
    served = str(workload.column("served_model")[0])
    with DuckDBStore(settings.resolved_store_path) as store:
        store.ingest_batches([workload.append_column("_line", [list(range(workload.num_rows))])])
        return served, store.training_frame(served, columns=COLUMNS)


def test_a_fallback_is_registered_as_a_champion_that_says_what_it_is(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    served, frame = _frame(settings, 4_000)
    result = register_fallback(settings, frame, FallbackRequest(served_model=served))
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    champion = registry.alias_version(served)
    assert champion is not None
    assert (champion.version, champion.kind) == (result.version, "fallback")
    assert champion.mean_pinball == pytest.approx(result.mean_pinball)
    assert result.rows == frame.num_rows
    assert 0.75 <= result.coverage["0.9"] <= 0.99  # held out (later rows), not in-sample
    predictor, version = registry.load(served)
    assert version.version == result.version
    assert predictor.spec.metadata["kind"] == "fallback"
    q = predictor.predict({"served_model": [served] * 2, "device": ["h100", "tpu-v9"]})
    assert np.all(np.diff(q, axis=1) > 0)
    assert np.all(q > 0)


def test_too_few_rows_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    served, frame = _frame(settings, 50)
    with pytest.raises(ValueError, match="a fallback needs 2"):
        register_fallback(settings, frame.slice(0, 1), FallbackRequest(served_model=served))
