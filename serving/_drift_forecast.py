"""What the drift judge computes per completion: the champion's forecast, as served.

The request a completion stands for (:func:`forecast_request`), its predictor columns
with endpoint and workflow features as of its submission (:func:`judged_columns`), the
champion's quantile grid for a batch of them (:func:`grid_forecast`, the predictor call of
``POST /v1/forecasts``), and the reference frame drift reports compare with
(:func:`reference_frame`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from core import CompletionRecord
from core.drift import pit_and_pinball
from feature_store import EndpointStats, PreviousCall, RecordStore
from serving._endpoint_cache import NO_HISTORY
from serving._forecast import endpoint_columns, request_columns, workflow_columns
from serving._models import LoadedModel
from serving.schemas import ForecastRequest, RuntimeState

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


def forecast_request(rec: CompletionRecord) -> ForecastRequest:
    """The forecast request that was (or would have been) made for ``rec``.

    Its runtime state is every :class:`RuntimeState` field the record carries (the
    load when it was submitted), as a router would have sent it.
    """
    state = {f: getattr(rec, f) for f in RuntimeState.model_fields}
    runtime = RuntimeState(**state) if any(v is not None for v in state.values()) else None
    fields = {f: getattr(rec, f) for f in _FORECAST_FIELDS}
    return ForecastRequest(request_id=rec.request_id, runtime=runtime, **fields)


def judged_columns(
    recs: Sequence[CompletionRecord],
    as_of: Callable[[str, str, datetime], EndpointStats],
    previous: Callable[[Sequence[str]], Mapping[str, PreviousCall]],
) -> dict[str, Any]:
    """Predictor columns of the forecasts ``recs`` stand for, as their training rows get them.

    Endpoint features come from ``as_of(served_model, device, submitted_at)``: what the
    forecast saw when the request was made (and what training rows see), never the
    endpoint's state when the completion is judged, which already holds the completion
    itself and everything that finished since. Workflow features come from
    ``previous(request_ids)`` (the store's :meth:`~feature_store.RecordStore.previous_calls`
    of the stored records): the workflow's previous call, had it completed when the
    record was submitted.
    """
    cols = request_columns([forecast_request(r) for r in recs], lambda m, d: NO_HISTORY)
    ep = [as_of(r.served_model, r.device, r.submitted_at) for r in recs]
    cols.update(endpoint_columns(ep))
    prev = previous([r.request_id for r in recs if r.workflow_id is not None])
    cols.update(workflow_columns([prev.get(r.request_id) for r in recs]))
    return cols


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


def reference_frame(store: RecordStore, model: LoadedModel, rows: int) -> pd.DataFrame:
    """The champion's training window from ``store`` (its last ``rows``), with in-sample ``u``."""
    created: datetime = model.version.created_at
    table = store.training_frame(model.served_model, end=created)
    # Slice in Arrow: only ``rows`` rows become Python objects (prompts included).
    frame: pd.DataFrame = table.slice(max(0, table.num_rows - rows)).to_pandas()
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
