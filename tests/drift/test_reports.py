"""Evidently drift reports: HTML on disk, headline numbers, logged to a real MLflow store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drift.reports import build_report, write_report


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {
            "input_tokens": rng.integers(100, 4000, 600),
            "device": rng.choice(["h100", "a100"], 600),
            "u": rng.uniform(size=600),
            "input_tokens_missing": np.linspace(0.0, 1.0, 600),
        }
    )
    current = pd.DataFrame(
        {
            "input_tokens": rng.integers(100, 4000, 300),
            "device": rng.choice(["h100", "a100"], 300),
            "u": rng.uniform(size=300) ** 0.5,  # slower than forecast: u piles up near 1
            "only_here": np.ones(300),
            "input_tokens_missing": np.full(300, np.nan),
        }
    )
    return reference, current


@pytest.mark.slow
def test_report_is_written_summarised_and_logged_to_mlflow(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    reference, current = _frames()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    info = write_report(
        reference,
        current,
        tmp_path / "drift_reports",
        "deepseek-chat",
        now=datetime(2026, 4, 11, 7, 5, tzinfo=UTC),
        tracking_uri=uri,
    )
    assert info.report_id == "deepseek-chat-20260411T070500Z"
    html = Path(info.path).read_text()
    assert info.path == str(tmp_path / "drift_reports" / f"{info.report_id}.html")
    assert "<html" in html.lower()
    assert (info.reference_rows, info.current_rows) == (600, 300)
    assert info.summary["pvalue:u"] < 1e-6
    assert info.summary["pvalue:input_tokens"] > 0.01
    assert info.summary["drifted_columns"] == 1.0
    assert "pvalue:only_here" not in info.summary
    assert "pvalue:input_tokens_missing" not in info.summary
    assert all(0.0 <= v <= 1.0 for k, v in info.summary.items() if k.startswith("pvalue:"))
    assert info.mlflow_run_id is not None
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(info.mlflow_run_id)
    assert run.data.metrics["drift.drift_share"] == pytest.approx(1 / 3)
    assert run.data.tags["tailcast.served_model"] == "deepseek-chat"
    artifacts = [a.path for a in client.list_artifacts(info.mlflow_run_id, "drift_reports")]
    assert artifacts == [f"drift_reports/{info.report_id}.html"]


@pytest.mark.slow
def test_build_report_contract(tmp_path: Path) -> None:
    reference, current = _frames()
    out = build_report(reference, current, tmp_path / "a" / "r.html")
    assert out.exists()
    with pytest.raises(ValueError, match="share no column"):
        build_report(reference[["u"]], current[["only_here"]], tmp_path / "x.html")


@pytest.mark.slow
def test_large_windows_report_distances_not_pvalues(tmp_path: Path) -> None:
    """Past 1,000 reference rows evidently measures numeric drift by a distance."""
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"latency_s": rng.lognormal(0.0, 1.0, 3000)})
    current = pd.DataFrame({"latency_s": rng.lognormal(1.5, 1.0, 400)})
    info = write_report(reference, current, tmp_path, "m")
    assert "pvalue:latency_s" not in info.summary
    assert info.summary["distance:latency_s"] > 0.1  # shifted by 1.5 log units: drifted
