"""Fixtures for checking the emulator over real loopback sockets (independent of tests/conftest)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from router.emulator import EmulatedNode, EmulatorConfig

NodeFactory = Callable[..., Awaitable[EmulatedNode]]


async def wait_until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Poll `condition` until true; fails the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def read_ndjson(resp: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    raw = await resp.read()
    assert raw.endswith(b"\n"), raw[-200:]
    return [orjson.loads(line) for line in raw.split(b"\n") if line]


@pytest.fixture
async def make_node() -> AsyncIterator[NodeFactory]:
    """`await make_node(ttft_ms=50, ...)` → a started node; stopped and checked at teardown."""
    nodes: list[EmulatedNode] = []

    async def factory(**config: Any) -> EmulatedNode:
        node = EmulatedNode(EmulatorConfig(**config), name=f"node{len(nodes)}")
        await node.start()
        nodes.append(node)
        return node

    yield factory
    try:
        # Every slot must come back once clients are gone, whatever the test did.
        await wait_until(lambda: all(node.stats.in_flight == 0 for node in nodes))
    finally:
        for node in nodes:
            await node.stop()


@pytest.fixture
async def node(make_node: NodeFactory) -> EmulatedNode:
    return await make_node()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        yield client
