"""Node lifecycle (kill/stop/restart), disconnects, pacing, loading and the prefix cache."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from router.emulator import (
    EmulatedNode,
    EmulatorConfig,
    NodeStats,
    create_emulator_app,
    serve_forever,
)

from .conftest import NodeFactory, read_ndjson, wait_until

pytestmark = pytest.mark.timeout(10)
CHAT: dict[str, Any] = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}


async def single(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url + "/api/chat", json={**body, "stream": False}) as resp:
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def loaded(session: aiohttp.ClientSession, node: EmulatedNode) -> list[str]:
    async with session.get(node.url + "/api/ps") as resp:
        return [m["name"] for m in (await resp.json())["models"]]


async def test_kill_mid_stream(make_node: NodeFactory, session: aiohttp.ClientSession) -> None:
    node = await make_node(tokens_per_second=20, default_tokens=40)
    async with session.post(node.url + "/api/chat", json=CHAT) as resp:
        assert resp.status == 200
        await resp.content.readline()
        started = time.monotonic()
        await node.kill()
        assert time.monotonic() - started < 0.15
        assert node.stats.in_flight == 0
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    with pytest.raises(aiohttp.ClientConnectionError):
        await single(session, node.url, CHAT)


async def test_kill_resets_waiting_and_idle_connections(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(max_parallel=1, ttft_ms=2000)
    requests = [asyncio.create_task(single(session, node.url, CHAT)) for _ in range(3)]
    await wait_until(lambda: node.stats.in_flight == 3)
    await node.kill()
    assert node.stats.in_flight == 0
    for request in requests:
        with pytest.raises(aiohttp.ClientError):
            await request


async def test_restart_reuses_the_port(node: EmulatedNode, session: aiohttp.ClientSession) -> None:
    port = node.port
    assert port != 0 and node.url == f"http://127.0.0.1:{port}"
    await single(session, node.url, CHAT)
    await node.kill()
    await node.kill()  # idempotent
    await node.restart()
    assert node.port == port
    await single(session, node.url, CHAT)
    await node.stop()
    await node.stop()  # safe twice
    await node.restart()
    assert node.port == port
    await single(session, node.url, CHAT)
    assert node.stats.completed == 3


async def test_context_manager() -> None:
    async with EmulatedNode(EmulatorConfig(), name="cm") as node, aiohttp.ClientSession() as s:
        assert node.running
        async with s.get(node.url + "/") as resp:
            assert resp.status == 200
    assert not node.running


async def test_client_disconnect_mid_stream_stops_generation(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(tokens_per_second=50, default_tokens=40)
    async with session.post(node.url + "/api/chat", json=CHAT) as resp:
        await resp.content.readline()
        resp.close()
    await wait_until(lambda: node.stats.in_flight == 0)
    assert node.stats.cancelled == 1
    assert node.stats.completed == 0


async def test_client_disconnect_while_waiting_non_stream(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(ttft_ms=2000)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await single(session, node.url, CHAT)
    await wait_until(lambda: node.stats.in_flight == 0)
    assert node.stats.cancelled == 1


async def test_disconnect_detected_without_handler_cancellation(
    session: aiohttp.ClientSession,
) -> None:
    """A plain production-style runner (no handler cancellation) still frees the slot."""
    stats = NodeStats()
    app = create_emulator_app(EmulatorConfig(tokens_per_second=50, default_tokens=40), stats=stats)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with session.post(url + "/api/chat", json=CHAT) as resp:
            await resp.content.readline()
            resp.close()
        await wait_until(lambda: stats.in_flight == 0)
        assert stats.cancelled == 1
    finally:
        await runner.cleanup()


async def test_headers_wait_for_ttft_and_tokens_are_paced(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(ttft_ms=150, tokens_per_second=100, default_tokens=10)
    started = time.monotonic()
    async with session.post(node.url + "/api/chat", json=CHAT) as resp:
        headers_at = time.monotonic() - started
        lines = await read_ndjson(resp)
    total = time.monotonic() - started
    assert headers_at >= 0.14
    assert total - headers_at >= 0.08  # 9 gaps of 10 ms
    done = lines[-1]
    assert done["prompt_eval_duration"] >= 140_000_000
    assert done["eval_duration"] >= 80_000_000
    assert done["total_duration"] >= done["prompt_eval_duration"] + done["eval_duration"]


async def test_load_ms_on_cold_model(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(preloaded=False, load_ms=120)
    assert await loaded(session, node) == []
    started = time.monotonic()
    cold = await asyncio.gather(*(single(session, node.url, CHAT) for _ in range(2)))
    assert time.monotonic() - started < 0.22  # concurrent requests share one load
    assert all(reply["load_duration"] >= 110_000_000 for reply in cold)
    assert await loaded(session, node) == ["llama3:latest"]
    warm = await single(session, node.url, CHAT)
    assert warm["load_duration"] < 50_000_000


async def test_lru_eviction(make_node: NodeFactory, session: aiohttp.ClientSession) -> None:
    node = await make_node(models=("a", "b", "c"), max_loaded_models=2, load_ms=30)
    assert sorted(await loaded(session, node)) == ["a:latest", "b:latest"]
    await single(session, node.url, {**CHAT, "model": "a"})
    reply = await single(session, node.url, {**CHAT, "model": "c"})
    assert reply["load_duration"] >= 25_000_000
    assert sorted(await loaded(session, node)) == ["a:latest", "c:latest"]


async def test_keep_alive_zero_unloads_after_the_request(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    await single(session, node.url, {**CHAT, "keep_alive": 0})
    assert await loaded(session, node) == []
    await single(session, node.url, {**CHAT, "keep_alive": -1})
    assert await loaded(session, node) == ["llama3:latest"]


@pytest.mark.parametrize("enabled", [True, False], ids=["cache", "no-cache"])
async def test_prefix_cache_lowers_ttft(
    make_node: NodeFactory, session: aiohttp.ClientSession, enabled: bool
) -> None:
    node = await make_node(prefix_cache=enabled, ttft_ms=120)
    system = {"role": "system", "content": "You are a helpful assistant."}
    first = await single(session, node.url, {**CHAT, "messages": [system, CHAT["messages"][0]]})
    follow_up = [system, {"role": "user", "content": "hello"}]
    second = await single(session, node.url, {**CHAT, "messages": follow_up})
    assert first["prompt_eval_duration"] >= 110_000_000
    if enabled:
        assert second["prompt_eval_duration"] < 60_000_000
    else:
        assert second["prompt_eval_duration"] >= 110_000_000
    assert second["prompt_eval_count"] == first["prompt_eval_count"]


async def test_prefix_cache_hits_on_the_next_turn(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(prefix_cache=True, ttft_ms=120)
    turn1 = await single(session, node.url, CHAT)
    history = [*CHAT["messages"], turn1["message"], {"role": "user", "content": "and then?"}]
    turn2 = await single(session, node.url, {**CHAT, "messages": history})
    assert turn2["prompt_eval_duration"] < 60_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_serve_forever_until_cancelled(session: aiohttp.ClientSession) -> None:
    port = free_port()
    task = asyncio.create_task(serve_forever(EmulatorConfig(), "127.0.0.1", port))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 2
    while True:
        try:
            reply = await single(session, url, CHAT)
            break
        except aiohttp.ClientConnectionError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    assert reply["done"] is True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectionError):
        await single(session, url, CHAT)


async def test_many_nodes_in_one_process(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    nodes = [await make_node() for _ in range(5)]
    assert len({n.port for n in nodes}) == 5
    replies = await asyncio.gather(*(single(session, n.url, CHAT) for n in nodes))
    assert len({orjson.dumps(r["message"]) for r in replies}) == 1
    nodes[2].faults.mode = "busy"
    async with session.post(nodes[2].url + "/api/chat", json=CHAT) as resp:
        assert resp.status == 503
    assert all(n.faults.mode == "ok" for i, n in enumerate(nodes) if i != 2)
