"""The service's OpenAPI document: shared components, resolvable references, statuses.

Hot routes read their bodies themselves (:mod:`serving._body`), so FastAPI does not see
their models; :func:`install_schemas` adds them to ``components/schemas``. Schemas
pydantic writes inline (``openapi_extra`` bodies) carry their nested models under a
local ``$defs`` with ``#/$defs/...`` references, which do not resolve from the root of
the document: the installed document moves every ``$defs`` entry to
``components/schemas`` and points those references there, so every ``$ref`` in it
resolves.

The ``responses=`` pieces below document the statuses routes answer besides 200;
routes combine them (``responses={**UNAUTHORIZED, **INVALID_BODY}``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

Responses = dict[int | str, dict[str, Any]]

COMPONENT_REF = "#/components/schemas/{model}"
_LOCAL_DEFS = "#/$defs/"

#: 401 of a route behind the API token.
UNAUTHORIZED: Responses = {
    401: {"description": "Missing or wrong bearer token (when one is configured)."}
}
#: 422 of a route whose body or parameters pydantic validates.
INVALID: Responses = {422: {"description": "Invalid input; `detail[*].loc` is the field path."}}
#: 400 and 422 of a route whose JSON body FastAPI parses (400: not decodable at all).
INVALID_BODY: Responses = {
    400: {"description": "The body could not be parsed (e.g. not UTF-8)."},
    **INVALID,
}
#: 413 of a route with a batch limit.
TOO_LARGE: Responses = {
    413: {"description": "More items than the batch limit, or too large a body."}
}


def install_schemas(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Make ``app``'s OpenAPI document define ``models`` and resolve every reference.

    ``models`` are the bodies routes declare with :func:`serving._body.json_body`
    (``#/components/schemas/<Model>``). The document is built once, on first use.

    Args:
        app: The service; its ``openapi`` method is replaced.
        models: Body models to define in ``components/schemas`` (with their nested
            models).
    """
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            defined = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                own = model.model_json_schema(ref_template=COMPONENT_REF)
                for name, sub in own.pop("$defs", {}).items():
                    defined.setdefault(name, sub)
                defined.setdefault(model.__name__, own)
            hoist_local_defs(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def hoist_local_defs(document: dict[str, Any]) -> None:
    """Move every nested ``$defs`` of ``document`` into ``components/schemas``, in place.

    References ``#/$defs/<Name>`` become ``#/components/schemas/<Name>``. A name already
    defined keeps its first definition (pydantic names a model by its class, so equal
    names are the same model in this service).

    >>> doc = {"paths": {"/a": {"schema": {"$ref": "#/$defs/B", "$defs": {"B": {}}}}}}
    >>> hoist_local_defs(doc)
    >>> doc["paths"]["/a"]["schema"], doc["components"]["schemas"]
    ({'$ref': '#/components/schemas/B'}, {'B': {}})
    """
    defined: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    found: dict[str, Any] = {}
    _collect(document, found)
    for name, sub in found.items():
        defined.setdefault(name, sub)


def _collect(node: Any, found: dict[str, Any]) -> None:
    """Pop ``$defs`` below ``node`` into ``found`` and rewrite their references."""
    if isinstance(node, dict):
        for name, sub in node.pop("$defs", {}).items():
            _collect(sub, found)
            found.setdefault(name, sub)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_LOCAL_DEFS):
            node["$ref"] = COMPONENT_REF.format(model=ref.removeprefix(_LOCAL_DEFS))
        for value in node.values():
            _collect(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect(value, found)


def unresolved_refs(document: dict[str, Any]) -> list[str]:
    """Every ``$ref`` of ``document`` that does not point at an existing node, sorted.

    Only local references (``#/...``, JSON pointers) are followed; any other reference
    counts as unresolved (the service's document has no external ones).

    >>> unresolved_refs({"a": {"$ref": "#/b"}, "b": {}, "c": {"$ref": "#/$defs/X"}})
    ['#/$defs/X']
    """
    refs: set[str] = set()
    _refs(document, refs)
    return sorted(r for r in refs if not _resolves(document, r))


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref)
        for value in node.values():
            _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)


def _resolves(document: dict[str, Any], ref: str) -> bool:
    if not ref.startswith("#/"):
        return False
    node: Any = document
    for raw in ref[2:].split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True
