"""A real redis-server per test, and several routers in front of the same emulated nodes.

redis-server runs on a free loopback port with its own temp dir and no persistence; where it is
missing a test fails or skips with the line saying what to run (tests/tools.py). Teardown checks
what the shared fixtures check for one router: every slot comes back, on every router and node.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from router.api.app import create_app, make_runner
from router.api.auth import digest, new_key
from router.config import (
    ApiKeyConfig,
    CoordinationConfig,
    FleetConfig,
    HealthConfig,
    ModelConfig,
    NodeConfig,
    RoutingConfig,
)
from router.emulator import EmulatedNode, EmulatorConfig
from tests import tools
from tests.conftest import Router, free_port, scrape, scrape_until, wait_until


@dataclass
class RedisServer:
    dir: Path
    port: int = 0
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start (or restart on the same port): empty, like a Redis that lost its data."""
        assert self.process is None
        self.port = self.port or free_port()
        self.process = await asyncio.create_subprocess_exec(
            tools.require("redis-server"),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
            *("--save", "", "--appendonly", "no", "--loglevel", "warning"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = asyncio.get_running_loop().time() + 5.0
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if self.process.returncode is not None:
                    raise RuntimeError(f"redis-server exited on port {self.port}") from None
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.01)
                continue
            writer.close()
            await writer.wait_closed()
            return

    def pause(self) -> None:
        """Like a hung server: connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    async def kill(self) -> None:
        """Like a crash: SIGKILL, every connection reset."""
        if self.process is not None:
            if self.process.returncode is None:
                self.process.kill()
            await self.process.wait()
            self.process = None


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    tools.require("redis-server")
    server = RedisServer(tmp_path)
    for _ in range(3):  # another process may take the free port before redis-server binds it
        try:
            await server.start()
            break
        except RuntimeError:
            await server.kill()
            server.port = 0
    else:
        pytest.fail("could not start redis-server")
    try:
        yield server
    finally:
        await server.kill()


SLOW = EmulatorConfig(models=("llama3",), tokens_per_second=200, default_tokens=20)
ReplicaFactory = Callable[..., Awaitable[list[Router]]]


@pytest.fixture
async def make_replicas() -> AsyncIterator[ReplicaFactory]:
    """`await make_replicas(2, {"a": SLOW, "b": SLOW}, max_concurrency=2, redis_url=...)`:
    routers in front of the same nodes; `redis_url=None` leaves coordination off. Their key
    ("test") is an admin key; `api_keys` adds others, `routing` replaces the defaults."""
    routers: list[Router] = []
    nodes: list[EmulatedNode] = []

    async def factory(
        replicas: int,
        specs: Mapping[str, EmulatorConfig],
        *,
        max_concurrency: int = 2,
        redis_url: str | None,
        models: tuple[ModelConfig, ...] = (),
        routing: RoutingConfig | None = None,
        api_keys: Sequence[ApiKeyConfig] = (),
        **coordination: Any,
    ) -> list[Router]:
        emulated: dict[str, EmulatedNode] = {}
        for name, spec in specs.items():
            node = EmulatedNode(spec, name=name)
            await node.start()
            nodes.append(node)
            emulated[name] = node
        key = new_key()
        config = FleetConfig(
            nodes=tuple(NodeConfig(n, e.url, max_concurrency) for n, e in emulated.items()),
            api_keys=(ApiKeyConfig("test", digest(key), admin=True), *api_keys),
            # Lenient: a busy test process must not make a node look down mid-test.
            health=HealthConfig(interval_s=1.0, timeout_s=1.0, refresh_min_interval_s=0.0),
            routing=replace(
                routing or RoutingConfig(), connect_timeout_s=1.0, request_timeout_s=20.0
            ),
            models=models,
        )
        if redis_url is not None:
            config = replace(
                config,
                coordination=CoordinationConfig(redis_url=redis_url, **coordination),
            )
        made = []
        for i in range(replicas):
            app = create_app(config, rng=random.Random(i))
            runner = make_runner(app, shutdown_grace_s=2.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            router = Router(url, key, app, runner, emulated, config)
            routers.append(router)
            made.append(router)
        return made

    def idle() -> bool:
        routers_busy = any(any(r.router_in_flight().values()) for r in routers)
        return not routers_busy and not any(n.stats.in_flight for n in nodes)

    yield factory

    try:
        for router in routers:
            for client in router.clients:
                await client.close()
        await wait_until(idle)  # a lease that leaks would starve a node forever
    finally:
        for router in routers:
            await router.runner.cleanup()
        for node in nodes:
            await node.stop()


async def sample(router: Router, name: str, **labels: str) -> float:
    """A sample from the router's own /metrics; 0 for a series never written yet."""
    async with aiohttp.ClientSession() as http:
        value = (await scrape(http, router.url)).value(name, **labels)
    return 0.0 if value is None else value


async def wait_sharing(router: Router, timeout_s: float = 3.0) -> None:
    """Until the router's /metrics says it shares slots through Redis."""
    async with aiohttp.ClientSession() as http:
        await scrape_until(
            http, router.url, lambda s: s.value("jarvis_coordination_up") == 1, timeout_s
        )
