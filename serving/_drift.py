"""Drift monitoring inside the service: completions -> PIT -> monitor -> events, alerts.

For every accepted completion with an observed latency, :class:`DriftService` computes
``u = F(observed)`` and the pinball loss under the forecast the current champion of
its served model gives for it (the same columns and predictor call as
``POST /v1/forecasts``), feeds the :class:`drift.DriftMonitor`, and hands the events
to a :class:`drift.DriftResponder` (store rows, outbox alerts, retraining requests).
The work runs on a dedicated worker thread: ``POST /v1/completions`` only enqueues it,
so its acknowledgment never waits for drift. A :class:`drift.Deliverer` thread drains
the alert outbox, including alerts left pending by an earlier run of the service.

On an OOD event a drift report (evidently; reference = the champion's training data
from the store, current = the completions judged since) is written in another
thread, kept under ``settings.home/drift_reports`` and logged to MLflow.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import ValidationError

from core import CompletionRecord, Settings
from core.drift import DriftEvent, DriftGroup, DriftObservation, DriftReportInfo, pit_and_pinball
from drift import Deliverer, DriftMonitor, DriftResponder, MonitorConfig, RetrainDebouncer
from feature_store import DriftTables, RecordStore
from serving._endpoint_cache import EndpointStatsCache
from serving._forecast import request_columns
from serving._models import LoadedModel, ModelTable
from serving.schemas import ForecastRequest, RuntimeState

logger = logging.getLogger(__name__)

#: Columns of the current window (and of the reference frame) compared in reports.
REPORT_COLUMNS = (
    "device",
    "prompt_class",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "step",
    "latency_s",
    "ep_median_tokens_per_s",
)
_FORECAST_FIELDS: tuple[str, ...] = ("served_model", "device", "prompt", "prompt_class")
_FORECAST_FIELDS += ("input_tokens", "cached_tokens", "workflow_id", "step")


def _request(rec: CompletionRecord) -> ForecastRequest:
    runtime = None
    if any(v is not None for v in (rec.num_running, rec.num_waiting, rec.kv_cache_util)):
        runtime = RuntimeState(
            num_running=rec.num_running,
            num_waiting=rec.num_waiting,
            kv_cache_util=rec.kv_cache_util,
        )
    fields = {f: getattr(rec, f) for f in _FORECAST_FIELDS}
    return ForecastRequest(request_id=rec.request_id, runtime=runtime, **fields)


def grid_forecast(model: LoadedModel, cols: dict[str, Any], n: int) -> tuple[Any, list[str]]:
    """The champion's quantile grid (n, K) in seconds and prompt classes, as served."""
    predictor = model.predictor
    width = predictor.spec.projection
    if width and predictor.spec.text.kind != "none":
        cols["projected_text"] = model.prompts.rows(
            cols["prompt"], width, lambda p: predictor.projected_text({"prompt": p}, len(p))
        )
    values, classes = predictor.predict_with_classes(cols, n)
    return np.maximum(values, 0.0), classes


