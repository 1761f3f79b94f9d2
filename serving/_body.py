"""Lean request/response plumbing for the hot routes.

The hot routes read the raw body and validate it with pydantic's JSON parser in one
step (no ``json.loads`` + dict validation), and write ``orjson`` bytes straight into
the response (no response-model round trip). Errors keep FastAPI's shape: 422 with
``detail[*].loc`` starting at ``"body"``; every error is JSON-safe whatever was sent
(a body that is not UTF-8, NaN, a 400-digit integer, a lone surrogate), so rendering a
422 never fails. Their schemas still appear in ``/docs`` through :func:`json_body` and
:func:`serving._openapi.install_schemas`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
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


def load_json(raw: bytes) -> Any:
    """Decode a JSON body with the standard library (lone surrogates kept for the caller).

    Raises:
        RequestValidationError: 422 ``json_invalid`` with the reason: not UTF-8, not
            JSON, an integer over 4300 digits, or nested too deep.
    """
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError too
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        error = {"type": "json_invalid", "loc": ("body",), "msg": f"Invalid JSON: {reason}"}
        raise RequestValidationError([error]) from None


def body_errors(exc: ValidationError, prefix: Sequence[str | int] = ("body",)) -> list[Any]:
    """``exc``'s errors with ``loc`` under ``prefix``, JSON-safe (see :func:`json_safe`).

    The raw body a ``json_invalid`` error carries as its input is left out (the
    message says what is wrong; the body may be megabytes, and not text).
    """
    out = []
    for err in exc.errors(include_url=False):
        item: dict[str, Any] = {
            **err,
            "loc": tuple(json_safe(p) for p in (*prefix, *err["loc"])),
            "msg": json_safe(err["msg"]),
        }
        if isinstance(item.get("input"), bytes | bytearray):
            del item["input"]
        elif "input" in item:
            item["input"] = json_safe(item["input"])
        if "ctx" in item:
            item["ctx"] = {
                k: json_safe(v if isinstance(v, int | float | str) else str(v))
                for k, v in item["ctx"].items()
            }
        out.append(item)
    return out


def json_safe(value: Any) -> Any:
    r"""``value`` as strict JSON any encoder takes (orjson, ``json`` without NaN).

    Non-finite floats become ``"nan"``/``"inf"``/``"-inf"``, integers beyond 64 bits a
    short description, text with lone surrogates their ``\udXXX`` escapes; dicts and
    lists are converted item by item; anything else is returned as is.

    >>> json_safe({"a": [float("nan"), 10**30, "x\ud800"]})
    {'a': ['nan', '<100-bit integer>', 'x\\ud800']}
    """
    if isinstance(value, str):
        return value if value.isascii() else value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, float):
        return value if value - value == 0.0 else str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -(2**63) <= value < 2**64 else f"<{value.bit_length()}-bit integer>"
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


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


def inline_json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a route's JSON body as ``model``'s own schema, inline.

    For a model without nested models, so that the route needs no shared component.
    """
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
