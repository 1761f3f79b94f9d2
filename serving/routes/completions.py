r"""``POST /v1/completions``: observed outcomes, stored durably and idempotently.

The bearer token is checked before the body is read, so an unauthenticated caller is
answered 401 whatever it sent. The body is decoded by the standard library (not
pydantic's parser), which keeps a lone surrogate escape (``"\ud800"``) as text: the
store then rejects that item alone, naming the field, instead of the whole batch.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from core import StoreError
from serving._body import body_errors, inline_json_body, load_json
from serving._drift import wake_drift
from serving._ingest import Outcome, report_of
from serving.deps import CompletionWriterDep, ConfigDep, MetricsDep, ModelsDep, RequireToken
from serving.schemas import CompletionRejection, CompletionsRequest, CompletionsResponse

router = APIRouter(prefix="/v1", tags=["completions"])

#: The ``source`` label stored with records that arrive through the API.
SOURCE = "api"


def parse_completions(raw: bytes) -> CompletionsRequest:
    """Decode and validate the envelope of a completions body (items stay untyped).

    Raises:
        RequestValidationError: 422: not UTF-8 or not JSON, or no ``completions`` list.
    """
    try:
        return CompletionsRequest.model_validate(load_json(raw))
    except ValidationError as exc:
        raise RequestValidationError(body_errors(exc)) from None


@router.post(
    "/completions",
    dependencies=[RequireToken],
    openapi_extra=inline_json_body(CompletionsRequest),
    responses={
        401: {"description": "Missing or wrong bearer token (when one is configured)."},
        413: {"description": "More completions than the batch limit, or too large a body."},
        422: {"description": "Not JSON, or no `completions` list (items are judged alone)."},
        503: {"description": "The feature store could not store the batch (nothing was)."},
    },
)
async def post_completions(
    writer: CompletionWriterDep,
    config: ConfigDep,
    metrics: MetricsDep,
    models: ModelsDep,
    request: Request,
) -> CompletionsResponse:
    """Store observed completions (``CompletionRecord`` objects), idempotent by request_id.

    Each item is validated on its own: invalid ones (including values the store cannot
    hold) are rejected with their index, field and reason while the valid ones are
    stored. The answer comes once the accepted records are durable (calls that arrive
    together share one transaction); re-sending a batch counts its records as
    duplicates. Served models no loaded predictor serves are named in
    ``unserved_models`` (their records are stored all the same).
    """
    body = parse_completions(await request.body())
    n = len(body.completions)
    if n > config.max_batch_items:
        raise HTTPException(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"{n} completions in one call; the limit is {config.max_batch_items}",
        )
    try:
        # group commit: stored in one transaction with the calls that arrived meanwhile
        outcomes = await writer.submit(SOURCE, body.completions, SOURCE)
    except StoreError as exc:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"nothing was stored, retry later: {exc}",
        ) from exc
    report = report_of(outcomes)
    # the ingest put the records it stored now in the drift inbox: wake the judge
    wake_drift(request.app)
    metrics.completions_accepted.inc(report.accepted)
    metrics.completions_duplicates.inc(report.duplicates)
    metrics.completions_rejected.inc(len(report.rejected))
    return CompletionsResponse(
        accepted=report.accepted,
        duplicates=report.duplicates,
        rejected=[
            CompletionRejection(index=r.index, field=r.field, reason=r.reason)
            for r in report.rejected
        ],
        unserved_models=unserved(body.completions, outcomes, models.names()),
    )


def unserved(items: list[Any], outcomes: list[Outcome], served: tuple[str, ...]) -> list[str]:
    """Served models of the valid ``items`` (stored or duplicates) not in ``served``, sorted.

    >>> from core import Rejection
    >>> unserved([{"served_model": "a"}, {"served_model": "b"}, {"served_model": "c"}],
    ...     ["accepted", "duplicate", Rejection(index=2, reason="bad")], ("a",))
    ['b']
    """
    named = {
        item["served_model"]
        for item, outcome in zip(items, outcomes, strict=True)
        if isinstance(outcome, str) and isinstance(item, dict)
    }
    return sorted(named.difference(served))
