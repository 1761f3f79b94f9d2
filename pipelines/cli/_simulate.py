"""``tailcast simulate``: replay a real trace through a router and a scaler.

The command parses its options into a :class:`pipelines.simulate.SimulationRequest`,
runs :func:`pipelines.simulate.run` under a progress bar and renders the
:class:`pipelines.simulate.SimulationResult` (a table, or ``--json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import TaskID
from rich.table import Table

from core import Settings, TailcastError
from pipelines.cli import _simulate_capacity as capacity
from pipelines.cli._common import JsonOption, console, fail, print_json, progress_bar

if TYPE_CHECKING:
    from pipelines.simulate import SimulationRequest, SimulationResult

ROUTER_NAMES = (
    "random",
    "round_robin",
    "po2",
    "least_loaded",
    "predicted_mean",
    "tail_aware",
    "oracle",
)
SCALER_NAMES = ("none", "utilization", "forecast")
PERCENTILE_MODES = ("shared", "independent")
ARRIVAL_MODELS = ("auto", "poisson", "renewal")
"""Names the CLI checks before importing the policies (numpy-free start; a test keeps them
equal to ``scheduler_hooks``' own)."""

_O = typer.Option
Trace = Annotated[Path, _O("--trace", exists=True, dir_okay=False, help="Trace file to replay.")]
Cluster = Annotated[str, _O("--cluster", help="Replicas per device type, e.g. a100:4,h100:2.")]
Fmt = Annotated[str, _O("--format", "-f", help="azure, mooncake, minisweagent or auto.")]
Router = Annotated[str, _O("--router", help="Routing policy.")]
Scaler = Annotated[str, _O("--scaler", help="Scaling policy.")]
Load = Annotated[float, _O("--load", min=0.01, help="Offered load as a fraction of capacity.")]
Seed = Annotated[int, _O("--seed", help="Seed of every random choice.")]
Slots = Annotated[int, _O("--slots", help="Requests a replica serves at once (1,2,4,...,64).")]
Slo = Annotated[
    float | None, _O("--slo", help="Latency SLO, s (default 5 x median fastest service time).")
]
Quantile = Annotated[float, _O("--quantile", help="Level tail_aware minimises.")]
Percentiles = Annotated[
    str,
    _O(
        "--percentiles",
        help="tail_aware's draws: shared (one percentile per draw for every request) "
        "or independent.",
    ),
]
Arrivals = Annotated[
    str,
    _O(
        "--arrivals",
        help="The forecast scaler's arrival model: poisson (bursts at exponential gaps), "
        "renewal (gaps resampled from recent ones; for regular bursts) or auto "
        "(renewal while recent gaps are regular).",
    ),
]
Samples = Annotated[int, _O("--samples", min=16, help="Monte Carlo draws.")]
Limit = Annotated[int | None, _O("--limit", min=1, help="Simulate at most this many requests.")]
TrainFraction = Annotated[
    float, _O("--train-fraction", help="Leading share of a trace that trains.")
]
Trials = Annotated[int, _O("--trials", min=1, help="Optuna trials.")]
ColdStart = Annotated[float, _O("--cold-start", help="Scale-up delay, s.")]
MaxReplicas = Annotated[int | None, _O("--max-replicas", help="Replica budget of scalers.")]
Plot = Annotated[Path | None, _O("--plot", help="Latency-over-time PNG (default under home).")]
ScaleDevice = Annotated[
    str | None,
    _O("--scale-device", help="Device type scale-ups add (default: cluster's first)."),
]
LossAt = Annotated[
    float | None,
    _O("--loss-at", help="Simulated second capacity is lost at (default: no loss)."),
]
LossFraction = Annotated[
    float,
    _O(
        "--loss-fraction",
        help="In (0, 1): degrade: speed lost by the pool; slow/remove: replicas hit.",
    ),
]
LossKind = Annotated[
    str, _O("--loss-kind", help="degrade, slow (hit replicas at 25% speed) or remove.")
]
LossDevices = Annotated[
    str | None, _O("--loss-devices", help="Device types a degrade hits, e.g. a100 (all).")
]
DriftRetrain = Annotated[
    bool,
    _O(
        "--drift-retrain/--no-drift-retrain",
        help="Recalibrate forecasts when the drift monitor alarms.",
    ),
]
DeviceData = Annotated[
    Path | None,
    _O(
        "--device-data",
        envvar="TAILCAST_DEVICE_DATA",
        dir_okay=False,
        help="splitwise_perf_model.csv of the device measurements (default: the public "
        "data beside a source checkout).",
    ),
]


def _check(name: str, value: str, known: tuple[str, ...], what: str = "policy") -> None:
    if value not in known:
        fail(f"--{name} {value!r} is not a known {what}; choose one of: {', '.join(known)}")


def simulate(
    trace: Trace,
    cluster: Cluster,
    fmt: Fmt = "auto",
    router: Router = "tail_aware",
    scaler: Scaler = "none",
    load: Load = 0.8,
    seed: Seed = 0,
    slots: Slots = 1,
    slo: Slo = None,
    quantile: Quantile = 0.95,
    percentiles: Percentiles = "shared",
    arrivals: Arrivals = "auto",
    samples: Samples = 256,
    limit: Limit = None,
    train_fraction: TrainFraction = 0.4,
    trials: Trials = 2,
    cold_start: ColdStart = 60.0,
    max_replicas: MaxReplicas = None,
    plot: Plot = None,
    scale_device: ScaleDevice = None,
    loss_at: LossAt = None,
    loss_fraction: LossFraction = 0.71,
    loss_kind: LossKind = "degrade",
    loss_devices: LossDevices = None,
    drift_retrain: DriftRetrain = False,
    device_data: DeviceData = None,
    as_json: JsonOption = False,
) -> None:
    """Replay a trace on a simulated heterogeneous cluster; print latency, SLO, cost.

    A predictor of per-request service time is trained on the part of the trace that
    is not replayed (cached under the tailcast home) when a policy needs forecasts.
    With --loss-at or --drift-retrain a drift monitor watches the completions; with a
    loss, the P90 before it and late after it are printed too.
    """
    _check("router", router, ROUTER_NAMES)
    _check("scaler", scaler, SCALER_NAMES)
    _check("percentiles", percentiles, PERCENTILE_MODES, "mode")
    _check("arrivals", arrivals, ARRIVAL_MODELS, "arrival model")
    from pipelines import simulate as job

    loss = job.LossSpec(
        at_s=loss_at,
        fraction=loss_fraction,
        kind=loss_kind,
        devices=loss_devices,
        retrain=drift_retrain,
    )
    request = job.SimulationRequest(
        trace=trace,
        cluster=cluster,
        fmt=fmt,
        router=router,
        scaler=scaler,
        load=load,
        seed=seed,
        slots=slots,
        slo_s=slo,
        quantile=quantile,
        percentiles=percentiles,
        arrivals=arrivals,
        samples=samples,
        limit=limit,
        train_fraction=train_fraction,
        trials=trials,
        cold_start_s=cold_start,
        max_replicas=max_replicas,
        scale_device=scale_device,
        loss=loss,
        device_data=device_data,
        home=Settings().home,
        plot=plot,
    )
    _render(_run(request, hidden=as_json), as_json=as_json)


def _run(request: SimulationRequest, *, hidden: bool) -> SimulationResult:
    """Run the job under a progress bar (one task per phase); failures exit with 2."""
    from pipelines import simulate as job

    with progress_bar(hidden=hidden) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)

        try:
            return job.run(request, progress=progress)
        except (TailcastError, ValueError, RuntimeError, OSError) as exc:
            fail(str(exc))


def _render(outcome: SimulationResult, *, as_json: bool) -> None:
    """Print the result: the JSON document, or a table (and the capacity-loss table)."""
    if as_json:
        print_json(outcome.as_json())
        return
    req, summary = outcome.request, outcome.summary
    title = f"{req.trace.name}: {req.router} / {req.scaler}, load {req.load:g}, {req.cluster}"
    table = Table(title=title)
    for col in ("P50 s", "P95 s", "P99 s", "SLO s", "SLO attainment", "replica-seconds"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{summary['p50']:.2f}",
        f"{summary['p95']:.2f}",
        f"{summary['p99']:.2f}",
        f"{summary['slo_s']:.1f}",
        f"{summary['slo_attainment']:.1%}",
        f"{summary['replica_seconds']:,.0f}",
    )
    console.print(table)
    if outcome.extra:
        capacity.print_table(outcome.extra)
    console.print(f"{int(summary['requests']):,} requests; latency plot: {outcome.plot}")
