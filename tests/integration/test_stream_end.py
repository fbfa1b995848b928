"""Where a stream ends when the node's answer ends without its done line (api-reference.md
pitfall 3): a stream the client already reads gets one SSE error event and no `[DONE]`; an answer
the client has not seen yet goes to another node. Either way the node's slot comes back and the
attempt counts once, as the node's fault."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from router.api.auth import digest, new_key
from router.api.state import STATE, RouterState
from router.config import ApiKeyConfig, FleetConfig, NodeConfig
from router.emulator import EmulatedNode, EmulatorConfig
from tests.conftest import serve_scripted, start_router, wait_until

TOKENS = [
    {"model": "llama3:latest", "message": {"role": "assistant", "content": word}, "done": False}
    for word in ("Hi", " there")
]
TAGS = {"models": [{"name": "llama3:latest", "modified_at": "2025-01-01T00:00:00Z"}]}
MESSAGES: list[Any] = [{"role": "user", "content": "Say hi."}]


async def _cut_node() -> web.AppRunner:
    """A node whose every answer is two tokens and then the end of the body: no done line."""

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        await resp.write(b"".join(orjson.dumps(line) + b"\n" for line in TOKENS))
        await resp.write_eof()
        return resp

    async def tags(request: web.Request) -> web.Response:
        return web.json_response(TAGS)

    async def ps(request: web.Request) -> web.Response:  # loaded: as attractive as any node
        return web.json_response({"models": [{"name": "llama3:latest"}]})

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/ps", ps)
    return await serve_scripted(app)


class Fleet:
    def __init__(self, url: str, key: str, state: RouterState) -> None:
        self.url, self.key, self.state = url, key, state

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=self.key, max_retries=0)


@pytest.fixture
async def fleet(request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    """The router in front of the cut node "cut" and, with the param True, a good node "good"."""
    cut = await _cut_node()
    good = EmulatedNode(EmulatorConfig(models=("llama3",)), name="good")
    nodes = [NodeConfig("cut", f"http://127.0.0.1:{cut.addresses[0][1]}")]
    if getattr(request, "param", False):
        await good.start()
        nodes.append(NodeConfig("good", good.url))
    key = new_key()
    config = FleetConfig(nodes=tuple(nodes), api_keys=(ApiKeyConfig("t", digest(key)),))
    runner, url = await start_router(config, seed=3)
    state = runner.app[STATE]
    try:
        yield Fleet(url, key, state)
        # Every slot comes back, on the router's side and the good node's.
        await wait_until(lambda: not any(n.in_flight for n in state.fleet.nodes.values()))
        await wait_until(lambda: good.stats.in_flight == 0)
    finally:
        await runner.cleanup()
        await cut.cleanup()
        await good.stop()


async def test_a_stream_without_a_done_line_ends_in_one_error_event(
    fleet: Fleet, http: aiohttp.ClientSession
) -> None:
    body = {"model": "llama3", "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {fleet.key}"}
    async with asyncio.timeout(10):
        async with http.post(fleet.url + "/v1/chat/completions", json=body, headers=headers) as r:
            assert r.status == 200  # committed at the first line: the failure comes in-band
            events = (await r.text()).strip().split("\n\n")
    errors = [e for e in events if '"error"' in e]
    assert len(errors) == 1 and events[-1] == errors[0]
    assert "ended the answer without a done line" in errors[0]
    assert "data: [DONE]" not in events
    text = "".join(
        orjson.loads(e.removeprefix("data: "))["choices"][0]["delta"].get("content") or ""
        for e in events[:-1]
    )
    assert text == "Hi there"  # what arrived before the end still went out, once
    assert fleet.state.metrics.upstream_outcomes() == {"cut": {"protocol_error": 1}}
    node = fleet.state.fleet.nodes["cut"]
    assert node.breaker is not None and node.breaker.consecutive_failures == 1


async def test_the_sdk_reads_that_stream_as_an_api_error(fleet: Fleet) -> None:
    client = fleet.client()
    try:
        stream = await client.chat.completions.create(
            model="ollama/llama3", messages=MESSAGES, stream=True
        )
        received: list[str] = []
        with pytest.raises(openai.APIError) as info:
            async for chunk in stream:
                if chunk.choices:
                    received.append(chunk.choices[0].delta.content or "")
    finally:
        await client.close()
    assert "without a done line" in info.value.message
    assert "".join(received) == "Hi there"


async def test_an_answer_without_a_done_line_is_not_an_answer(fleet: Fleet) -> None:
    client = fleet.client()
    try:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="ollama/llama3", messages=MESSAGES)
    finally:
        await client.close()
    assert info.value.status_code == 503  # never a 200 with half an answer
    assert "without a done line" in info.value.message
    assert fleet.state.metrics.upstream_outcomes() == {"cut": {"protocol_error": 1}}


@pytest.mark.parametrize("fleet", [True], indirect=True, ids=["cut+good"])
async def test_an_answer_cut_short_goes_to_another_node(fleet: Fleet) -> None:
    client = fleet.client()
    try:
        for i in range(6):  # the first ones meet the cut node, then its breaker ejects it
            resp = await client.chat.completions.create(
                model="ollama/llama3", messages=MESSAGES, seed=i
            )
            assert resp.choices[0].finish_reason == "stop"
            assert resp.choices[0].message.content
            assert resp.choices[0].message.content != "Hi there"  # the good node's whole answer
    finally:
        await client.close()
    outcomes = fleet.state.metrics.upstream_outcomes()
    assert outcomes["good"] == {"ok": 6}
    assert outcomes["cut"]["protocol_error"] >= 1  # some did go there first, and moved
    assert set(outcomes["cut"]) == {"protocol_error"}
