"""``tailcast serve``: the prediction API under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from core import Settings


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: settings).")] = None,
) -> None:
    """Serve forecasts, completions, models, health and metrics (OpenAPI at /docs).

    Loads each served model's ``champion`` from the registry at start and polls it.
    """
    import uvicorn

    from serving import create_app

    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )
