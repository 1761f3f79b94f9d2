"""The soak benchmark's load generator: forecasts and completions together, for minutes.

Runs as its own process (``python -m benchmarks._soak_loadgen``), reads its configuration
as JSON on stdin and writes JSON results on stdout. Single forecasts are sent open loop
at ``rps`` over a pool of keep-alive connections (timed from their scheduled send time,
so a stall shows as lateness), completions one per call when each completes (its
``_done_s``) on a pool of their own, each with a new ``request_id``; the server's
resident memory is read from ``/proc`` every ``rss_every_s`` seconds. Every answer is
kept with its time since the start, so the caller can cut the run into minutes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._serving_loadgen import Connection, encode


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB (None without /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def completions(records: list[dict[str, Any]], token: str, t0: datetime) -> list[bytes]:
    """One encoded ``POST /v1/completions`` call per record, ids unique.

    Posted as a gateway posts them, once they have finished: record ``i`` completes at
    ``t0 + _done_s`` (its scheduled send is never before it) and was submitted
    ``latency_s`` earlier. Stamping the send time as the submission instead would put
    every completion in the future of the store, so the endpoint features of the
    stream (over completions finished before a submission) would see only the short
    ones: a drift the champion's training timeline never had.
    """
    out = []
    for i, record in enumerate(records):
        fields = {k: v for k, v in record.items() if k != "_done_s"}
        done = t0 + timedelta(seconds=float(record["_done_s"]))
        stamped = {
            **fields,
            "request_id": f"soak-{i}",
            "submitted_at": (done - timedelta(seconds=float(record["latency_s"]))).isoformat(),
        }
        out.append(
            encode("/v1/completions", json.dumps({"completions": [stamped]}).encode(), token)
        )
    return out


async def stream(
    host: str,
    port: int,
    requests: list[bytes],
    rps: float,
    duration_s: float,
    connections: int,
    start: float,
    offsets: list[float] | None = None,
) -> dict[str, Any]:
    """Open loop: ``rps`` calls/s from ``start`` (or call ``i`` at ``start + offsets[i]``).

    Returns (time since start, seconds late) per answer, and the errors.
    """
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(host, port))
    answers: list[tuple[float, float]] = []
    errors: list[tuple[float, str]] = []

    async def one(i: int, due: float) -> None:
        conn = await idle.get()
        try:
            status, _ = await conn.call(requests[i % len(requests)])
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors.append((time.perf_counter() - start, type(exc).__name__))
            conn.close()
            idle.put_nowait(await Connection.open(host, port))
            return
        done = time.perf_counter()
        idle.put_nowait(conn)
        if status != 200:
            errors.append((done - start, f"HTTP {status}"))
            return
        answers.append((done - start, done - due))

    tasks: list[asyncio.Task[None]] = []
    due_s = offsets if offsets is not None else [i / rps for i in range(int(rps * duration_s))]
    for i, offset in enumerate(due_s):
        due = start + offset
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    _, late = await asyncio.wait(tasks, timeout=120)
    for task in late:  # still unanswered two minutes after the last send: an error
        task.cancel()
        errors.append((time.perf_counter() - start, "no answer within 120 s"))
    while not idle.empty():
        idle.get_nowait().close()
    return {"answers": answers, "errors": errors}


async def sample_rss(pid: int, every_s: float, until: float, start: float) -> list[list[float]]:
    """(time since start, MiB) every ``every_s`` seconds until ``until``."""
    out: list[list[float]] = []
    while time.perf_counter() < until:
        mb = rss_mb(pid)
        if mb is not None:
            out.append([time.perf_counter() - start, mb])
        await asyncio.sleep(every_s)
    return out


async def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Warm up, then forecasts and completions side by side for ``duration_s``."""
    host, port, pid, duration = cfg["host"], cfg["port"], cfg["server_pid"], cfg["duration_s"]
    items: list[dict[str, Any]] = cfg["items"]
    forecasts = [encode("/v1/forecasts", json.dumps({"requests": [it]}).encode()) for it in items]
    warm = await Connection.open(host, port)
    for i in range(300):
        await warm.call(forecasts[i % len(forecasts)])
    warm.close()
    done = completions(cfg["records"], cfg["token"], datetime.now(UTC))
    offsets = [float(r["_done_s"]) for r in cfg["records"]]
    start = time.perf_counter() + 0.1
    f, c, rss = await asyncio.gather(
        stream(host, port, forecasts, cfg["rps"], duration, cfg["connections"], start),
        stream(
            host,
            port,
            done,
            cfg["completions_rps"],
            duration,
            cfg["completion_connections"],
            start,
            offsets,
        ),
        sample_rss(pid, cfg["rss_every_s"], start + duration, start),
    )
    return {"forecasts": f, "completions": c, "rss": rss}


def main() -> None:
    """Read the config from stdin, run, write the results to stdout."""
    cfg = json.load(sys.stdin)
    import uvloop

    json.dump(uvloop.run(run(cfg)), sys.stdout)


if __name__ == "__main__":
    main()
