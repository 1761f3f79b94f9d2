"""The serving benchmark's load generator: raw asyncio streams, pre-encoded HTTP/1.1.

Runs as its own process (``python -m benchmarks._serving_loadgen``), reads its
configuration as JSON on stdin and writes JSON results on stdout. Every request is
encoded once before the clock starts and sent over a pool of keep-alive connections,
so the generator spends a few tens of microseconds of CPU per call and the figures
measure the service, not the client (``httpx`` cost about 2 ms of CPU per call).

Scenarios:

* ``single``: open loop at ``rps`` for ``duration_s``; each call is timed from its
  *scheduled* send time (a call waiting for a free connection counts as late, so
  there is no coordinated omission) and from its actual send.
* ``swap``: ``single`` again while ``POST /v1/models/reload`` is sent at
  ``swap_at_s`` (the benchmark promoted a new champion just before); answers are
  counted by the model version that produced them.
* ``bulk``: ``bulk_items`` requests per call on ``bulk_connections`` closed-loop
  connections for ``duration_s``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_VERSION = re.compile(rb'"model_version":(\d+)')
_TICK = os.sysconf("SC_CLK_TCK")


def encode(path: str, body: bytes, token: str | None = None) -> bytes:
    """One HTTP/1.1 keep-alive POST with a JSON body, as bytes on the wire."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    """A keep-alive HTTP/1.1 connection sending one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        """Connect to ``host:port``."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def call(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request``; return (status code, body)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        """Close the socket."""
        self.writer.close()


def cpu(server_pid: int) -> tuple[float | None, float]:
    """(server process CPU seconds or ``None`` without /proc, this process CPU seconds)."""
    try:
        text = Path(f"/proc/{server_pid}/stat").read_text()
        fields = text.rsplit(")", 1)[1].split()
        server: float | None = (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        server = None
    return server, time.process_time()


def spent(before: tuple[float | None, float], server_pid: int) -> dict[str, float | None]:
    """CPU used since ``before`` by the server and by this process, seconds."""
    after = cpu(server_pid)
    srv = None if before[0] is None or after[0] is None else after[0] - before[0]
    return {"server_cpu_s": srv, "client_cpu_s": after[1] - before[1]}


@dataclass
class OpenLoop:
    """Results of an open-loop phase."""

    lat: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    errors: int = 0
    versions: dict[str, int] = field(default_factory=dict)


async def open_loop(
    host: str,
    port: int,
    requests: list[bytes],
    rps: float,
    duration_s: float,
    connections: int,
    during: tuple[float, bytes] | None = None,
) -> dict[str, Any]:
    """Send ``rps`` calls/s on a schedule over a pool of ``connections``.

    Args:
        host: Server address.
        port: Server port.
        requests: Pre-encoded requests, used round-robin.
        rps: Offered rate, calls/s.
        duration_s: Phase length, seconds.
        connections: Keep-alive connections in the pool.
        during: ``(at_s, request)``: send one extra request at ``at_s`` on its own
            connection (the champion reload).
    """
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(host, port))
    out = OpenLoop()
    total = int(rps * duration_s)
    side: dict[str, Any] = {}
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter() + 0.05
    if during is not None:
        at_s, reload = during
        side_call = _side_call(host, port, (start, at_s), reload, side)
        tasks.append(asyncio.create_task(side_call))
    for i in range(total):
        due = start + i / rps
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        request = requests[i % len(requests)]
        tasks.append(asyncio.create_task(_pooled_call(idle, (host, port), request, due, out)))
    send_s = time.perf_counter() - start
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration_s + 60)
    wall_s = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().close()
    return {
        "sent": total,
        "send_s": send_s,
        "wall_s": wall_s,
        "lat": out.lat,
        "late": out.late,
        "errors": out.errors,
        "versions": out.versions,
        "side": side,
    }


async def _pooled_call(
    idle: asyncio.Queue[Connection],
    address: tuple[str, int],
    request: bytes,
    due: float,
    out: OpenLoop,
) -> None:
    """Send one call on a pooled connection; record its latency, lateness and version.

    ``due`` is when the schedule wanted it sent (``perf_counter`` seconds); lateness is
    measured from it.

    A connection that fails is replaced by a new one; a failure or a non-200 answer
    counts as an error.
    """
    conn = await idle.get()
    t0 = time.perf_counter()
    try:
        status, body = await conn.call(request)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        out.errors += 1
        conn.close()
        idle.put_nowait(await Connection.open(*address))
        return
    t1 = time.perf_counter()
    idle.put_nowait(conn)
    if status != 200:
        out.errors += 1
        return
    out.lat.append(t1 - t0)
    out.late.append(t1 - due)
    m = _VERSION.search(body)
    if m is not None:
        v = m.group(1).decode()
        out.versions[v] = out.versions.get(v, 0) + 1


async def _side_call(
    host: str, port: int, when: tuple[float, float], request: bytes, side: dict[str, Any]
) -> None:
    """Send ``request`` on its own connection ``at_s`` seconds after ``start``.

    Args:
        host: Server address.
        port: Server port.
        when: ``(start, at_s)``: the phase start (``perf_counter`` seconds) and the offset.
        request: The encoded request.
        side: Filled with its ``status``, ``took_s`` and ``at_s`` (seconds after start).
    """
    start, at_s = when
    await asyncio.sleep(max(0.0, start + at_s - time.perf_counter()))
    conn = await Connection.open(host, port)
    t0 = time.perf_counter()
    status, _ = await conn.call(request)
    side.update(status=status, took_s=time.perf_counter() - t0, at_s=t0 - start)
    conn.close()


async def closed_loop(
    host: str, port: int, requests: list[bytes], items: int, duration_s: float, connections: int
) -> dict[str, Any]:
    """``connections`` workers each sending calls back to back for ``duration_s``."""
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration_s

    async def worker(w: int) -> None:
        nonlocal errors
        conn = await Connection.open(host, port)
        i = w
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status, body = await conn.call(requests[i % len(requests)])
            if status == 200 and body.count(b'"model_version"') == items:
                lat.append(time.perf_counter() - t0)
            else:
                errors += 1
            i += connections
        conn.close()

    start = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(worker(w) for w in range(connections))), timeout=duration_s + 60
    )
    wall_s = time.perf_counter() - start
    return {"wall_s": wall_s, "lat": lat, "forecasts": len(lat) * items, "errors": errors}


async def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Warm up, then run the single, swap and bulk phases named in ``cfg``."""
    host, port, pid = cfg["host"], cfg["port"], cfg["server_pid"]
    items: list[dict[str, Any]] = cfg["items"]
    path = "/v1/forecasts"
    single = [encode(path, json.dumps({"requests": [it]}).encode()) for it in items]
    n = cfg["bulk_items"]
    bulk = [
        encode(
            path, json.dumps({"requests": [items[(i + k) % len(items)] for k in range(n)]}).encode()
        )
        for i in range(0, len(items), n)
    ]
    warm = await Connection.open(host, port)
    for i in range(300):
        await warm.call(single[i % len(single)] if i % 3 else bulk[i % len(bulk)])
    warm.close()
    out: dict[str, Any] = {}
    for phase in cfg["phases"]:
        c0 = cpu(pid)
        if phase == "bulk":
            res = await closed_loop(host, port, bulk, n, cfg["duration_s"], cfg["bulk_connections"])
        else:
            during = None
            if phase == "swap":
                reload = encode("/v1/models/reload", b"", cfg.get("token"))
                during = (cfg["swap_at_s"], reload)
            res = await open_loop(
                host, port, single, cfg["rps"], cfg["duration_s"], cfg["connections"], during
            )
        out[phase] = res | spent(c0, pid)
    return out


def main() -> None:
    """Read the config from stdin, run, write the results to stdout."""
    cfg = json.load(sys.stdin)
    import uvloop

    json.dump(uvloop.run(run(cfg)), sys.stdout)


if __name__ == "__main__":
    main()
