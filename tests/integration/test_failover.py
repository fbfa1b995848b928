"""Nodes that die, refuse or are busy cost the client nothing while another node has the model."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import pytest

from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory, scrape, wait_until

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me a story."}]
UPSTREAM = "jarvis_upstream_requests_total"


async def _chat(client: openai.AsyncOpenAI, model: str = "ollama/llama3", **kw: Any) -> str:
    resp = await client.chat.completions.create(model=model, messages=MESSAGES, **kw)
    content = resp.choices[0].message.content
    assert content
    return str(content)


async def _stream(client: openai.AsyncOpenAI, model: str = "ollama/llama3") -> str:
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def test_node_killed_between_requests(router: Router) -> None:
    client = router.client()
    await _chat(client)
    await router.nodes["node-a"].kill()
    # The router has not noticed yet (no health round in between is guaranteed): every request
    # must still succeed, failing over on the connection error.
    for _ in range(6):
        await _chat(client)
        assert await _stream(client)
    assert not router.state.fleet.nodes["node-a"].healthy


async def test_node_killed_under_concurrent_load(make_router: RouterFactory, http) -> None:
    slow = EmulatorConfig(models=("llama3",), tokens_per_second=200, default_tokens=20)
    router = await make_router({"a": slow, "b": slow, "c": slow})
    client = router.client()

    async def one(i: int) -> str:
        return await _chat(client, seed=i)

    tasks = [asyncio.create_task(one(i)) for i in range(30)]
    await wait_until(lambda: router.nodes["a"].stats.in_flight > 0)  # it has work to lose
    await router.nodes["a"].kill()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 20)
    assert len(results) == 30 and all(results)
    outcomes = (await scrape(http, router.url)).series(UPSTREAM, "node", "outcome")
    assert outcomes[("a", "connect_error")] >= 1  # some requests were on the killed node: moved


async def test_busy_node_is_skipped(router: Router, http) -> None:
    router.nodes["node-a"].faults.mode = "busy"
    client = router.client()
    for i in range(6):
        await _chat(client, seed=i)
    assert router.state.fleet.nodes["node-a"].healthy  # busy is not sick
    outcomes = (await scrape(http, router.url)).series(UPSTREAM, "node", "outcome")
    assert outcomes[("node-a", "busy")] >= 1, outcomes


async def test_erroring_node_fails_over(router: Router) -> None:
    router.nodes["node-b"].faults.mode = "error"
    client = router.client()
    for i in range(6):
        await _chat(client, seed=i)
        assert await _stream(client)


async def test_model_on_one_node_only_goes_only_there(router: Router) -> None:
    client = router.client()
    for _ in range(5):
        await _chat(client, model="ollama/mistral")
        await _chat(client, model="ollama/phi3")
    a = [b["model"] for b in router.nodes["node-a"].stats.bodies]
    b = [b["model"] for b in router.nodes["node-b"].stats.bodies]
    assert a == ["mistral:latest"] * 5
    assert b == ["phi3:latest"] * 5


async def test_single_node_model_with_dead_node_is_503_not_elsewhere(router: Router) -> None:
    router.nodes["node-a"].faults.mode = "busy"
    with pytest.raises(openai.InternalServerError) as info:
        await _chat(router.client(), model="ollama/mistral")
    assert info.value.status_code == 503
    assert router.nodes["node-b"].stats.bodies == []


async def test_least_loaded_spreads_concurrent_requests(make_router: RouterFactory) -> None:
    slow = EmulatorConfig(models=("llama3",), tokens_per_second=100, default_tokens=10)
    router = await make_router({"a": slow, "b": slow}, max_concurrency={"a": 2, "b": 6})
    client = router.client()
    peak = {"a": 0, "b": 0}

    async def watch() -> None:
        while True:
            for name, n in router.state.fleet.nodes.items():
                peak[name] = max(peak[name], n.in_flight)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(_chat(client, seed=i) for i in range(8)))
    watcher.cancel()
    # 8 at once over capacities 2 and 6: least-loaded by ratio fills both evenly (2 and 6).
    assert peak == {"a": 2, "b": 6}


async def test_stream_that_dies_mid_way_gets_an_error_event(router: Router) -> None:
    for node in router.nodes.values():
        node.faults.die_after_tokens = 2
    client = router.client()
    stream = await client.chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "failed" in info.value.message
    assert "".join(received)  # the tokens before the failure arrived and were not replayed
    for node in router.nodes.values():
        node.faults.reset()
    assert await _stream(client)


async def test_stream_dropped_mid_way_marks_node_down(router: Router) -> None:
    router.nodes["node-a"].faults.die_after_tokens = 2
    router.nodes["node-a"].faults.drop_mid_stream = True
    router.nodes["node-b"].faults.mode = "busy"  # force the first attempt onto node-a
    stream = await router.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIError):
        _ = [c async for c in stream]
    assert not router.state.fleet.nodes["node-a"].healthy
    router.nodes["node-a"].faults.reset()
    router.nodes["node-b"].faults.reset()
    await wait_until(lambda: router.state.fleet.nodes["node-a"].healthy)


async def test_all_nodes_down_then_back(router: Router, http) -> None:
    client = router.client()
    for node in router.nodes.values():
        await node.kill()
    with pytest.raises(openai.InternalServerError):
        await _chat(client)
    await wait_until(lambda: not router.state.fleet.any_healthy())
    async with http.get(router.url + "/readyz") as resp:
        assert resp.status == 503
    for node in router.nodes.values():
        await node.restart()
    await wait_until(lambda: router.state.fleet.any_healthy())
    async with http.get(router.url + "/readyz") as resp:
        assert resp.status == 200
    assert await _chat(client)


@pytest.mark.parametrize("drop", [False, True], ids=["error-line", "connection-dropped"])
async def test_non_stream_answer_cut_mid_way_fails_over(
    router: Router, http: aiohttp.ClientSession, drop: bool
) -> None:
    client = router.client()
    expected = [await _chat(client, seed=i) for i in range(6)]  # both nodes well
    router.nodes["node-a"].faults.die_after_tokens = 2
    router.nodes["node-a"].faults.drop_mid_stream = drop
    before = router.nodes["node-a"].stats.requests["/api/chat"]
    # The client has seen nothing when node-a breaks off: it gets node-b's whole answer.
    assert [await _chat(client, seed=i) for i in range(6)] == expected
    assert router.nodes["node-a"].stats.requests["/api/chat"] > before  # a really was tried
    metrics = await scrape(http, router.url)
    failed = metrics.value(
        UPSTREAM, node="node-a", outcome="connect_error" if drop else "stream_error"
    )
    assert failed is not None and failed >= 1
    assert metrics.value("jarvis_failovers_total", model="ollama/llama3") == failed
