"""The "Python floor": a bare aiohttp pass-through to one node, with no translation.

It forwards the request body to the same path on the node and relays the answer chunk by chunk
(streams) or whole (non-streamed). No auth, no parsing, no logging, no metrics: every benchmark
run shows it next to the router, so the table says how much of the gap to direct access is
Python + aiohttp and how much is the router's own work.

    python -m benchmarks.floor --port 8081 --upstream http://127.0.0.1:11434
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from benchmarks.node import run_fast

UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)
_HOP = ("Content-Type",)


async def _session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        app[SESSION] = session
        yield


async def relay(request: web.Request) -> web.StreamResponse:
    session, url = request.app[SESSION], request.app[UPSTREAM] + request.path
    body = await request.read()
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as up:
        headers = {k: up.headers[k] for k in _HOP if k in up.headers}
        if up.headers.get("Transfer-Encoding") != "chunked":
            return web.Response(status=up.status, body=await up.read(), headers=headers)
        response = web.StreamResponse(status=up.status, headers=headers)
        await response.prepare(request)
        async for chunk in up.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/api/{tail:.*}", relay)
    return app


async def serve(upstream: str, port: int) -> None:
    runner = web.AppRunner(create_app(upstream), access_log=None, handler_cancellation=True)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.floor")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="the node's base URL")
    args = p.parse_args()
    run_fast(serve(args.upstream, args.port))


if __name__ == "__main__":
    main()
