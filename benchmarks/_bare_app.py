"""The limit of the stack: a bare ASGI app answering every request with a fixed body.

``python -m benchmarks._bare_app PORT BODY_BYTES`` serves it with uvicorn exactly as
``tailcast serve`` runs (uvloop, httptools, no access log, one worker), so the rate
benchmark (:mod:`benchmarks.bench_rate`) compares tailcast against the HTTP stack alone:
the request body is read in full and a JSON body of ``BODY_BYTES`` bytes answered,
with no parsing, validation or model.
"""

from __future__ import annotations

import sys

from starlette.types import ASGIApp, Receive, Scope, Send


def make_app(size: int) -> ASGIApp:
    """An ASGI app answering ``size`` bytes of JSON to every HTTP request.

    >>> import asyncio
    >>> sent = []
    >>> async def receive(): return {"type": "http.request", "body": b"{}"}
    >>> async def send(message): sent.append(message)
    >>> asyncio.run(make_app(20)({"type": "http"}, receive, send))
    >>> len(sent[1]["body"]), sent[0]["status"]
    (20, 200)
    """
    body = b'{"x":"' + b"a" * max(0, size - 8) + b'"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    """Serve :func:`make_app` on 127.0.0.1 at ``argv[1]`` with a body of ``argv[2]`` bytes."""
    import uvicorn

    port, size = int(sys.argv[1]), int(sys.argv[2])
    uvicorn.run(
        make_app(size),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
