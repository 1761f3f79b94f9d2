"""llm-d's training-server endpoints (besides ``/add_training_data_bulk``).

``GET /``, ``/model/download/info``, ``/models/list``, ``/model/{name}/info``,
``/model/{name}/download``, ``/model/export``, ``/data/status`` and ``POST /flush``,
with llm-d's status codes: 404 for an unknown or absent model file, 503 from
``/model/export`` while no TTFT/TPOT model is loaded, 422 for an invalid flush body.
The model files are the loaded champions (see :mod:`serving.compat._files`); the
XGBoost/LightGBM dump endpoints answer 404, as llm-d's do while no such dump exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status
from starlette.responses import Response

from serving._openapi import INVALID_BODY, UNAUTHORIZED
from serving._state import ServiceState
from serving.compat._files import MODEL_NAMES, ModelFile, export_bundle
from serving.compat.schemas import MODEL_TYPE, OBJECTIVE_TYPE, FlushRequest, FlushResponse
from serving.deps import RequireToken, ServiceDep

router = APIRouter(tags=["llm-d"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such model file."}}
_DUMPS = ("xgb/json", "lgb/txt", "lgb/importances")


def _files(service: ServiceState) -> dict[str, ModelFile]:
    """The present model files by llm-d name (``ttft``, ``tpot``)."""
    ttft, tpot = service.llmd.loaded()
    present = {"ttft": ttft, "tpot": tpot}
    return {k: service.llmd.files.file(m) for k, m in present.items() if m is not None}


def _file(service: ServiceState, name: str) -> ModelFile:
    if name not in MODEL_NAMES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Unknown model: {name}")
    found = _files(service).get(name)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Model {name} not found")
    return found


@router.get("/")
async def root(service: ServiceDep) -> dict[str, Any]:
    """What llm-d's prediction and training servers answer at ``/``, in one."""
    q = service.llmd.quantile
    return {
        "message": "tailcast: llm-d latency-predictor compatible (prediction and training).",
        "model_type": MODEL_TYPE,
        "objective_type": OBJECTIVE_TYPE,
        "quantile": q,
        "description": f"Predicting {q:.0%} quantile for TTFT and TPOT latencies",
        "is_ready": None not in service.llmd.loaded(),
        "sync_interval": service.poller.interval_s,
        "training_server": "self",
    }


@router.get("/model/download/info")
async def model_download_info(service: ServiceDep) -> dict[str, Any]:
    """Model type, quantile, where the model files are, and whether they are loaded."""
    ttft, tpot = service.llmd.loaded()
    q = service.llmd.quantile
    return {
        "model_type": MODEL_TYPE,
        "quantile": q,
        "available_endpoints": {
            "models": "/models/list",
            "download": "/model/{name}/download",
            "export": "/model/export",
        },
        "model_status": {
            "ttft_model_ready": ttft is not None,
            "tpot_model_ready": tpot is not None,
        },
        "evaluation_info": {
            "quantile_loss": "Pinball loss of the tailcast predictor on held-out samples",
            "coverage_percent": f"Target: {q * 100:.1f}%",
        },
    }


@router.get("/models/list")
async def models_list(service: ServiceDep) -> dict[str, Any]:
    """Every llm-d model name: whether it exists, its size and modification time."""
    q = service.llmd.quantile
    return {
        "models": service.llmd.files.listing(*service.llmd.loaded()),
        "model_type": MODEL_TYPE,
        "quantile": q,
        "server_time": datetime.now(UTC).isoformat(),
        "evaluation_metrics": {
            "quantile_loss": "Lower is better",
            "coverage_percent": f"Target: {q * 100:.1f}%",
            "violation_rate_percent": f"Target: {(1 - q) * 100:.1f}%",
        },
    }


