"""Forecast a batch of requests: one vectorized predictor call per served model.

Pure and synchronous (the micro-batcher runs it in its worker thread): request
fields, cached endpoint features and cached prompt features become predictor
columns, the predictor answers its quantile grid, and :mod:`core.quantiles` answers
the levels, mean and CDF points asked for for every row at once (the same rules as
:class:`core.QuantileForecast`), from the grid adjusted by the adaptive conformal
offsets of each row's group (:mod:`serving._calibration`) when given. Answers are
plain dicts in the shape of :class:`serving.schemas.Forecast`, ready for ``orjson``.

Example:
    >>> decimal_key(2.0), decimal_key(0.95), decimal_key(1e-05)
    ('2', '0.95', '1e-05')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from core.quantiles import cdf_rows, mean_rows, ppf_rows
from feature_store import EndpointStats, PreviousCall
from serving._calibration import ServedCalibration
from serving._models import LoadedModel
from serving.schemas import ForecastRequest, PreviousCallState

EndpointLookup = Callable[[str, str], EndpointStats]


def decimal_key(x: float) -> str:
    """The shortest decimal form of ``x`` that reads back exactly (``2.0`` -> ``"2"``)."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def request_columns(items: Sequence[ForecastRequest], endpoint: EndpointLookup) -> dict[str, Any]:
    """Predictor input columns for ``items`` (``None`` where a value is missing).

    Args:
        items: Requests of one served model.
        endpoint: Endpoint features of a (served_model, device), e.g. from the cache.
    """
    stats = {
        key: endpoint(*key) for key in dict.fromkeys((r.served_model, r.device) for r in items)
    }
    ep = [stats[(r.served_model, r.device)] for r in items]
    runtime = [r.runtime for r in items]
    return {
        "served_model": [r.served_model for r in items],
        "device": [r.device for r in items],
        "prompt": [r.prompt for r in items],
        "prompt_class": [r.prompt_class for r in items],
        "input_tokens": [r.input_tokens for r in items],
        "cached_tokens": [r.cached_tokens for r in items],
        "step": [r.step for r in items],
        "num_running": [s.num_running if s else None for s in runtime],
        "num_waiting": [s.num_waiting if s else None for s in runtime],
        "kv_cache_util": [s.kv_cache_util if s else None for s in runtime],
        "prefill_tokens_in_flight": [s.prefill_tokens_in_flight if s else None for s in runtime],
        "decode_tokens_in_flight": [s.decode_tokens_in_flight if s else None for s in runtime],
        **endpoint_columns(ep),
        **workflow_columns([r.previous_call for r in items]),
    }


def endpoint_columns(ep: Sequence[EndpointStats]) -> dict[str, list[Any]]:
    """The endpoint feature columns of rows whose endpoint statistics are ``ep``."""
    return {
        "ep_completions": [e.completions for e in ep],
        "ep_median_tokens_per_s": [e.median_tokens_per_s for e in ep],
        "ep_median_latency_s": [e.median_latency_s for e in ep],
    }


def workflow_columns(prev: Sequence[PreviousCallState | PreviousCall | None]) -> dict[str, Any]:
    """The workflow feature columns of rows whose previous calls are ``prev``."""
    return {
        "wf_prev_output_tokens": [p.output_tokens if p else None for p in prev],
        "wf_prev_latency_s": [p.latency_s if p else None for p in prev],
    }


def forecast_group(
    model: LoadedModel,
    items: Sequence[ForecastRequest],
    levels: Sequence[float],
    cdf_at: Sequence[float] | None,
    endpoint: EndpointLookup,
    calibration: ServedCalibration | None = None,
) -> list[dict[str, Any]]:
    """Forecast requests of one served model with one predictor call.

    Args:
        model: The served model's loaded predictor.
        items: Its requests.
        levels: Quantile levels to answer, each in (0, 1).
        cdf_at: Latencies (seconds) at which to answer the CDF, or ``None``.
        endpoint: Endpoint features lookup.
        calibration: Adaptive conformal offsets applied to the grid (``None``: the
            model's own forecasts).

    Returns:
        One forecast per request, in order.
    """
    n = len(items)
    cols = request_columns(items, endpoint)
    predictor = model.predictor
    width = predictor.spec.projection
    if width and predictor.spec.text.kind != "none":
        cols["projected_text"] = model.prompts.rows(
            cols["prompt"], width, lambda p: predictor.projected_text({"prompt": p}, len(p))
        )
    grid = np.asarray(predictor.spec.levels, dtype=np.float64)
    values, classes = predictor.predict_with_classes(cols, n)
    values = np.maximum(values, 0.0)  # seconds, (n, K)
    if calibration is not None:
        values = calibration.adjust(model, values, classes, cols["prompt_class"], cols["device"])
    level_keys = [decimal_key(q) for q in levels]
    quantiles = ppf_rows(grid, values, np.asarray(levels, dtype=np.float64), lower=0.0).tolist()
    means = mean_rows(grid, values, lower=0.0).tolist()
    cdfs: list[dict[str, float] | None] = [None] * n
    if cdf_at is not None:
        point_keys = [decimal_key(x) for x in cdf_at]
        probabilities = cdf_rows(grid, values, np.asarray(cdf_at, dtype=np.float64), lower=0.0)
        cdfs = [dict(zip(point_keys, row, strict=True)) for row in probabilities.tolist()]
    version = model.version.version
    devices = predictor.spec.devices
    return [
        {
            "request_id": item.request_id,
            "served_model": item.served_model,
            "model_version": version,
            "prompt_class": prompt_class,
            "quantiles": dict(zip(level_keys, q, strict=True)),
            "mean": mean,
            "cdf": cdf,
            "unknown_device": item.device not in devices,
        }
        for item, prompt_class, q, mean, cdf in zip(
            items, classes, quantiles, means, cdfs, strict=True
        )
    ]


def forecast_batch(
    models: Mapping[str, LoadedModel],
    items: Sequence[ForecastRequest],
    levels: Sequence[float],
    cdf_at: Sequence[float] | None,
    endpoint: EndpointLookup,
    calibration: ServedCalibration | None = None,
) -> list[dict[str, Any]]:
    """Forecast a mixed batch: group by served model, one predictor call per group.

    Args:
        models: The loaded model of every served model in ``items``.
        items: The requests.
        levels: Quantile levels to answer.
        cdf_at: CDF points (seconds), or ``None``.
        endpoint: Endpoint features lookup.
        calibration: Adaptive conformal offsets (see :func:`forecast_group`).

    Returns:
        One forecast per request, in the order of ``items``.
    """
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.served_model, []).append(i)
    answers: list[dict[str, Any] | None] = [None] * len(items)
    for served_model, index in groups.items():
        group = forecast_group(
            models[served_model], [items[i] for i in index], levels, cdf_at, endpoint, calibration
        )
        for i, forecast in zip(index, group, strict=True):
            answers[i] = forecast
    return [a for a in answers if a is not None]
