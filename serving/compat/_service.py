"""The llm-d predictor: TTFT and TPOT champions answered through a micro-batcher."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import HTTPException, status

from feature_store import RecordStore
from serving._batcher import MicroBatcher
from serving._calibration import ServedCalibration
from serving._models import LoadedModel, ModelTable
from serving.compat._files import ModelFiles
from serving.compat._mapping import EndpointLookup, predict_ms, request_columns, target_names
from serving.compat._training import LlmdTraining, metric_lines
from serving.compat.schemas import MODEL_TYPE, OBJECTIVE_TYPE, PredictionRequest

#: llm-d's answer while no model is loaded (its ``detail`` text, status 503).
NOT_READY = "Models not ready"


class LlmdPredictor:
    """Answers llm-d prediction calls from the ``<name>.ttft`` / ``<name>.tpot`` champions.

    Args:
        models: The service's model table.
        served_model: The llm-d served model (its training data is stored under it).
        quantile: The level every ``ttft_ms``/``tpot_ms`` is read at, in (0, 1).
        endpoint: Endpoint features lookup.
        max_items: Most items the batcher runs at once.
        calibration: Adaptive conformal offsets applied to the champions' grids.

    Attributes:
        files: The loaded champions as llm-d model files.
    """

    def __init__(
        self,
        models: ModelTable,
        served_model: str,
        quantile: float,
        endpoint: EndpointLookup,
        max_items: int,
        calibration: ServedCalibration | None = None,
    ) -> None:
        self.models = models
        self.served_model = served_model
        self.quantile = quantile
        self.ttft_name, self.tpot_name = target_names(served_model)
        self._endpoint = endpoint
        self._calibration = calibration
        self.files = ModelFiles()
        self._training: LlmdTraining | None = None
        run: Callable[[Any, list[PredictionRequest]], list[tuple[float, float]]] = self._run
        self.batcher: MicroBatcher[PredictionRequest, tuple[float, float]] = MicroBatcher(
            run, max_items, name="llmd"
        )

    def loaded(self) -> tuple[LoadedModel | None, LoadedModel | None]:
        """The loaded TTFT and TPOT models (``None`` where missing)."""
        snapshot = self.models.snapshot()
        return snapshot.get(self.ttft_name), snapshot.get(self.tpot_name)

    def training(self, store: RecordStore, home: Path) -> LlmdTraining:
        """The stored samples of the llm-d served model (one view per service)."""
        if self._training is None:
            self._training = LlmdTraining(store, home, self.served_model)
        return self._training

    async def metric_text(self, store: RecordStore, home: Path) -> str:
        """llm-d's training-server lines of ``/metrics`` (sample counts from the store)."""
        train, test = await self.training(store, home).counts()
        return metric_lines(MODEL_TYPE, OBJECTIVE_TYPE, self.quantile, train, test)

    def last_load(self) -> datetime | None:
        """When the older of the two current models was loaded (``None``: not ready)."""
        ttft, tpot = self.loaded()
        if ttft is None or tpot is None:
            return None
        return max(ttft.loaded_at, tpot.loaded_at)

    async def predict(self, items: list[PredictionRequest]) -> list[dict[str, Any]]:
        """llm-d ``PredictionResponse`` dicts, one per item.

        Raises:
            HTTPException: 503 while the TTFT or TPOT model is not loaded.
        """
        ttft, tpot = self.loaded()
        if ttft is None or tpot is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=NOT_READY)
        pairs = await self.batcher.submit((id(ttft), id(tpot)), items, (ttft, tpot))
        now = datetime.now(UTC)
        last = max(ttft.loaded_at, tpot.loaded_at)
        return [
            {
                "ttft_ms": a,
                "tpot_ms": b,
                "predicted_at": now,
                "model_type": MODEL_TYPE,
                "objective_type": OBJECTIVE_TYPE,
                "quantile": self.quantile,
                "last_model_load": last,
            }
            for a, b in pairs
        ]

    def _run(self, context: Any, items: list[PredictionRequest]) -> list[tuple[float, float]]:
        ttft, tpot = context
        cols = request_columns(self.served_model, items, self._endpoint)
        n = len(items)
        a = predict_ms(ttft, cols, n, self.quantile, self._calibration)
        b = predict_ms(tpot, cols, n, self.quantile, self._calibration)
        return list(zip(a, b, strict=True))

    def close(self) -> None:
        """Stop the batcher's thread."""
        self.batcher.close()
