"""Offline API docs: Swagger UI at ``/docs`` and ReDoc at ``/redoc``, assets served locally.

FastAPI's own doc pages load Swagger UI and ReDoc from a CDN, so they are blank on a
machine without internet access. :func:`install_docs` serves the bundles that ship with
``fastapi-offline`` (``swagger-ui-bundle.js``, ``swagger-ui.css``,
``redoc.standalone.js``, ``favicon.png``) from tailcast itself under
:data:`STATIC_URL`, and answers both pages with FastAPI's HTML pointing at them. Build
the app with ``docs_url=None, redoc_url=None`` first. The pages honour ``root_path``
(a service behind a path prefix).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: Where the Swagger UI and ReDoc assets are served.
STATIC_URL = "/static-docs"
ASSETS = Path(fastapi_offline.__file__).parent / "static"


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve the doc pages of ``app`` and their assets without any CDN.

    Args:
        app: The app, built with ``docs_url=None`` and ``redoc_url=None``.
        docs_url: Path of the Swagger UI page.
        redoc_url: Path of the ReDoc page.

    Raises:
        RuntimeError: ``fastapi-offline``'s asset directory is missing (a broken install).
    """
    if not (ASSETS / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"fastapi-offline assets missing under {ASSETS}")
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS), name="static-docs")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