@router.get(
    "/model/export",
    response_class=Response,
    responses={
        200: {"content": {"application/gzip": {}}, "description": "The seed bundle."},
        503: {"description": "Models are not ready."},
    },
)
async def model_export(service: ServiceDep) -> Response:
    """Both champions' files and a ``metadata.json`` in one ``.tar.gz`` (seed bundle)."""
    files = _files(service)
    if len(files) < 2:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="Models are not ready.")
    train, _ = await service.llmd.training(service.store, service.settings.home).counts()
    meta = {
        "model_type": MODEL_TYPE,
        "quantile_alpha": service.llmd.quantile,
        "exported_at": datetime.now(UTC).isoformat(),
        "ttft_samples": train.ttft,
        "tpot_samples": train.tpot,
        "versions": {name: f.path for name, f in files.items()},
    }
    return Response(
        export_bundle(files, meta),
        media_type="application/gzip",
        headers={"Content-Disposition": "attachment; filename=seed-model.tar.gz"},
    )


@router.get("/model/{name}/{family}/{kind}", responses=_NOT_FOUND)
async def model_dump(name: str, family: str, kind: str) -> None:
    """llm-d's XGBoost/LightGBM dumps: 404, tailcast's predictors are neither."""
    raise HTTPException(
        status.HTTP_404_NOT_FOUND,
        detail=f"{name.upper()} {family}/{kind} not available: tailcast serves its own "
        "quantile predictor (download it from /model/{name}/download)",
    )


@router.get("/model/{name}/info", responses=_NOT_FOUND)
async def model_info(name: str, service: ServiceDep) -> dict[str, Any]:
    """Size and modification time of one model file (404 when unknown or absent)."""
    found = _file(service, name)
    return {
        **found.info(name),
        "model_type": MODEL_TYPE,
        "quantile": service.llmd.quantile if name in ("ttft", "tpot") else None,
    }


@router.get(
    "/model/{name}/download",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file."},
        **_NOT_FOUND,
    },
)
async def model_download(name: str, service: ServiceDep) -> Response:
    """One model file: the champion's predictor bundle as a ``.tar.gz``."""
    found = _file(service, name)
    return Response(
        found.data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename={name}.tailcast.tar.gz"},
    )


@router.post(
    "/flush",
    dependencies=[RequireToken],
    response_model=FlushResponse,
    responses={**UNAUTHORIZED, **INVALID_BODY},
)
async def flush(
    service: ServiceDep, body: Annotated[FlushRequest | None, Body()] = None
) -> FlushResponse:
    """Flush training and/or test samples: they stop counting and stop being retrained on.

    The samples stay in the store (it only appends); see ``docs/serving.md``.
    """
    req = body or FlushRequest()
    data = service.llmd.training(service.store, service.settings.home)
    train, test = await data.flush(req.flush_training_data, req.flush_test_data)
    parts = []
    if req.flush_training_data:
        parts.append(f"{train.ttft} TTFT and {train.tpot} TPOT training samples")
    if req.flush_test_data:
        parts.append(f"{test.ttft} TTFT and {test.tpot} TPOT test samples")
    if req.flush_metrics:
        parts.append("all metric scores")
    return FlushResponse(
        success=True,
        flushed_at=datetime.now(UTC),
        reason=req.reason,
        ttft_training_samples_flushed=train.ttft,
        tpot_training_samples_flushed=train.tpot,
        ttft_test_samples_flushed=test.ttft,
        tpot_test_samples_flushed=test.tpot,
        metrics_cleared=req.flush_metrics,
        message=f"Successfully flushed: {', '.join(parts)}" if parts else "No data flushed",
    )


@router.get("/data/status")
async def data_status(service: ServiceDep) -> dict[str, Any]:
    """Stored samples by part (training/test), and whether the models are ready."""
    data = service.llmd.training(service.store, service.settings.home)
    train, test = await data.counts()
    ttft, tpot = service.llmd.loaded()
    marks = data.marks()
    return {
        "training_data": train.as_dict(),
        "test_data": test.as_dict(),
        "ensemble": {"ensemble_mode": False, "ensemble_active": False},
        "metrics": {"ttft_scores_count": 0, "tpot_scores_count": 0},
        "bucket_distribution": {},
        "model_ready": ttft is not None and tpot is not None,
        "last_retrain": service.llmd.last_load(),
        "flushed_before": {"training": marks.train_before, "test": marks.test_before},
    }
