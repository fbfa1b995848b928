"""A router started from a real fleet file (`create_app(load_config(path), config_path=path)`)
through production's runner, emulated nodes that can be added to the file, and SDK load."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from aiohttp import web

from router.api.app import create_app, make_runner
from router.api.auth import digest, new_key
from router.api.reload import RELOADER, Reloader
from router.config import load_config
from router.emulator import EmulatedNode, EmulatorConfig
from tests.conftest import Router, _all_idle, wait_until

# ~10 tokens at 100 tokens/s: each request holds its node for ~0.1 s, so reloads and drains
# always meet requests in flight.
PACED = EmulatorConfig(models=("llama3",), tokens_per_second=100, default_tokens=10)
MODEL = "ollama/llama3"


@dataclass
class FleetFile:
    path: Path
    data: dict[str, Any]

    def write(self, text: str | None = None) -> None:
        """Whole file at once (write + rename), as an operator or Kubernetes does."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text if text is not None else yaml.safe_dump(self.data))
        os.replace(tmp, self.path)

    def add_key(self, name: str, *, admin: bool = False) -> str:
        key = new_key()
        self.data["api_keys"].append({"name": name, "sha256": digest(key), "admin": admin})
        return key

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.data["nodes"] if n["name"] == name)


@dataclass
class Live:
    router: Router
    fleet: FleetFile
    admin_key: str

    @property
    def reloader(self) -> Reloader:
        return self.router.app[RELOADER]

    def reloads(self, result: str) -> float:
        registry = self.router.state.metrics.registry
        value = registry.get_sample_value("jarvis_config_reloads_total", {"result": result})
        return -1.0 if value is None else value

    async def start_node(self, name: str) -> EmulatedNode:
        node = EmulatedNode(PACED, name=name)
        await node.start()
        self.router.nodes[name] = node
        return node


LiveFactory = Callable[..., Awaitable[Live]]


def chats(node: EmulatedNode) -> int:
    return node.stats.requests["/api/chat"]


@pytest.fixture
async def live_router(tmp_path: Path) -> AsyncIterator[LiveFactory]:
    lives: list[Live] = []

    async def factory(names: tuple[str, ...] = ("a", "b"), *, poll_s: float = 0.0) -> Live:
        key, admin = new_key(), new_key()
        emulated = {n: EmulatedNode(PACED, name=n) for n in names}
        for node in emulated.values():
            await node.start()
        data: dict[str, Any] = {
            "server": {"reload_poll_s": poll_s},
            "api_keys": [
                {"name": "test", "sha256": digest(key)},
                {"name": "ops", "sha256": digest(admin), "admin": True},
            ],
            "health": {"interval_s": 0.2, "timeout_s": 0.2, "refresh_min_interval_s": 0},
            "routing": {"connect_timeout_s": 1, "request_timeout_s": 20},
            "nodes": [{"name": n, "url": e.url, "max_concurrency": 4} for n, e in emulated.items()],
        }
        fleet = FleetFile(tmp_path / "fleet.yaml", data)
        fleet.write()
        config = load_config(str(fleet.path), env={})
        app = create_app(config, config_path=str(fleet.path), rng=random.Random(7))
        runner = make_runner(app, shutdown_grace_s=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        live = Live(Router(url, key, app, runner, emulated, config), fleet, admin)
        lives.append(live)
        return live

    yield factory

    try:
        for live in lives:
            for client in live.router.clients:
                await client.close()
            await wait_until(_all_idle(live.router))  # every slot came back, removed nodes too
    finally:
        for live in lives:
            await live.router.runner.cleanup()
            for node in live.router.nodes.values():  # added ones too (start_node)
                await node.stop()


@dataclass
class Load:
    ok: int = 0
    failures: list[BaseException] = field(default_factory=list)


_SENT = itertools.count()


async def _one(client: openai.AsyncOpenAI, stream: bool) -> None:
    # Each its own conversation, so load spreads over every node (one shared opening would be
    # one conversation, kept on its node by affinity up to the bounded load).
    messages = [{"role": "user", "content": f"hello {next(_SENT)}"}]
    if stream:
        chunks = await client.chat.completions.create(model=MODEL, messages=messages, stream=True)
        async for _ in chunks:
            pass
    else:
        answer = await client.chat.completions.create(model=MODEL, messages=messages)
        assert answer.choices[0].message.content


async def run_load(router: Router, stop: asyncio.Event, load: Load, clients: int = 8) -> None:
    """`clients` loops of streamed and non-streamed chats until `stop`; failures are kept."""

    async def worker(i: int) -> None:
        client = router.client(timeout=10)
        while not stop.is_set():
            try:
                await _one(client, stream=i % 2 == 0)
            except openai.OpenAIError as exc:
                load.failures.append(exc)
            else:
                load.ok += 1

    await asyncio.gather(*(worker(i) for i in range(clients)))
