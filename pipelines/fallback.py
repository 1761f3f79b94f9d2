"""Register a fallback champion: served within a minute, replaced once a search wins.

``tailcast run`` registers one per served model that has no champion, right after the
demo workload is ingested, and starts serving at once; the searched champion
(:mod:`pipelines.quick`) is trained in the background and becomes ``champion`` when it
beats the fallback on the same held-out rows (the poller swaps it in). The fallback is
``training``'s empirical quantiles per (prompt class, device), tagged ``kind=fallback``
in the registry and in its bundle, so ``/readyz``, ``/v1/models`` and ``tailcast models
list --json`` say which kind each served model runs.

Its reported ``mean_pinball`` and coverage are held out: fitted on the first
``1 - holdout`` of the rows by submission time and scored on the rest; the registered
predictor is then fitted on every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core import Settings

if TYPE_CHECKING:
    import pyarrow as pa

#: Columns the fallback reads from a training frame.
COLUMNS = ("latency_s", "device", "prompt_class")


@dataclass(frozen=True, slots=True)
class FallbackRequest:
    """What to register.

    Attributes:
        served_model: The served model (registered as ``tailcast-<served_model>``).
        min_count: Rows a device or (prompt class, device) group needs for its own quantiles.
        holdout: Share of the latest rows scored (not fitted) for the reported metrics.
        trigger: The version's ``trigger`` tag.
    """

    served_model: str
    min_count: int = 20
    holdout: float = 0.2
    trigger: str = "first-run"


@dataclass(frozen=True, slots=True)
class FallbackResult:
    """What was registered.

    Attributes:
        version: The registered version, now ``champion``.
        rows: Rows it was fitted on.
        mean_pinball: Held-out mean pinball loss (seconds).
        coverage: Held-out coverage per level (``"0.9"`` -> share of rows at or below).
    """

    version: int
    rows: int
    mean_pinball: float
    coverage: dict[str, float]


def _holdout_scores(
    rows: dict[str, Any], request: FallbackRequest
) -> tuple[float, dict[str, float]]:
    """Held-out mean pinball (s) and coverage per level of a fit on the earlier rows."""
    from training import fallback_predictor
    from training.metrics import coverage, level_key, mean_pinball

    n = len(rows["latency_s"])
    cut = max(1, min(n - 1, int(n * (1.0 - request.holdout))))
    head = {k: v[:cut] for k, v in rows.items()}
    tail = {k: v[cut:] for k, v in rows.items()}
    model = fallback_predictor(head, request.served_model, min_count=request.min_count)
    q = model.predict({**tail, "served_model": [request.served_model] * (n - cut)}, n - cut)
    y = np.asarray(tail["latency_s"], dtype=np.float64)
    levels = model.spec.levels
    cov = {level_key(lv): float(c) for lv, c in zip(levels, coverage(y, q), strict=True)}
    return mean_pinball(y, q, levels), cov


def register_fallback(
    settings: Settings, frame: pa.Table, request: FallbackRequest
) -> FallbackResult:
    """Fit, register and promote the fallback champion of ``request.served_model``.

    Args:
        settings: Where the registry is.
        frame: The served model's training frame (ordered by submission time, with a
            positive ``latency_s`` on every row; at least two rows).
        request: What to register.

    Raises:
        ValueError: Fewer than two rows.
    """
    from pipelines.train import input_example
    from registry import MLflowRegistry
    from training import FALLBACK_KIND, fallback_predictor

    if frame.num_rows < 2:
        raise ValueError(f"{request.served_model}: {frame.num_rows} row(s); a fallback needs 2")
    rows = {c: frame.column(c).to_pylist() for c in COLUMNS if c in frame.column_names}
    loss, cov = _holdout_scores(rows, request)
    predictor = fallback_predictor(rows, request.served_model, min_count=request.min_count)
    registry = MLflowRegistry(settings.mlflow_tracking_uri or "")
    version = registry.log_training(
        request.served_model,
        predictor,
        params={
            "served_model": request.served_model,
            "kind": FALLBACK_KIND,
            "method": predictor.spec.metadata["method"],
            "min_count": request.min_count,
            "rows": frame.num_rows,
            "holdout": request.holdout,
        },
        metrics={"mean_pinball": loss, **{f"coverage_{k}": v for k, v in cov.items()}},
        artifacts={},
        input_example=input_example(frame.slice(0, 8).to_pydict()),
        tags={"kind": FALLBACK_KIND, "trigger": request.trigger},
    )
    registry.promote(request.served_model, version.version)
    return FallbackResult(version.version, frame.num_rows, loss, cov)
