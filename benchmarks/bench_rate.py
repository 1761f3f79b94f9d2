"""The hot path's limit: server CPU per single forecast and the highest rate it sustains.

Measures, in one run on one machine, ``tailcast serve`` (a real champion, as in
:mod:`benchmarks.bench_serving`) and the bare HTTP stack it runs on
(:mod:`benchmarks._bare_app`: uvicorn + uvloop + httptools answering a fixed body of
the size of a forecast answer), each driven by the same open-loop generator
(:mod:`benchmarks._serving_loadgen`, :data:`CONNECTIONS` keep-alive connections, one
request per call) on the same two cores:

* server CPU per call at :data:`BASE_RPS` (from the server's ``/proc`` counters);
* a sweep of :data:`RATES`, :data:`STEP_S` each: p99 from each call's scheduled send
  (no coordinated omission), errors, server CPU per call. The *sustained rate* is the
  highest rate at which that rate and every lower one kept p99 <= :data:`P99_BAR_MS`
  with no error; the sweep stops after the second failing rate.

Each server first gets :data:`WARM_S` at the base rate, not measured (the first seconds
of a fresh process's first phase stall once: lazy imports, first allocations).

Bars: tailcast's server CPU per single forecast <= 0.30 ms; its sustained rate >= 2,000
req/s and >= half of the bare stack's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import bench_serving as serving

BASE_RPS = 500
RATES = (1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000, 8000)
STEP_S = 8.0
BASE_S = 10.0
WARM_S = 5.0
CONNECTIONS = 16
P99_BAR_MS = 10.0
CPU_BAR_MS = 0.30


def _phase(
    port: int, pid: int, items: list[dict[str, Any]], rps: float, secs: float
) -> dict[str, Any]:
    """One open-loop phase at ``rps`` for ``secs``: p99 (ms), errors, CPU per call (ms)."""
    cfg = {
        "host": "127.0.0.1",
        "port": port,
        "items": items,
        "phases": ["single"],
        "rps": rps,
        "duration_s": secs,
        "connections": CONNECTIONS,
        "bulk_items": 8,
        "server_pid": pid,
    }
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks._serving_loadgen"],
        input=json.dumps(cfg).encode(),
        capture_output=True,
        timeout=secs + 240,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr.decode()[-4000:]}")
    res = json.loads(out.stdout)["single"]
    calls = max(1, len(res["lat"]))
    return {
        "rps": rps,
        "calls": len(res["lat"]),
        "errors": res["errors"],
        "p99_ms": serving._quantile(res["late"], 0.99) * 1e3 if res["late"] else float("inf"),
        "server_ms": (res["server_cpu_s"] or 0.0) * 1e3 / calls,
        "client_ms": res["client_cpu_s"] * 1e3 / calls,
    }


def _sweep(port: int, pid: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The base phase and the rate sweep against one server (after a warm-up phase)."""
    _phase(port, pid, items, BASE_RPS, WARM_S)  # first-phase effects: not measured
    base = _phase(port, pid, items, BASE_RPS, BASE_S)
    steps, failed = [], 0
    for rps in RATES:
        step = _phase(port, pid, items, rps, STEP_S)
        step["ok"] = step["errors"] == 0 and step["p99_ms"] <= P99_BAR_MS
        steps.append(step)
        failed += not step["ok"]
        if failed == 2:
            break
    sustained = 0
    for step in steps:
        if not step["ok"]:
            break
        sustained = step["rps"]
    return {"base": base, "steps": steps, "sustained": sustained}


def _answer_size(port: int, item: dict[str, Any]) -> int:
    """Bytes of tailcast's answer to one single forecast."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/forecasts",
        data=json.dumps({"requests": [item]}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return len(answer.read())


def _bare(items: list[dict[str, Any]], size: int, log: Path) -> dict[str, Any]:
    """The sweep against :mod:`benchmarks._bare_app` answering ``size`` bytes."""
    port = serving._free_port()
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._bare_app", str(port), str(size)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        serving._wait_ready(f"http://127.0.0.1:{port}", proc, log)
        return _sweep(port, proc.pid, items)
    finally:
        serving._stop(proc)


def measure(
    home: Path, items: list[dict[str, Any]], extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Both sweeps, tailcast first (its answer size sets the bare app's).

    ``extra_env`` adds ``TAILCAST_*`` settings to the service's environment.
    """
    proc, port = serving.start_service(home, home / "serve.log", 3600, extra_env)
    try:
        serving._wait_ready(f"http://127.0.0.1:{port}", proc, home / "serve.log")
        size = _answer_size(port, items[0])
        tailcast = _sweep(port, proc.pid, items)
    finally:
        serving._stop(proc)
    return {"size": size, "tailcast": tailcast, "bare": _bare(items, size, home / "bare.log")}


def run() -> str:
    """Run the benchmark; return the Markdown body for BENCHMARKS.md."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        items = serving._prepare(home)
        res = measure(home, items)
    return report(res)


def _rows(name: str, sweep: dict[str, Any]) -> list[str]:
    return [
        f"| {name} | {s['rps']:,} | {s['calls']:,} | {s['errors']} | {s['p99_ms']:.2f} | "
        f"{s['server_ms']:.3f} | {s['client_ms']:.3f} | {'yes' if s.get('ok', True) else 'no'} |"
        for s in [sweep["base"], *sweep["steps"]]
    ]


def report(res: dict[str, Any]) -> str:
    """The Markdown body: one row per phase, then the bar lines."""
    t, b = res["tailcast"], res["bare"]
    cpu = t["base"]["server_ms"]
    ratio = t["sustained"] / b["sustained"] if b["sustained"] else 0.0
    lines = [
        f"`tailcast serve` (a real champion, as in *serving*) and the bare stack "
        f"(uvicorn + uvloop + httptools answering a fixed {res['size']:,}-byte body, the "
        "size of tailcast's answer), each under the same open-loop generator "
        f"({CONNECTIONS} keep-alive connections, one request per call) on the same "
        f"{os.cpu_count()} cores; {BASE_S:.0f} s at {BASE_RPS} req/s, then {STEP_S:.0f} s per "
        f"rate. p99 from each call's scheduled send. Load average at the end: "
        f"{os.getloadavg()[0]:.2f}.",
        "",
        "| server | offered req/s | answered | errors | p99 ms | server CPU ms/call "
        "| generator CPU ms/call | p99 <= 10 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *_rows("tailcast", t),
        *_rows("bare", b),
        "",
        f"- server CPU per single forecast at {BASE_RPS} req/s: **{cpu:.3f} ms** (bar <= "
        f"{CPU_BAR_MS:.2f}; the bare stack: {b['base']['server_ms']:.3f} ms): "
        f"{'met' if cpu <= CPU_BAR_MS else 'NOT met'}",
        f"- sustained rate: **{t['sustained']:,} req/s** (bar >= 2,000): "
        f"{'met' if t['sustained'] >= 2000 else 'NOT met'}",
        f"- of the bare stack's {b['sustained']:,} req/s: **{ratio:.2f}** (bar >= 0.5): "
        f"{'met' if ratio >= 0.5 else 'NOT met'}",
    ]
    return "\n".join(lines)
