"""Fault modes and capacity limits, flipped on a running node."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp
import orjson
import pytest

from router.emulator import EmulatedNode, Faults

from .conftest import NodeFactory, read_ndjson, wait_until

pytestmark = pytest.mark.timeout(10)
BUSY = b'{"error":"server busy, please try again.  maximum pending requests exceeded"}'
CHAT: dict[str, Any] = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}


async def chat(
    session: aiohttp.ClientSession, node: EmulatedNode, **extra: Any
) -> tuple[int, bytes]:
    async with session.post(node.url + "/api/chat", json={**CHAT, **extra}) as resp:
        return resp.status, await resp.read()


async def test_busy_mode(node: EmulatedNode, session: aiohttp.ClientSession) -> None:
    node.faults.mode = "busy"
    async with session.post(node.url + "/api/chat", json=CHAT) as resp:
        assert resp.status == 503
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert "Retry-After" not in resp.headers
        assert await resp.read() == BUSY
    async with session.get(node.url + "/api/tags") as resp:
        assert resp.status == 200  # faults hit generation only; health checks still pass


async def test_error_mode_and_reset(node: EmulatedNode, session: aiohttp.ClientSession) -> None:
    node.faults.mode = "error"
    status, raw = await chat(session, node)
    assert status == 500
    assert set(orjson.loads(raw)) == {"error"}
    node.faults.reset()
    assert (await chat(session, node, stream=False))[0] == 200


def test_unknown_fault_mode_rejected() -> None:
    with pytest.raises(ValueError, match="fault mode"):
        Faults().mode = "explode"


async def test_error_rate_uses_the_injected_rng(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    async def statuses(seed: int) -> list[int]:
        node.faults.rng = random.Random(seed)
        return [(await chat(session, node, stream=False))[0] for _ in range(20)]

    node.faults.error_rate = 0.5
    first = await statuses(3)
    assert set(first) == {200, 500}
    assert await statuses(3) == first
    node.faults.error_rate = 1.0
    assert set(await statuses(4)) == {500}


async def test_drop_closes_without_response(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    node.faults.mode = "drop"
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await chat(session, node)
    assert node.stats.bodies == [CHAT]


async def test_hang_holds_a_slot_until_the_client_leaves(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    node.faults.mode = "hang"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await chat(session, node)
    await wait_until(lambda: node.stats.in_flight == 0)
    assert node.stats.max_in_flight == 1
    assert node.stats.cancelled == 1


async def test_hang_released_by_stop(node: EmulatedNode, session: aiohttp.ClientSession) -> None:
    node.faults.mode = "hang"
    request = asyncio.create_task(chat(session, node))
    await wait_until(lambda: node.stats.in_flight == 1)
    started = time.monotonic()
    await node.stop()
    assert time.monotonic() - started < 0.5
    with pytest.raises(aiohttp.ClientError):
        await request
    assert node.stats.in_flight == 0


@pytest.mark.parametrize("after", [0, 3], ids=["at-once", "after-3"])
async def test_die_after_tokens_streams_an_error_line_and_no_done(
    make_node: NodeFactory, session: aiohttp.ClientSession, after: int
) -> None:
    node = await make_node(default_tokens=10)
    node.faults.die_after_tokens = after
    async with session.post(node.url + "/api/chat", json=CHAT) as resp:
        assert resp.status == 200
        lines = await read_ndjson(resp)
    assert len(lines) == after + 1
    assert all(line["done"] is False for line in lines[:-1])
    assert list(lines[-1]) == ["error"]
    assert node.stats.completed == 0


async def test_die_after_tokens_non_stream_is_500(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    node.faults.die_after_tokens = 2
    status, raw = await chat(session, node, stream=False)
    assert status == 500
    assert "error" in orjson.loads(raw)


async def test_drop_mid_stream_aborts_after_n_tokens(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(default_tokens=10)
    node.faults.die_after_tokens = 2
    node.faults.drop_mid_stream = True
    received: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with session.post(node.url + "/api/chat", json=CHAT) as resp:
            assert resp.status == 200
            async for line in resp.content:
                received.append(line)
    assert len(received) == 2
    assert all(orjson.loads(line)["done"] is False for line in received)


async def test_drop_mid_stream_alone_drops_halfway(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(default_tokens=10)
    node.faults.drop_mid_stream = True
    with pytest.raises(aiohttp.ClientError):
        await chat(session, node, stream=False)
    with pytest.raises(aiohttp.ClientPayloadError):
        await chat(session, node)


async def test_tags_fail_keeps_generation_working(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    node.faults.tags_fail = True
    async with session.get(node.url + "/api/tags") as resp:
        assert resp.status == 500
        assert "error" in await resp.json()
    assert (await chat(session, node, stream=False))[0] == 200


async def test_slow_factor_multiplies_delays(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(ttft_ms=40)
    node.faults.slow_factor = 3.0
    started = time.monotonic()
    await chat(session, node, stream=False)
    assert time.monotonic() - started >= 0.11


async def test_busy_beyond_parallel_plus_queue(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(max_parallel=1, max_queue=1, ttft_ms=150)
    first = [asyncio.create_task(chat(session, node, stream=False)) for _ in range(2)]
    await wait_until(lambda: node.stats.in_flight == 2)
    status, raw = await chat(session, node, stream=False)
    assert (status, raw) == (503, BUSY)
    results = await asyncio.gather(*first)
    assert [s for s, _ in results] == [200, 200]
    assert node.stats.max_in_flight == 2


async def test_parallel_slots_serialise_the_rest(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(max_parallel=2, ttft_ms=80)
    started = time.monotonic()
    results = await asyncio.gather(*(chat(session, node, stream=False) for _ in range(4)))
    elapsed = time.monotonic() - started
    assert all(status == 200 for status, _ in results)
    assert elapsed >= 0.15  # two waves of 80 ms
    assert node.stats.max_in_flight == 4
    assert node.stats.completed == 4
