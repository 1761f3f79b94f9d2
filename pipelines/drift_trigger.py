"""Drift-triggered retraining: a callback that runs :func:`pipelines.retrain.retrain`.

``tailcast serve`` passes :func:`drift_trigger` as the drift judge's ``on_retrain``;
each granted request runs the retraining job from a background thread, at most one per
served model in this process, and none while another process holds the model's
retrain lock in the shared store. Without a ``store`` the job runs in a spawned child
process (:mod:`pipelines._retrain_child`), so the service never loads the training
stack; with one (tests, embedding) it runs in the thread on that store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Protocol

from core import Settings
from feature_store import RecordStore
from pipelines._retrain_child import retrain_isolated
from pipelines._retrain_lock import RetrainLockedError
from pipelines.retrain import RetrainConfig, RetrainOutcome, retrain

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)


class RetrainTrigger(Protocol):
    """Requests a retraining of a served model (the drift event, if any, is ignored)."""

    def __call__(self, served_model: str, event: object = None, /) -> None:
        """Start (or skip, when one is running) a job for ``served_model``."""


def drift_trigger(
    settings: Settings,
    *,
    config: RetrainConfig | None = None,
    store: RecordStore | Callable[[], RecordStore] | None = None,
    on_done: Callable[[str, RetrainOutcome | BaseException], None] | None = None,
) -> RetrainTrigger:
    """A callback that runs a drift-triggered :func:`retrain` in a background thread.

    At most one job per served model runs at a time: a call while that model's job is
    running is ignored (logged), so a burst of alarms retrains once; a job that finds
    the model's retrain lock held by another process sharing the store is skipped
    (logged; ``on_done`` gets the :class:`RetrainLockedError`); debouncing over
    longer spans is the monitor's :class:`drift.RetrainDebouncer`. A failing job is
    logged and reported to ``on_done``; it never raises into the caller. The callback
    also fits ``drift.DriftResponder``'s ``on_retrain(served_model, event)``.

    Args:
        settings: Where the registry and (unless ``store`` is given) the store are.
        config: Job configuration (default: from the environment).
        store: An open store to use in this process, or a function returning it when
            a job starts; default (what ``tailcast serve`` uses): each job runs in a
            spawned child process that opens the settings' store itself (through the
            service brokering it when one holds the DuckDB file), so the caller never
            imports the training stack and gets the child's memory back when it ends.
        on_done: Called with (served model, outcome or exception) when a job ends.
    """
    running: set[str] = set()
    lock = threading.Lock()

    def run(served_model: str) -> RetrainOutcome:
        if store is None:
            return retrain_isolated(served_model, settings, config)
        from registry import MLflowRegistry

        registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
        shared = store() if callable(store) else store
        return retrain(served_model, settings, shared, registry, config=config, trigger="drift")

    def job(served_model: str) -> None:
        result: RetrainOutcome | BaseException
        try:
            result = run(served_model)
        except RetrainLockedError as exc:  # another process retrains it: once is enough
            log.info("drift-triggered retraining skipped: %s", exc)
            result = exc
        except BrokenProcessPool as exc:  # the child was killed (e.g. the service stopping)
            log.warning("drift-triggered retraining of %s ended with its process", served_model)
            result = exc
        except Exception as exc:  # a background job must not die silently
            log.exception("drift-triggered retraining of %s failed", served_model)
            result = exc
        finally:
            with lock:
                running.discard(served_model)
        if on_done is not None:
            on_done(served_model, result)

    def trigger(served_model: str, event: object = None) -> None:
        with lock:
            if served_model in running:
                log.info("retraining of %s already running; request ignored", served_model)
                return
            running.add(served_model)
        threading.Thread(
            target=job, args=(served_model,), name=f"retrain-{served_model}", daemon=True
        ).start()

    return trigger


def outcome_label(result: RetrainOutcome | BaseException) -> str:
    """A job's result as a metric label: promoted, not_promoted, skipped or failed.

    >>> outcome_label(RetrainLockedError("chat")), outcome_label(ValueError("x"))
    ('skipped', 'failed')
    """
    if isinstance(result, RetrainLockedError):
        return "skipped"
    if isinstance(result, BaseException):
        return "failed"
    return "promoted" if result.promoted else "not_promoted"


def service_trigger(settings: Settings, app: Callable[[], FastAPI | None]) -> RetrainTrigger:
    """:func:`drift_trigger` for ``tailcast serve``: each job in a child process.

    Outcomes are logged (by the job) and counted in the service's
    ``tailcast_drift_retrainings_total`` (see :func:`serving.record_retraining`).

    Args:
        settings: Where the registry and the store are.
        app: Returns the service's app (None before it exists).
    """

    def counted(served_model: str, result: RetrainOutcome | BaseException) -> None:
        from serving import record_retraining

        current = app()
        if current is not None:
            record_retraining(current, served_model, outcome_label(result))

    return drift_trigger(settings, on_done=counted)
