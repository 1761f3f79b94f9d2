"""Drift monitoring inside the service: completions -> PIT -> monitor -> events, alerts.

For every stored completion with an observed latency, :class:`DriftService` computes
``u = F(observed)`` and the pinball loss under the forecast the current champion of
its served model gives for it (the same columns and predictor call as
``POST /v1/forecasts``), feeds the :class:`drift.DriftMonitor`, and hands the events
to a :class:`drift.DriftResponder` (store rows, outbox alerts, retraining requests).

The completions come from the store's drift inbox, filled by every ingest of every
process in the ingest's transaction; the replica holding the store lock
``drift-judge`` drains it on its judge thread (:class:`serving._judge.JudgeLoop`), so
several replicas judge every completion once between them, and
``POST /v1/completions`` only wakes the judge: its acknowledgment never waits for
drift. A :class:`drift.Deliverer` thread on every replica drains the alert outbox,
claiming each alert for a lease so no two replicas send it at once; alerts left
pending by an earlier run are sent too. The judge's state (group windows, OOD flags,
detectors, champion versions, retraining cooldowns) is saved in the store with every
acknowledged batch and restored by the next judge (:mod:`serving._drift_persist`).
The judge steps the served conformal offsets too (:mod:`serving._calibration`).

On an OOD event a drift report (evidently; reference = the champion's training data
from the store, current = the completions judged since) is written by a child process
(:mod:`serving._report_worker`: evidently never loads in the service), kept under
``settings.home/drift_reports`` and logged to MLflow.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import ValidationError

from core import CompletionRecord, Settings
from core.drift import DriftEvent, DriftGroup, DriftObservation, DriftReportInfo, pit_and_pinball
from drift import (
    Deliverer,
    DriftMonitor,
    DriftResponder,
    MonitorConfig,
    RetrainDebouncer,
    replica_id,
)
from feature_store import RecordStore
from serving._calibration import ServedCalibration
from serving._drift_forecast import REPORT_COLUMNS, grid_forecast, judged_columns, reference_frame
from serving._drift_persist import DriftPersistence
from serving._drift_store import DriftStore
from serving._endpoint_cache import EndpointStatsCache
from serving._judge import JudgeLoop
from serving._models import LoadedModel, ModelTable
from serving._report_worker import ReportThread, ReportWorker

logger = logging.getLogger(__name__)


class DriftService:
    """The service's drift judge, its actions and the alert deliverer.

    Completions of a served model with no champion are acknowledged without being
    judged: nothing was forecast for them, so there is nothing to be calibrated (and a
    champion loaded later starts on the completions that arrive after it).

    Args:
        store: The feature store (drift inbox, judge lock); events, alerts and reports
            are kept only when it has the drift tables (:class:`DriftStore`: both the
            DuckDB and the PostgreSQL store do).
        models: The served champions.
        endpoints: Endpoint features (as forecasts use them).
        settings: Webhook URLs and secret, home (reports), MLflow URI.
        config: Monitor thresholds.
        cooldown_s: Retraining requests per served model are at most this frequent.
        on_retrain: Called as ``on_retrain(served_model, event)`` for a granted request.
        reports: Write a drift report for every OOD event.
        current_rows: Completions per served model kept for reports' current window.
        seen_ids: Request ids remembered to skip completions judged already in this
            process (the inbox holds each stored completion once: this guards direct
            :meth:`observe_rows` callers and a batch judged again after a failed ack,
            so a few inbox batches' worth; each id kept costs about 200 bytes).
        lock_retry_s: Seconds between attempts to become the judge (default
            :data:`serving._judge.RETRY_S`).
        poll_s: Seconds between inbox checks of an idle judge.
        calibration: The served offsets the judge steps (default: a new one, on).
    """

    def __init__(
        self,
        store: RecordStore,
        models: ModelTable,
        endpoints: EndpointStatsCache,
        settings: Settings,
        config: MonitorConfig | None = None,
        *,
        cooldown_s: float = 3600.0,
        on_retrain: Callable[[str, DriftEvent], None] | None = None,
        reports: bool = True,
        current_rows: int = 2000,
        seen_ids: int = 20_000,
        lock_retry_s: float | None = None,
        poll_s: float = 1.0,
        calibration: ServedCalibration | None = None,
    ) -> None:
        self.store = store
        self.models = models
        self.endpoints = endpoints
        self.settings = settings
        self.config = config
        self.monitor = DriftMonitor(config)
        self.replica = replica_id()
        self.tables: DriftStore | None = store if isinstance(store, DriftStore) else None
        secret = settings.drift_webhook_secret
        self.deliverer = (
            Deliverer(
                self.tables, secret.get_secret_value() if secret else None, holder=self.replica
            )
            if self.tables is not None
            else None
        )
        self.responder = (
            DriftResponder(
                self.tables,
                settings.drift_webhook_urls,
                RetrainDebouncer(cooldown_s),
                self._request_retrain,
                self.deliverer.wake if self.deliverer is not None else None,
            )
            if self.tables is not None
            else None
        )
        self.reports = reports
        self.report_dir = settings.home.expanduser() / "drift_reports"
        self._current: dict[str, deque[dict[str, Any]]] = {}
        self._current_rows = current_rows
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_max = seen_ids
        self._versions: dict[str, str] = {}
        self._report_work = ReportThread()
        self._report_worker = ReportWorker()
        self._lock = threading.Lock()
        self.observed = 0
        self.on_retrain = on_retrain
        self.retrain_requests: dict[str, int] = {}
        self.retrain_outcomes: dict[tuple[str, str], int] = {}  # (served model, outcome)
        self.calibration = calibration or ServedCalibration(store)
        self.persistence = DriftPersistence(store, self.calibration)
        self.judge = JudgeLoop(
            store,
            self.observe_rows,
            on_acquire=self._take_over,
            on_release=self.calibration.release,
            commit=self._commit,
            retry_s=lock_retry_s,
            poll_s=poll_s,
        )

    @property
    def is_judge(self) -> bool:
        """Whether this replica judges drift now (holds the ``drift-judge`` lock)."""
        return self.judge.is_judge

    @property
    def failures(self) -> int:
        """Inbox batches the judge failed to read, judge or acknowledge."""
        return self.judge.failures

    # --- lifecycle ---------------------------------------------------------------
    def start(self, poll_s: float = 2.0) -> None:
        """Start the judge thread and delivering the outbox (earlier runs' alerts too).

        Args:
            poll_s: Seconds between delivery passes (new alerts wake the deliverer).
        """
        self.judge.start()
        self.calibration.start()
        if self.deliverer is None:
            logger.warning("the feature store has no drift tables: drift events stay in memory")
            return
        self.deliverer.start(poll_s)

    def wake(self) -> None:
        """A local ingest stored completions: drain the inbox now (never blocks)."""
        self.judge.wake()

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every completion ingested so far has been judged (see JudgeLoop)."""
        self.judge.flush(timeout_s)

    def stop(self) -> None:
        """Stop judging (the inbox keeps the rest) and delivering (the outbox keeps it)."""
        self.judge.stop()
        self.calibration.stop()
        self._report_work.shutdown(wait=True)
        self._report_worker.close()
        if self.deliverer is not None:
            self.deliverer.stop()

    def _take_over(self) -> None:
        """Becoming the judge: continue the stored judgement (stale champions' groups dropped)."""
        monitor = DriftMonitor(self.config)
        versions = self.persistence.restore(monitor, self._debouncer, self._champion)
        self.monitor = monitor
        self._versions = versions
        with self._lock:
            self._current.clear()

    def _commit(self, request_ids: list[str]) -> None:
        """Acknowledge a judged batch and save the state it led to (one transaction)."""
        self.persistence.commit(self.monitor, self._versions, self._debouncer, request_ids)

    @property
    def _debouncer(self) -> RetrainDebouncer | None:
        return self.responder.debouncer if self.responder is not None else None

    def _champion(self, served_model: str) -> str | None:
        model = self.models.get(served_model)
        return None if model is None else str(model.version.version)

    def _request_retrain(self, served_model: str, event: DriftEvent) -> None:
        """Count a granted retraining request and pass it on (a failing callback is logged)."""
        self.retrain_requests[served_model] = self.retrain_requests.get(served_model, 0) + 1
        if self.on_retrain is None:
            return
        try:
            self.on_retrain(served_model, event)
        except Exception:
            logger.exception("retraining request for %s failed", served_model)

    # --- judging -------------------------------------------------------------------
    def _fresh(self, rows: Sequence[Any]) -> list[CompletionRecord]:
        records = []
        for row in rows:
            if not isinstance(row, Mapping):
                continue
            try:
                rec = CompletionRecord.model_validate(dict(row))
            except ValidationError:
                continue
            if rec.latency_s is None:
                continue
            with self._lock:
                if rec.request_id in self._seen:
                    continue
                self._seen[rec.request_id] = None
                if len(self._seen) > self._seen_max:
                    self._seen.popitem(last=False)
            records.append(rec)
        return records

    def observe_rows(self, rows: Sequence[Any]) -> list[DriftEvent]:
        """Judge completions synchronously; the drift events they caused (already acted on).

        The judge thread calls it with inbox rows; rows that are not valid records, have
        no latency, were judged already here or have no champion are skipped.
        """
        by_model: dict[str, list[CompletionRecord]] = {}
        for rec in self._fresh(rows):
            by_model.setdefault(rec.served_model, []).append(rec)
        events: list[DriftEvent] = []
        for served_model, recs in by_model.items():
            model = self.models.get(served_model)
            if model is None:
                continue  # no champion: nothing was (or would have been) forecast
            events.extend(self._observe_model(model, recs))
        if events and self.responder is not None:
            self.responder.handle(events)
        for event in events:
            if event.kind == "ood" and self.reports:
                self._report_work.submit(self._safe_report, event.group.served_model, event)
        return events

    def _observe_model(self, model: LoadedModel, recs: list[CompletionRecord]) -> list[DriftEvent]:
        served_model, version = model.served_model, str(model.version.version)
        if self._versions.get(served_model, version) != version:
            self.monitor.reset(served_model)  # a new champion starts a fresh judgement
            with self._lock:
                self._current.pop(served_model, None)
        self._versions[served_model] = version
        n = len(recs)
        cols = judged_columns(recs, self.endpoints.as_of, self.store.previous_calls)
        grid = np.asarray(model.predictor.spec.levels, dtype=np.float64)
        values, classes = grid_forecast(model, cols, n)
        observed = np.asarray([r.latency_s for r in recs], dtype=np.float64)
        u, loss = pit_and_pinball(grid, values, observed)
        obs, rows = [], []
        for i, rec in enumerate(recs):
            pclass = classes[i] or rec.prompt_class or "default"
            group = DriftGroup(served_model=served_model, prompt_class=pclass, device=rec.device)
            done = rec.submitted_at + timedelta(seconds=float(observed[i]))
            obs.append(
                DriftObservation(
                    group=group,
                    u=float(u[i]),
                    pinball=float(loss[i]),
                    model_version=version,
                    observed_at=done,
                )
            )
            row = {c: cols[c][i] if c in cols else getattr(rec, c, None) for c in REPORT_COLUMNS}
            rows.append({**row, "prompt_class": pclass, "u": float(u[i])})
        with self._lock:
            window = self._current.setdefault(served_model, deque(maxlen=self._current_rows))
            window.extend(rows)
        self.observed += n
        events = self.monitor.observe_many(obs)  # judged on the model's own forecasts
        self.calibration.observe(model, values, [o.group for o in obs], observed)
        return events

    # --- reports -------------------------------------------------------------------
    def _safe_report(self, served_model: str, event: DriftEvent | None) -> None:
        try:
            self.write_report(served_model, event)
        except Exception:
            logger.exception("drift report for %s failed", served_model)

    def write_report(
        self, served_model: str, event: DriftEvent | None = None, reference_rows: int = 5000
    ) -> DriftReportInfo:
        """Write (and store, and log to MLflow) a report of ``served_model`` now.

        Raises:
            LookupError: When there is no champion, or too few judged completions or
                training rows to compare (:data:`drift.reports.MIN_ROWS` in each).
        """
        from drift.reports import NotEnoughDataError

        model = self.models.get(served_model)
        with self._lock:
            window = list(self._current.get(served_model, ()))
        if model is None or not window:
            raise LookupError(f"no champion or no judged completions for {served_model!r}")
        reference = reference_frame(self.store, model, reference_rows)
        current = pd.DataFrame(window)
        try:
            info = self._report_worker.write(  # in a child: evidently stays out of here
                reference,
                current,
                self.report_dir,
                served_model,
                suffix=event.event_id[:8] if event is not None else None,
                tracking_uri=self.settings.mlflow_tracking_uri,
            )
        except NotEnoughDataError as exc:
            raise LookupError(f"no drift report for {served_model!r}: {exc}") from exc
        if self.tables is not None:
            self.tables.record_drift_report(info)
        return info


# --- wiring into the app (one line each in serving/app.py and routes/completions.py) ----
def start_drift(
    app: FastAPI,
    config: MonitorConfig | None = None,
    on_retrain: Callable[[str, DriftEvent], None] | None = None,
) -> DriftService:
    """Create the app's :class:`DriftService` from its running service and start it.

    Args:
        app: The app; its ``state.service`` must be set.
        config: Monitor thresholds (default: :class:`drift.MonitorConfig`'s).
        on_retrain: Called as ``on_retrain(served_model, event)`` for each retraining
            request the debouncer grants (``tailcast serve`` passes the retraining job).
    """
    service = app.state.service
    drift = DriftService(
        service.store,
        service.models,
        service.endpoints,
        service.settings,
        config,
        on_retrain=on_retrain,
        calibration=service.calibration,
    )
    drift.start()
    app.state.drift = drift
    return drift


def stop_drift(app: FastAPI) -> None:
    """Stop the app's :class:`DriftService`, if it has one."""
    drift: DriftService | None = getattr(app.state, "drift", None)
    if drift is not None:
        drift.stop()


def wake_drift(app: FastAPI) -> None:
    """A local ingest stored completions: wake the app's drift judge (never blocks).

    The ingest itself enqueued them in the store's drift inbox; the judge (this replica
    or another) would see them within its poll interval anyway.
    """
    drift: DriftService | None = getattr(app.state, "drift", None)
    if drift is not None:
        drift.wake()
