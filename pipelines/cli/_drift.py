"""``tailcast drift …``: replay a past period through the drift monitor (and retraining)."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from core import TailcastError
from pipelines.cli._common import JsonOption, console, fail, print_json, progress_bar

if TYPE_CHECKING:
    from pipelines.replay import ReplayRequest, ReplayResult

app = typer.Typer(rich_markup_mode=None, help="Drift monitoring tools.", no_args_is_help=True)


def _when(value: str | None, option: str) -> datetime | None:
    """Parse an ISO-8601 time (UTC when no offset is given)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: {value!r} is not an ISO-8601 time (e.g. 2026-04-11T06:00Z)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _monitor(pairs: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` pairs over the replay's monitor defaults (values parsed as JSON)."""
    import json

    from pipelines.replay import REPLAY_MONITOR

    out = dict(REPLAY_MONITOR)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"--monitor: {pair!r} is not FIELD=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


_ServedModel = Annotated[str, typer.Option("--served-model", help="Served model.")]
_Data = Annotated[
    Path, typer.Option("--data", exists=True, dir_okay=False, help="Records to replay.")
]
_Format = Annotated[str, typer.Option("--format", "-f", help="Format of the files, or 'auto'.")]
_TrainData = Annotated[
    Path | None,
    typer.Option(
        "--train-data",
        exists=True,
        dir_okay=False,
        help="Records to train on (default --data).",
    ),
]
_TrainBefore = Annotated[
    str | None,
    typer.Option(
        "--train-before",
        help="Train on records submitted before this ISO time (required without --train-data).",
    ),
]
_ReplayFrom = Annotated[
    str | None,
    typer.Option(
        "--replay-from",
        help="Replay records submitted from this ISO time (default: --train-before "
        "without --train-data, else the start of --data).",
    ),
]
_Features = Annotated[
    str,
    typer.Option(
        "--features",
        help="static: leave out the runtime features tracking recent endpoint speed; all.",
    ),
]
_Retrain = Annotated[
    bool, typer.Option("--retrain", help="Retrain on alarms and replay on with the new model.")
]
_Trials = Annotated[int, typer.Option("--trials", min=1, help="Initial search trials.")]
_RetrainAfter = Annotated[
    int,
    typer.Option(
        "--retrain-after",
        min=1,
        help="Completions since the alarming model took over that a retraining job "
        "waits for (its calibration data).",
    ),
]
_Policy = Annotated[
    str,
    typer.Option(
        "--policy",
        help="Promotion policy of the alarm-triggered retraining: always | "
        "auto_if_better | manual.",
    ),
]
_Monitor = Annotated[
    list[str] | None,
    typer.Option(
        "--monitor",
        help="A MonitorConfig field, FIELD=VALUE (repeatable), e.g. window=500; "
        "default window=1000 ks_tolerance=0.12.",
    ),
]
_Home = Annotated[
    Path | None,
    typer.Option(
        "--home",
        file_okay=False,
        help="Keep the replay's store and MLflow registry here (default: a temporary "
        "directory, removed afterwards).",
    ),
]
_Adaptive = Annotated[
    bool,
    typer.Option(
        "--adaptive-calibration/--no-adaptive-calibration",
        help="Serve forecasts adjusted by online adaptive conformal offsets per group "
        "and level (coverage is of those; the monitor judges the model's own).",
    ),
]
_Plot = Annotated[
    Path | None,
    typer.Option("--plot", dir_okay=False, help="Write the rolling 0.9 coverage (PNG) here."),
]


@app.command("replay")
def replay_command(
    served_model: _ServedModel,
    data: _Data,
    fmt: _Format = "auto",
    train_data: _TrainData = None,
    train_before: _TrainBefore = None,
    replay_from: _ReplayFrom = None,
    features: _Features = "all",
    retrain: _Retrain = False,
    trials: _Trials = 4,
    retrain_after: _RetrainAfter = 500,
    policy: _Policy = "always",
    monitor: _Monitor = None,
    adaptive_calibration: _Adaptive = True,
    home: _Home = None,
    plot: _Plot = None,
    as_json: JsonOption = False,
) -> None:
    """Train on the past, stream later completions through the monitor, report alarms.

    Uses its own DuckDB store and MLflow registry (never the configured ones).
    """
    from pydantic import ValidationError

    from pipelines.cli._pipeline import _quiet
    from pipelines.replay import ReplayRequest, plot_coverage

    _quiet()
    if features not in ("static", "all"):
        fail(f"--features: {features!r} is not 'static' or 'all'")
    try:
        request = ReplayRequest(
            served_model=served_model,
            data=data,
            fmt=fmt,
            train_data=train_data,
            train_before=_when(train_before, "--train-before"),
            replay_from=_when(replay_from, "--replay-from"),
            features=features,
            retrain=retrain,
            trials=trials,
            retrain_after=retrain_after,
            monitor=_monitor(monitor or []),
            policy=policy,
            adaptive_calibration=adaptive_calibration,
        )
    except ValidationError as exc:
        fail(str(exc))
    result = _replay(request, home, quiet=as_json)
    if plot is not None and result.replayed > 200:
        plot_coverage(result, plot)
    if as_json:
        print_json(result.as_json())
        return
    _print(result)


def _replay(request: ReplayRequest, home: Path | None, *, quiet: bool) -> ReplayResult:
    """Run the replay under a progress bar, in ``home`` or a temporary directory removed after.

    Exits with status 2 (:func:`fail`) when the replay cannot run.
    """
    from pipelines.replay import replay

    root = home or Path(tempfile.mkdtemp(prefix="tailcast-replay-"))
    with progress_bar(hidden=quiet) as bar:
        task = bar.add_task("replay", total=None)
        try:
            return replay(
                request,
                root,
                stage=lambda text: bar.update(task, description=text),
                advance=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except (TailcastError, ValueError, RuntimeError) as exc:
            fail(str(exc))
        finally:
            if home is None:
                shutil.rmtree(root, ignore_errors=True)


def _print(result: ReplayResult) -> None:
    doc: dict[str, Any] = result.as_json()
    table = Table(title=f"drift replay of {result.served_model} ({result.features} features)")
    for col in ("after", "kind", "group", "model", "statistics"):
        table.add_column(col)
    for e in doc["events"]:
        stats = ", ".join(f"{k} {v:.3g}" for k, v in sorted(e["statistics"].items()))
        table.add_row(str(e["after"]), e["kind"], e["group_key"], str(e["model_version"]), stats)
    if doc["events"]:
        console.print(table)
    first = doc["first_alarm_after"]
    console.print(
        f"{doc['replayed']:,} completions replayed; first alarm after "
        f"{'none' if first is None else f'{first:,}'}; {len(doc['retrains'])} retraining job(s)"
    )
    if result.adaptive_calibration:
        console.print("coverage of the served forecasts (adaptive conformal calibration)")
    for name in ("before", "after", "all"):
        cov = doc[f"coverage_{name}"]
        if cov:
            n = doc.get(f"coverage_{name}_n", doc["replayed"])
            levels = "  ".join(f"{lv}: {v:.3f}" for lv, v in cov.items())
            console.print(f"coverage {name} ({n:,} completions)  {levels}")