class DriftService:
    """The service's drift monitor, its actions and the alert deliverer.

    Args:
        store: The feature store; events, alerts and reports are kept only when it has
            the drift tables (the DuckDB store does).
        models: The served champions.
        endpoints: Endpoint features (as forecasts use them).
        settings: Webhook URLs and secret, home (reports), MLflow URI.
        config: Monitor thresholds.
        cooldown_s: Retraining requests per served model are at most this frequent.
        on_retrain: Called as ``on_retrain(served_model, event)`` for a granted request.
        reports: Write a drift report for every OOD event.
        current_rows: Completions per served model kept for reports' current window.
        seen_ids: Request ids remembered to skip completions re-sent after a retry
            within this process (the route already skips those the store had: this
            guards direct :meth:`submit` callers and concurrent retries).
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
        seen_ids: int = 200_000,
    ) -> None:
        self.store = store
        self.models = models
        self.endpoints = endpoints
        self.settings = settings
        self.monitor = DriftMonitor(config)
        self.tables = store if isinstance(store, DriftTables) else None
        secret = settings.drift_webhook_secret
        self.deliverer = (
            Deliverer(self.tables, secret.get_secret_value() if secret else None)
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
        self._work = ThreadPoolExecutor(1, thread_name_prefix="tailcast-drift")
        self._report_work = ThreadPoolExecutor(1, thread_name_prefix="tailcast-drift-report")
        self._lock = threading.Lock()
        self.observed = 0
        self.failures = 0
        self.on_retrain = on_retrain
        self.retrain_requests: dict[str, int] = {}

    # --- lifecycle ---------------------------------------------------------------
    def start(self, poll_s: float = 2.0) -> None:
        """Start delivering the outbox (alerts pending from earlier runs go first)."""
        if self.deliverer is None:
            logger.warning("the feature store has no drift tables: drift events stay in memory")
            return
        self.deliverer.start(poll_s)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every completion submitted so far has been judged."""
        self._work.submit(lambda: None).result(timeout_s)

    def stop(self) -> None:
        """Finish the queued work, stop delivering (pending alerts stay in the outbox)."""
        self._work.shutdown(wait=True)
        self._report_work.shutdown(wait=True)
        if self.deliverer is not None:
            self.deliverer.stop()

    def _request_retrain(self, served_model: str, event: DriftEvent) -> None:
        """Count a granted retraining request and pass it on (a failing callback is logged)."""
        self.retrain_requests[served_model] = self.retrain_requests.get(served_model, 0) + 1
        if self.on_retrain is None:
            return
        try:
            self.on_retrain(served_model, event)
        except Exception:
            logger.exception("retraining request for %s failed", served_model)

    # --- feeding -------------------------------------------------------------------
    def submit(self, rows: Sequence[Any], rejected: set[int]) -> Future[list[DriftEvent]]:
        """Queue a ``POST /v1/completions`` batch (minus ``rejected`` indices); returns at once."""
        kept = [r for i, r in enumerate(rows) if i not in rejected]
        return self._work.submit(self._safe_observe, kept)

    def _safe_observe(self, rows: list[Any]) -> list[DriftEvent]:
        try:
            return self.observe_rows(rows)
        except Exception:  # the acknowledgment went out already; never lose the worker
            self.failures += 1
            logger.exception("drift monitoring failed for a batch of %d completions", len(rows))
            return []

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
        """Judge completions synchronously; the drift events they caused (already acted on)."""
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
        cols = request_columns([_request(r) for r in recs], self.endpoints.get)
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
        return self.monitor.observe_many(obs)

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
            LookupError: When there is no champion or nothing judged yet to compare.
        """
        from drift.reports import write_report

        model = self.models.get(served_model)
        with self._lock:
            window = list(self._current.get(served_model, ()))
        if model is None or not window:
            raise LookupError(f"no champion or no judged completions for {served_model!r}")
        reference = self.reference_frame(model, reference_rows)
        current = pd.DataFrame(window)
        info = write_report(
            reference,
            current,
            self.report_dir,
            served_model,
            suffix=event.event_id[:8] if event is not None else None,
            tracking_uri=self.settings.mlflow_tracking_uri,
        )
        if self.tables is not None:
            self.tables.record_drift_report(info)
        return info

    def reference_frame(self, model: LoadedModel, rows: int) -> pd.DataFrame:
        """The champion's training window from the store, with in-sample ``u``."""
        created: datetime = model.version.created_at
        frame: pd.DataFrame = self.store.training_frame(model.served_model, end=created).to_pandas()
        frame = frame.tail(rows).reset_index(drop=True)
        if frame.empty:
            return pd.DataFrame(columns=[*REPORT_COLUMNS, "u"])
        cols = {c: frame[c].tolist() for c in frame.columns}
        grid = np.asarray(model.predictor.spec.levels, dtype=np.float64)
        values, classes = grid_forecast(model, cols, len(frame))
        u, _ = pit_and_pinball(grid, values, frame["latency_s"].to_numpy(dtype=np.float64))
        out = frame.reindex(columns=list(REPORT_COLUMNS))
        out["prompt_class"] = [c or "default" for c in classes]
        out["u"] = u
        return out


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
    )
    drift.start()
    app.state.drift = drift
    return drift


def stop_drift(app: FastAPI) -> None:
    """Stop the app's :class:`DriftService`, if it has one."""
    drift: DriftService | None = getattr(app.state, "drift", None)
    if drift is not None:
        drift.stop()


def feed_drift(app: FastAPI, rows: Sequence[Any], skipped_indices: Sequence[int]) -> None:
    """Queue a ``POST /v1/completions`` batch for the monitor (never blocks).

    ``skipped_indices``: rows not to judge, those the store rejected or already had
    (a client's retry), so the store's idempotency makes the judgement idempotent.
    """
    drift: DriftService | None = getattr(app.state, "drift", None)
    if drift is None:
        return
    try:
        drift.submit(rows, set(skipped_indices))
    except RuntimeError:  # shutting down: the records are stored, only not judged
        logger.warning("drift monitor stopped; %d completions not judged", len(rows))
