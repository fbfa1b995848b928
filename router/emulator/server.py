"""The emulated node's aiohttp app: routes, the small GET handlers, the runner.

404/405 are plain text like gin's (`404 page not found`, `405 method not allowed`): each known
path gets a trailing `*` route answering 405, and a final catch-all answers 404, so no middleware
sits on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from .config import EmulatorConfig, Faults, NodeStats
from .embed import handle_embed
from .generation import STATE, handle, json_response
from .lines import error_body
from .models import handle_delete, handle_pull, handle_show
from .parse import CHAT, GENERATE
from .state import NodeState

logger = logging.getLogger(__name__)

GRACE_S = 1.0  # graceful stop: how long running generations may finish before cancellation
CLIENT_MAX_SIZE = 128 * 1024 * 1024  # images ride in request bodies
TAGS_FAILURE = "emulated failure listing models"
_TEXT_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}
_GIN_ERROR_HEADERS = {"Content-Type": "text/plain"}
_ROOT = b"Ollama is running"
_NOT_FOUND = b"404 page not found"
_NOT_ALLOWED = b"405 method not allowed"


async def _root(request: web.Request) -> web.Response:
    request.app[STATE].stats.requests["/"] += 1
    return web.Response(body=_ROOT, headers=_TEXT_HEADERS)


async def _version(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.requests["/api/version"] += 1
    return json_response(state.version_body)


async def _tags(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.requests["/api/tags"] += 1
    if state.faults.tags_fail:
        return json_response(error_body(TAGS_FAILURE), 500)
    return json_response(state.tags_body)


async def _ps(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.requests["/api/ps"] += 1
    return json_response(state.ps_body())


async def _chat(request: web.Request) -> web.StreamResponse:
    return await handle(request, CHAT)


async def _generate(request: web.Request) -> web.StreamResponse:
    return await handle(request, GENERATE)


async def _not_allowed(request: web.Request) -> web.Response:
    request.app[STATE].stats.requests[request.path] += 1
    return web.Response(status=405, body=_NOT_ALLOWED, headers=_GIN_ERROR_HEADERS)


async def _not_found(request: web.Request) -> web.Response:
    request.app[STATE].stats.requests[request.path] += 1
    return web.Response(status=404, body=_NOT_FOUND, headers=_GIN_ERROR_HEADERS)


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    yield
    # Anything still running at cleanup lost its grace period: cancel and wait briefly.
    tasks = set(app[STATE].tasks)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=GRACE_S)


async def _on_shutdown(app: web.Application) -> None:
    # Lets hung handlers ("hang" fault) end instead of holding the graceful stop.
    app[STATE].closing.set()


def create_emulator_app(
    config: EmulatorConfig, *, faults: Faults | None = None, stats: NodeStats | None = None
) -> web.Application:
    """One emulated Ollama node; pass your own `faults`/`stats` to flip and observe it."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    state = NodeState(config, faults or Faults(), stats or NodeStats())
    app[STATE] = state
    app.cleanup_ctx.append(_lifetime)
    app.on_shutdown.append(_on_shutdown)
    routes: list[tuple[str, Any, bool]] = [
        ("/", _root, True),
        ("/api/version", _version, True),
        ("/api/tags", _tags, True),
        ("/api/ps", _ps, False),
    ]
    for path, handler, allow_head in routes:
        app.router.add_get(path, handler, allow_head=allow_head)
        app.router.add_route("*", path, _not_allowed)
    posts: list[tuple[str, Any]] = [
        ("/api/chat", _chat),
        ("/api/generate", _generate),
        ("/api/embed", handle_embed),
        ("/api/show", handle_show),
        ("/api/pull", handle_pull),
    ]
    for path, handler in posts:
        app.router.add_post(path, handler)
        app.router.add_route("*", path, _not_allowed)
    app.router.add_delete("/api/delete", handle_delete)
    app.router.add_route("*", "/api/delete", _not_allowed)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner every emulator uses (tests, demo, benchmarks).

    `handler_cancellation=True`: like Ollama (request context → runner), a client that leaves
    stops its generation, and a hung handler frees its slot. No access log: it costs per request.
    """
    return web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=GRACE_S)


async def serve_forever(
    config: EmulatorConfig, host: str, port: int, *, faults: Faults | None = None
) -> None:
    """Serve one node until cancelled or SIGTERM/SIGINT (`jarvis-router emulate`); bodies are
    not recorded."""
    app = create_emulator_app(config, faults=faults, stats=NodeStats(record_bodies=False))
    runner = make_runner(app)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        logger.info("emulated Ollama node listening on %s", site.name)
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
