"""One retraining per served model: the job holds the store lock ``retrain:<served_model>``.

Every test holds the lock first, so no job reaches the training stack: a job that did
would fail on the empty store instead of reporting the lock.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import Settings
from feature_store import DuckDBStore
from pipelines.cli import app
from pipelines.drift_trigger import drift_trigger
from pipelines.retrain import RetrainLockedError, RetrainOutcome, retrain
from registry import MLflowRegistry


def test_a_job_does_not_start_while_another_holds_the_lock(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    store = DuckDBStore(settings.resolved_store_path)
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    try:
        held = store.try_lock("retrain:chat")
        assert held is not None
        with held, pytest.raises(RetrainLockedError, match="another retraining of 'chat'"):
            retrain("chat", settings, store, registry)
        # released: the job runs (and fails on the empty store, past the lock)
        with pytest.raises(ValueError, match="no records"):
            retrain("chat", settings, store, registry)
        assert store.try_lock("retrain:chat") is not None  # the failed job let it go
    finally:
        store.close()


def test_a_drift_triggered_job_is_skipped_while_another_process_retrains(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    store = DuckDBStore(settings.resolved_store_path)
    done: list[RetrainOutcome | BaseException] = []
    finished = threading.Event()

    def on_done(served_model: str, result: RetrainOutcome | BaseException) -> None:
        done.append(result)
        finished.set()

    try:
        with store.try_lock("retrain:chat"):  # type: ignore[union-attr]
            drift_trigger(settings, store=store, on_done=on_done)("chat", None)
            assert finished.wait(60)
    finally:
        store.close()
    (result,) = done
    assert isinstance(result, RetrainLockedError)
    assert result.served_model == "chat"


def test_the_cli_exits_with_a_clear_message_while_the_lock_is_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TAILCAST_STORE_URL", "TAILCAST_STORE_PATH", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TAILCAST_HOME", str(tmp_path))
    store = DuckDBStore(Settings().resolved_store_path)  # this process owns the file
    try:
        with store.try_lock("retrain:chat"):  # type: ignore[union-attr]
            result = CliRunner().invoke(
                app, ["pipeline", "retrain", "--served-model", "chat"], terminal_width=400
            )
    finally:
        store.close()
    assert result.exit_code == 2, result.output
    assert "another retraining of 'chat' is running" in result.output
    assert "retrain:chat" in result.output
