"""Shared fixtures: emulated Ollama nodes, the real router on a real socket, SDK clients.

The router runs through production's own runner (`make_runner`) on 127.0.0.1 port 0; nodes are
`EmulatedNode`s on their own ports. After every test, every node's in-flight count must be 0
on both sides (router leases and the emulator's own count): a stuck slot fails the test.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from openai import AsyncOpenAI
from prometheus_client.parser import text_string_to_metric_families

from router.api.app import create_app, make_runner
from router.api.auth import digest, new_key
from router.api.edge import start_site
from router.api.state import STATE, RouterState
from router.config import (
    ApiKeyConfig,
    FleetConfig,
    HealthConfig,
    NodeConfig,
    RoutingConfig,
)
from router.emulator import EmulatedNode, EmulatorConfig


@dataclass
class Router:
    url: str
    key: str
    app: web.Application
    runner: web.AppRunner
    nodes: dict[str, EmulatedNode]
    config: FleetConfig
    clients: list[AsyncOpenAI] = field(default_factory=list)

    @property
    def state(self) -> RouterState:
        return self.app[STATE]

    def client(self, *, base: str = "/v1", key: str | None = None, **kw: Any) -> AsyncOpenAI:
        client = AsyncOpenAI(
            base_url=self.url + base,
            api_key=key or self.key,
            max_retries=kw.pop("max_retries", 0),
            **kw,
        )
        self.clients.append(client)
        return client

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def router_in_flight(self) -> dict[str, int]:
        return {name: n.in_flight for name, n in self.state.fleet.nodes.items()}

    def node_in_flight(self) -> dict[str, int]:
        return {name: n.stats.in_flight for name, n in self.nodes.items()}


RouterFactory = Callable[..., Awaitable[Router]]


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a subprocess that must be told its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_ok(url: str, timeout_s: float = 15.0) -> None:
    """Poll `url` until it answers 200: a server in another process is starting up."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout_s):
        while True:
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Poll a condition about another component's state (there is no event to wait on)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still false after {timeout_s} s: {predicate}")
        await asyncio.sleep(0.01)


async def wait_until_async(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float = 3.0
) -> None:
    """`wait_until` for a condition that must be fetched (e.g. from a /metrics scrape)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still false after {timeout_s} s: {predicate}")
        await asyncio.sleep(0.02)


def policy_key(name: str, **policy: Any) -> tuple[str, ApiKeyConfig]:
    """A new key and its fleet-file entry named `name` with `policy` (rpm, models, ...)."""
    key = new_key()
    return key, ApiKeyConfig(name, digest(key), **policy)


class Clock:
    """A limiter's clock (seconds), moved by the test: a minute passes without a minute's
    sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def serve_scripted(app: web.Application, **runner_kwargs: Any) -> web.AppRunner:
    """A scripted node (an aiohttp app of the test's own) on 127.0.0.1, port 0: its runner
    (`runner.addresses[0][1]` is the port; the test cleans it up)."""
    runner = web.AppRunner(app, **runner_kwargs)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def start_router(config: FleetConfig, *, seed: int = 1) -> tuple[web.AppRunner, str]:
    """The router for `config` through production's runner on 127.0.0.1, port 0, in front of
    scripted nodes: its runner (the test cleans it up; `runner.app[STATE]`) and base URL."""
    runner = make_runner(create_app(config, rng=random.Random(seed)), shutdown_grace_s=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@dataclass
class Scrape:
    """One `/metrics` scrape, parsed by prometheus_client's own text parser."""

    text: str
    samples: list[tuple[str, dict[str, str], float]]

    @property
    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}

    def value(self, name: str, **labels: str) -> float | None:
        """The sample called `name` with exactly these labels; None when there is none."""
        found = [v for sample, values, v in self.samples if sample == name and values == labels]
        return found[0] if found else None

    def series(self, name: str, *labels: str) -> dict[tuple[str, ...], float]:
        """`{(label values…): value}` for every sample called `name`."""
        return {
            tuple(values[k] for k in labels): value
            for sample, values, value in self.samples
            if sample == name
        }


async def scrape(http: aiohttp.ClientSession, url: str, **kw: Any) -> Scrape:
    async with http.get(url + "/metrics", **kw) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    samples = [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
    return Scrape(text, samples)


async def scrape_until(
    http: aiohttp.ClientSession, url: str, done: Callable[[Scrape], bool], timeout_s: float = 3
) -> Scrape:
    """Scrape until `done` holds: the middleware observes a request after its client left."""
    async with asyncio.timeout(timeout_s):
        while True:
            result = await scrape(http, url)
            if done(result):
                return result
            await asyncio.sleep(0.02)


def _all_idle(router: Router) -> Callable[[], bool]:
    def idle() -> bool:
        busy = {
            **router.router_in_flight(),
            **{f"emulated {k}": v for k, v in router.node_in_flight().items()},
        }
        return not any(busy.values())

    return idle


@pytest.fixture
async def make_router() -> AsyncIterator[RouterFactory]:
    """`await make_router({"a": EmulatorConfig(models=("llama3",))}, routing=..., ...)`."""
    routers: list[Router] = []
    started_nodes: list[EmulatedNode] = []

    async def factory(
        nodes: Mapping[str, EmulatorConfig] | None = None,
        *,
        max_concurrency: int | Mapping[str, int] = 4,
        extra_keys: Sequence[ApiKeyConfig] = (),
        down: Sequence[str] = (),
        **overrides: Any,
    ) -> Router:
        specs = nodes or {"node-a": EmulatorConfig(models=("llama3",))}
        emulated: dict[str, EmulatedNode] = {}
        for name, spec in specs.items():
            node = EmulatedNode(spec, name=name)
            await node.start()
            started_nodes.append(node)
            emulated[name] = node
            if name in down:  # the router starts while this node is down
                await node.kill()
        key = new_key()
        caps = (
            max_concurrency
            if isinstance(max_concurrency, Mapping)
            else dict.fromkeys(specs, max_concurrency)
        )
        config = FleetConfig(
            nodes=tuple(NodeConfig(name, n.url, caps[name]) for name, n in emulated.items()),
            api_keys=(ApiKeyConfig("test", digest(key)), *extra_keys),
            health=HealthConfig(interval_s=0.5, timeout_s=0.5, refresh_min_interval_s=0.0),
            routing=RoutingConfig(connect_timeout_s=1.0, request_timeout_s=20.0),
        )
        config = replace(config, **overrides)
        app = create_app(config, rng=random.Random(7))
        runner = make_runner(app, shutdown_grace_s=2.0)
        await runner.setup()
        await start_site(runner, "127.0.0.1", 0)  # production's listener: the edge's limits
        port = runner.addresses[0][1]
        router = Router(f"http://127.0.0.1:{port}", key, app, runner, emulated, config)
        routers.append(router)
        return router

    yield factory

    try:
        for router in routers:
            for client in router.clients:
                await client.close()
            # Every slot must come back: a lease that leaks would starve a node forever.
            await wait_until(_all_idle(router))
    finally:
        for router in routers:
            await router.runner.cleanup()
        for node in started_nodes:
            await node.stop()


@pytest.fixture
async def router(make_router: RouterFactory) -> Router:
    """Two nodes: llama3 on both, mistral on node-a only, phi3 on node-b only."""
    return await make_router(
        {
            "node-a": EmulatorConfig(models=("llama3", "mistral")),
            "node-b": EmulatorConfig(models=("llama3", "phi3")),
        }
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
