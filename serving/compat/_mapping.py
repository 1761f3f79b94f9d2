"""llm-d fields <-> tailcast features and records.

Prediction: an llm-d request becomes one predictor row of the llm-d served model
(``ServingConfig.llmd_served_model``): ``pod_type`` is the device (``monolithic``
when empty), ``input_token_length`` the input tokens, ``prefix_cache_score`` times it
the cached tokens, ``num_tokens_generated`` the output tokens (an input of the TPOT
predictor only), and the pod's queue, KV-cache and tokens in flight the runtime load. The
TTFT and TPOT predictors are the champions of ``<name>.ttft`` and ``<name>.tpot``;
each answers its distribution, read at the configured quantile, in milliseconds (its
grid adjusted by the adaptive conformal offsets of its served model, when it has any:
the drift judge learns offsets only for served models whose completions it judges, so
in practice these champions answer their own forecasts).

Training data: an llm-d ``TrainingEntry`` becomes one :class:`core.CompletionRecord`
with ``ttft_s`` and ``latency_s = ttft + tpot * num_tokens_generated`` (so TPOT is
``(latency_s - ttft_s) / output_tokens`` again), keyed by a hash of the entry so a
retried batch is stored once.

Example:
    >>> device_of(""), device_of("prefill")
    ('monolithic', 'prefill')
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

import numpy as np

from core.quantiles import ppf_rows
from feature_store import EndpointStats
from serving._calibration import ServedCalibration
from serving._models import LoadedModel
from serving.compat.schemas import PredictionRequest, TrainingEntry

#: Device of requests without a pod type.
MONOLITHIC = "monolithic"
EndpointLookup = Callable[[str, str], EndpointStats]


def device_of(pod_type: str | None) -> str:
    """The tailcast device of an llm-d pod type."""
    return pod_type or MONOLITHIC


def target_names(served_model: str) -> tuple[str, str]:
    """Served-model keys of the TTFT and TPOT predictors of an llm-d served model."""
    return f"{served_model}.ttft", f"{served_model}.tpot"


def request_columns(
    served_model: str, items: Sequence[PredictionRequest], endpoint: EndpointLookup
) -> dict[str, Any]:
    """Predictor columns of llm-d requests (no prompt text: llm-d sends none)."""
    devices = [device_of(r.pod_type) for r in items]
    stats = {d: endpoint(served_model, d) for d in dict.fromkeys(devices)}
    ep = [stats[d] for d in devices]
    return {
        "served_model": [served_model] * len(items),
        "device": devices,
        "prompt": None,
        "input_tokens": [r.input_token_length for r in items],
        "cached_tokens": [round(r.prefix_cache_score * r.input_token_length) for r in items],
        "num_running": [r.num_request_running for r in items],
        "num_waiting": [r.num_request_waiting for r in items],
        "kv_cache_util": [r.kv_cache_percentage for r in items],
        "prefill_tokens_in_flight": [r.prefill_tokens_in_flight for r in items],
        "decode_tokens_in_flight": [r.decode_tokens_in_flight for r in items],
        "output_tokens": [r.num_tokens_generated for r in items],
        "ep_completions": [e.completions for e in ep],
        "ep_median_tokens_per_s": [e.median_tokens_per_s for e in ep],
        "ep_median_latency_s": [e.median_latency_s for e in ep],
    }


def predict_ms(
    model: LoadedModel,
    cols: dict[str, Any],
    n: int,
    quantile: float,
    calibration: ServedCalibration | None = None,
) -> list[float]:
    """The model's ``quantile`` of each row, milliseconds (>= 0), with any offsets."""
    predictor = model.predictor
    if calibration is not None and calibration.applies(model):
        raw, classes = predictor.predict_with_classes(cols, n)
        values = calibration.adjust(
            model, np.maximum(raw, 0.0), classes, [None] * n, cols["device"]
        )
    else:
        values = np.maximum(predictor.predict(cols, n), 0.0)
    grid = np.asarray(predictor.spec.levels, dtype=np.float64)
    q = ppf_rows(grid, values, np.array([quantile]), lower=0.0)[:, 0] * 1000.0
    out: list[float] = q.tolist()
    return out


def entry_record(entry: TrainingEntry, served_model: str) -> dict[str, Any]:
    """The completion record of one llm-d training entry (idempotent request id)."""
    at = entry.timestamp if entry.timestamp.tzinfo else entry.timestamp.replace(tzinfo=UTC)
    ttft_s = entry.actual_ttft_ms / 1000.0
    latency_s = ttft_s + entry.actual_tpot_ms / 1000.0 * entry.num_tokens_generated
    key = hashlib.blake2b(entry.model_dump_json().encode(), digest_size=12).hexdigest()
    return {
        "request_id": f"llmd-{key}",
        "served_model": served_model,
        "device": device_of(entry.pod_type),
        "submitted_at": at,
        "input_tokens": entry.input_token_length,
        "cached_tokens": round(entry.prefix_cache_score * entry.input_token_length),
        "output_tokens": entry.num_tokens_generated,
        "latency_s": latency_s if latency_s > 0 else None,
        "ttft_s": ttft_s,
        "num_running": entry.num_request_running,
        "num_waiting": entry.num_request_waiting,
        "kv_cache_util": entry.kv_cache_percentage,
        "prefill_tokens_in_flight": entry.prefill_tokens_in_flight,
        "decode_tokens_in_flight": entry.decode_tokens_in_flight,
    }
