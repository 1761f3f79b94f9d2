"""``tailcast models …``: list registered predictors and move their aliases."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from core import Settings, TailcastError
from pipelines.cli._common import JsonOption, console, fail, print_json

if TYPE_CHECKING:
    from registry import MLflowRegistry, ModelVersion

app = typer.Typer(
    rich_markup_mode=None,
    help="List registered predictors and promote versions (MLflow model registry).",
    no_args_is_help=True,
)

ServedModelFilter = Annotated[
    str | None,
    typer.Option("--served-model", help="Only this served model's versions."),
]


def _registry() -> MLflowRegistry:
    """The registry at the configured tracking URI (MLflow imported only here)."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow.exceptions import MlflowException

    from registry import MLflowRegistry

    uri = Settings().mlflow_tracking_uri or ""
    try:
        return MLflowRegistry(uri)
    except (MlflowException, OSError) as exc:
        fail(f"cannot open the MLflow registry at {uri}: {exc}")


def _row(version: ModelVersion) -> dict[str, object]:
    return {
        "served_model": version.name.removeprefix("tailcast-"),
        **version.model_dump(mode="json"),
    }


@app.command("list")
def list_models(served_model: ServedModelFilter = None, as_json: JsonOption = False) -> None:
    """List registered versions with their aliases and held-out mean pinball loss."""
    from mlflow.exceptions import MlflowException

    registry = _registry()
    try:
        versions = registry.list_versions(served_model)
    except (TailcastError, MlflowException) as exc:
        fail(f"cannot list the registry at {registry.tracking_uri}: {exc}")
    if as_json:
        print_json({"tracking_uri": registry.tracking_uri, "versions": [_row(v) for v in versions]})
        return
    if not versions:
        scope = f" for served model {served_model!r}" if served_model else ""
        console.print(f"no registered versions{scope} in {registry.tracking_uri}")
        return
    console.print(_table(registry.tracking_uri, versions))


def _table(tracking_uri: str, versions: list[ModelVersion]) -> Table:
    """The versions as a table that fits 80 columns.

    Long served-model names and alias lists fold; the version, the creation time (UTC,
    to the minute) and the loss never shrink.
    """
    table = Table(
        title=f"registered predictors ({tracking_uri})",
        title_justify="left",
        caption="pinball: held-out mean pinball loss (s)",
        caption_justify="left",
    )
    table.add_column("served model", overflow="fold", ratio=1)
    table.add_column("v", justify="right", no_wrap=True)
    table.add_column("aliases", overflow="fold", ratio=1)
    table.add_column("created UTC", no_wrap=True, min_width=16)
    table.add_column("pinball", justify="right", no_wrap=True, min_width=7)
    for v in versions:
        table.add_row(
            v.name.removeprefix("tailcast-"),
            str(v.version),
            ", ".join(v.aliases) or "-",
            f"{v.created_at:%Y-%m-%d %H:%M}",
            "-" if v.mean_pinball is None else f"{v.mean_pinball:.4f}",
        )
    return table


@app.command("promote")
def promote(
    served_model: Annotated[str, typer.Option("--served-model", help="Served model.")],
    version: Annotated[int, typer.Option("--version", min=1, help="Version to promote.")],
    alias: Annotated[str, typer.Option(help="Alias to point at the version.")] = "champion",
    as_json: JsonOption = False,
) -> None:
    """Point an alias (default ``champion``) at a version; serving follows the alias."""
    from mlflow.exceptions import MlflowException

    registry = _registry()
    try:
        before = registry.alias_version(served_model, alias)
        promoted = registry.promote(served_model, version, alias)
    except (TailcastError, MlflowException) as exc:
        fail(str(exc))
    previous = None if before is None else before.version
    if as_json:
        print_json({"alias": alias, "previous_version": previous, **_row(promoted)})
        return
    was = "unset" if previous is None else f"v{previous}"
    console.print(f"{promoted.name} v{promoted.version} is now {alias!r} (was {was})")
