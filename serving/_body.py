"""Lean request/response plumbing for the hot routes.

The hot routes read the raw body and validate it with pydantic's JSON parser in one
step (no ``json.loads`` + dict validation), and write ``orjson`` bytes straight into
the response (no response-model round trip). Errors keep FastAPI's shape: 422 with
``detail[*].loc`` starting at ``"body"``. Their schemas still appear in ``/docs``
through :func:`json_body` and :func:`install_schemas`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

M = TypeVar("M", bound=BaseModel)
_REF = "#/components/schemas/{model}"


def parse_body(model: type[M], raw: bytes) -> M:
    """Validate a JSON body as ``model``.

    Raises:
        RequestValidationError: Answered 422 with each error's field path under ``body``.
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(body_errors(exc)) from None


def body_errors(exc: ValidationError, prefix: Sequence[str | int] = ("body",)) -> list[Any]:
    """``exc``'s errors with ``loc`` under ``prefix`` and plain-text contexts."""
    out = []
    for err in exc.errors(include_url=False):
        item: dict[str, Any] = {**err, "loc": (*prefix, *err["loc"])}
        if "ctx" in item:
            item["ctx"] = {
                k: v if isinstance(v, int | float | str) else str(v) for k, v in item["ctx"].items()
            }
        out.append(item)
    return out


def json_response(content: Any, status_code: int = 200) -> Response:
    """``content`` serialized by orjson (datetimes as RFC 3339, numpy not allowed)."""
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a route's JSON body as ``model``."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}
            },
        }
    }


def install_schemas(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Make ``app``'s OpenAPI document define ``models`` (bodies declared by :func:`json_body`)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            defined = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                own = model.model_json_schema(ref_template=_REF)
                for name, sub in own.pop("$defs", {}).items():
                    defined.setdefault(name, sub)
                defined.setdefault(model.__name__, own)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
