"""Wiring: `create_app` builds the application; `make_runner` is the runner for production and
tests alike; `serve` runs it until SIGTERM and drains.
(Just over 300 lines: the routes, the services started with the app and the serve loop are
read together, in the order they run.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from router.api import (
    admin,
    admin_models,
    edge,
    embeddings,
    handlers,
    messages,
    openapi,
    responses,
    statuspage,
)
from router.api.auth import KeyRing
from router.api.middleware import make_middleware
from router.api.reload import RELOADER, Reloader
from router.api.state import STATE, RouterState
from router.catalog.entries import Catalog
from router.catalog.facts import Facts
from router.catalog.runner import WarmRunner
from router.config import FleetConfig
from router.fleet.breaker import BreakerPolicy
from router.fleet.health import HealthChecker
from router.fleet.registry import Fleet
from router.keys.limiter import Limiter, LocalLimiter
from router.obs.metrics import Metrics
from router.obs.usage import UsageBook
from router.routing.build import build_slots
from router.routing.scoring import SpeedStats
from router.upstream.client import Upstream
from router.upstream.dispatch import Dispatcher
from router.upstream.outcome import UpstreamError

if TYPE_CHECKING:
    from router.keys.shared import SharedKeys

log = logging.getLogger(__name__)
KEEPALIVE_S = 30.0


def create_app(
    config: FleetConfig,
    *,
    config_path: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> web.Application:
    rng = rng or random.Random()
    breaker = BreakerPolicy(
        config.breaker.failure_threshold,
        config.breaker.base_backoff_s,
        config.breaker.max_backoff_s,
    )
    fleet = Fleet(config.nodes, clock=clock, breaker=breaker, rng=rng)
    metrics = Metrics(CollectorRegistry(auto_describe=True), fleet)
    keys = KeyRing(config.api_keys)
    limiter: Limiter
    usage: UsageBook
    shared = None
    if config.coordination is not None:  # key limits and usage fleet-wide, through Redis
        from router.keys.shared import SharedKeys  # `redis` is an optional extra

        shared = SharedKeys(config.coordination, metrics)
        limiter, usage = shared.limiter, shared.usage
    else:
        limiter, usage = LocalLimiter(clock), UsageBook(metrics.registry)
    catalog = Catalog.from_config(config.models)
    state = RouterState(config, keys, fleet, metrics, clock, rng, limiter, usage, catalog)
    app = web.Application(
        middlewares=[make_middleware(state)], client_max_size=config.server.max_body_bytes
    )
    app[STATE] = state
    if config_path is not None:  # a fleet file to reload on SIGHUP and on change
        app[RELOADER] = Reloader(state, config_path)
    app.cleanup_ctx.append(_services)
    if shared is not None:
        app.cleanup_ctx.append(_shared_keys(shared))
    for prefix in ("", "/v1"):  # SDK users set base_url to the root or to /v1
        app.router.add_get(f"{prefix}/models", handlers.list_models)
        app.router.add_get(prefix + "/models/{model:.+}", handlers.get_model)
        app.router.add_post(f"{prefix}/chat/completions", handlers.chat_completions)
        app.router.add_post(f"{prefix}/completions", handlers.completions)
        app.router.add_post(f"{prefix}/embeddings", embeddings.embeddings)
        app.router.add_post(f"{prefix}/responses", responses.responses)
        # Anthropic's SDKs put /v1 in their paths, so their base URL is the root; a base URL
        # that ends in /v1 reaches /v1/v1/messages, which stays a 404 as at Anthropic.
        app.router.add_post(f"{prefix}/messages", messages.messages)
        app.router.add_post(f"{prefix}/messages/count_tokens", messages.count_tokens)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/openapi.json", openapi.openapi_json)  # open, as /healthz
    app.router.add_get("/admin/nodes", admin.nodes)
    app.router.add_get("/admin/usage", admin.usage)
    app.router.add_post("/admin/nodes/{name}/drain", admin.drain)
    app.router.add_post("/admin/nodes/{name}/undrain", admin.undrain)
    app.router.add_get("/admin/models", admin_models.models)
    app.router.add_post("/admin/models/pull", admin_models.pull)
    app.router.add_post("/admin/models/{model:.+}/load", admin_models.load)
    app.router.add_post("/admin/models/{model:.+}/unload", admin_models.unload)
    if config.metrics.port is None:
        _add_observability_routes(app)
    return app


def _add_observability_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/status", statuspage.status)


def create_metrics_app(state: RouterState) -> web.Application:
    """`/metrics` and `/status` alone, for `metrics.port`: the same state, middleware and rules
    (`metrics.require_key`), on a port that can stay inside the cluster network."""
    app = web.Application(middlewares=[make_middleware(state)])
    app[STATE] = state
    _add_observability_routes(app)
    return app


async def _services(app: web.Application) -> AsyncIterator[None]:
    """The client session, the slot store, the health poller and the fleet-file watcher live
    as long as the app."""
    state = app[STATE]
    config = state.config
    per_node = config.routing.max_connections_per_node
    # Sized from the fleet: aiohttp's default cap of 100 connections would silently queue
    # requests inside the router at high concurrency.
    connector = aiohttp.TCPConnector(
        limit=per_node * len(config.nodes),
        limit_per_host=per_node,
        keepalive_timeout=KEEPALIVE_S,
        ttl_dns_cache=300,
    )
    session = aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    )
    upstream = Upstream(session, config.routing)
    speeds = SpeedStats()
    slots = build_slots(
        config,
        state.fleet,
        speeds,
        state.rng,
        state.metrics,
        state.clock,
        num_ctx=lambda model: state.catalog.resolve(model).num_ctx,
        replica=state.replica,
    )
    await slots.start()
    state.dispatcher = Dispatcher(
        state.fleet,
        upstream,
        state.metrics,
        state.rng,
        state.clock,
        config.routing.max_attempts,
        config.routing.retry_after_s,
        slots,
        speeds,
        config.routing.first_token_timeout_s,
        config.routing.token_gap_timeout_s,
        state.catalog,
    )
    state.health = HealthChecker(
        state.fleet,
        upstream,
        config.health,
        state.metrics,
        failure=UpstreamError,
        clock=state.clock,
    )
    await state.health.check_all()  # ready from the first request
    state.facts = Facts(upstream, failure=UpstreamError, clock=state.clock)
    state.warm = WarmRunner(
        state.fleet,
        upstream,
        slots,
        lambda: state.catalog,
        state.facts,
        failure=UpstreamError,
        clock=state.clock,
        interval_s=lambda: state.config.health.interval_s,
    )
    await state.warm.round()  # min_loaded floors from the start, without waiting a round
    tasks = [
        asyncio.create_task(state.health.run(), name="jarvis-health"),
        asyncio.create_task(state.warm.run(), name="jarvis-warm"),
    ]
    state.upstream = upstream
    reloader = app.get(RELOADER)
    if reloader is not None:
        tasks.append(asyncio.create_task(reloader.watch(), name="jarvis-reload"))
    try:
        yield
    finally:
        for task in reversed(tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await slots.close()  # gives back what this replica still holds
        await session.close()


def _shared_keys(
    shared: SharedKeys,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def run(_: web.Application) -> AsyncIterator[None]:
        await shared.start()
        try:
            yield
        finally:  # cleanup runs in reverse: after the last request, before the slot store
            await shared.close()

    return run


def make_runner(app: web.Application, *, shutdown_grace_s: float) -> web.AppRunner:
    """The runner for `app`; its listener is `edge.start_site` (or any aiohttp site, which
    then has the header limits and keep-alive timeout but not the head timer or the cap)."""
    # handler_cancellation: a client that leaves cancels its handler at once, which closes the
    # upstream request, so the node stops generating for nobody (aiohttp's default is off).
    return web.AppRunner(
        app,
        handler_cancellation=True,
        shutdown_timeout=shutdown_grace_s,
        **edge.handler_kwargs(app[STATE].config.server),
    )


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    on_ready: Callable[[int], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, let requests finish within the grace
    period, cancel the rest, and return. SIGHUP reloads the fleet file (when there is one).
    `reuse_port`: share the port with the other workers of `serve --workers` (`workers`)."""
    config = app[STATE].config
    runner = make_runner(app, shutdown_grace_s=config.server.shutdown_grace_s)
    await runner.setup()
    # Thousands of open streams are thousands of live objects: with the default thresholds
    # the cyclic collector walks them every few hundred allocations and stalls the loop for
    # 100-500 ms (benchmarks S4). Start-up objects are frozen out of its way, and it runs
    # less often; request objects are freed by reference counting anyway.
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    metrics_runner: web.AppRunner | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloader = app.get(RELOADER)
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, reloader.request)
    try:
        await edge.start_site(runner, host, port, reuse_port=reuse_port)
        bound = runner.addresses[0][1] if runner.addresses else port
        scheme = "https" if config.listen.tls else "http"
        log.info("jarvis router listening on %s://%s:%d", scheme, host, bound)
        if config.metrics.port is not None:
            metrics_runner = make_runner(create_metrics_app(app[STATE]), shutdown_grace_s=1.0)
            await metrics_runner.setup()
            await web.TCPSite(
                metrics_runner, host, config.metrics.port, reuse_address=True, reuse_port=reuse_port
            ).start()
            log.info("metrics and status on http://%s:%d", host, metrics_runner.addresses[0][1])
        if on_ready is not None:
            on_ready(bound)
        await stop.wait()
        log.info(
            "shutting down: draining in-flight requests for up to %.0f s",
            config.server.shutdown_grace_s,
        )
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        if metrics_runner is not None:  # scraped until the drain is over
            await metrics_runner.cleanup()
