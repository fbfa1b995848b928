"""Connections to a node are reused: an answer read to its done line goes back to the pool once
the node's body has ended, even when the body's end comes a moment after the done line; a body
that does not end is closed, and never holds the answer back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from router.api.auth import digest, new_key
from router.config import ApiKeyConfig, FleetConfig, NodeConfig
from router.upstream.lines import END_WAIT_S
from tests.conftest import serve_scripted, start_router, wait_until

LINES = [
    {"model": "llama3", "message": {"role": "assistant", "content": "Hi"}, "done": False},
    {"model": "llama3", "response": " there", "done": False},
    {
        "model": "llama3",
        "message": {"role": "assistant", "content": ""},
        "response": "",
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 3,
        "eval_count": 2,
    },
]
PROMPT = {"prompt": "x"}
TAGS = {"models": [{"name": "llama3:latest", "modified_at": "2025-01-01T00:00:00Z"}]}


async def _node(peers: list[object], cut: list[object], end_after_s: float) -> web.AppRunner:
    """A node that sends every line at once, then ends its body `end_after_s` later; `cut`
    gets the peer of each connection closed before that."""

    async def generate(request: web.Request) -> web.StreamResponse:
        await request.read()
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport else None
        peers.append(peer)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        await resp.write(b"".join(orjson.dumps(line) + b"\n" for line in LINES))
        try:
            await asyncio.sleep(end_after_s)  # the chunked terminator follows in a later segment
        except asyncio.CancelledError:  # the router closed the connection
            cut.append(peer)
            raise
        await resp.write_eof()
        return resp

    async def tags(request: web.Request) -> web.Response:
        return web.json_response(TAGS)

    async def ps(request: web.Request) -> web.Response:
        return web.json_response({"models": []})

    app = web.Application()
    app.router.add_post("/api/chat", generate)
    app.router.add_post("/api/generate", generate)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/ps", ps)
    return await serve_scripted(app, handler_cancellation=True)


Slow = tuple[str, str, list[object], list[object]]


@pytest.fixture
async def slow_end(request: pytest.FixtureRequest) -> AsyncIterator[Slow]:
    peers: list[object] = []
    cut: list[object] = []
    node = await _node(peers, cut, getattr(request, "param", 0.02))
    key = new_key()
    config = FleetConfig(
        nodes=(NodeConfig("n", f"http://127.0.0.1:{node.addresses[0][1]}"),),
        api_keys=(ApiKeyConfig("t", digest(key)),),
    )
    runner, url = await start_router(config)
    try:
        yield url, key, peers, cut
    finally:
        await runner.cleanup()
        await node.cleanup()


async def test_answers_reuse_one_connection_to_the_node(
    slow_end: Slow, http: aiohttp.ClientSession
) -> None:
    url, key, peers, cut = slow_end
    headers = {"Authorization": f"Bearer {key}"}
    async with asyncio.timeout(10):
        for stream in (False, True, False, True):
            chat = {"messages": [{"role": "user", "content": "x"}]}
            for path, fields in (("/v1/chat/completions", chat), ("/v1/completions", PROMPT)):
                body: dict[str, Any] = {"model": "llama3", **fields, "stream": stream}
                async with http.post(url + path, json=body, headers=headers) as resp:
                    text = await resp.text()
                    assert resp.status == 200, text
                    assert "[DONE]" in text if stream else "Hi there" in text
                await asyncio.sleep(0.05)  # the node's body has ended by now
    assert len(peers) == 8 and not cut
    assert len(set(peers)) == 1, f"{len(set(peers))} connections for 8 requests"


@pytest.mark.parametrize("slow_end", [5.0], indirect=True, ids=["never-ends"])
async def test_a_body_that_does_not_end_is_closed_and_does_not_delay_the_answer(
    slow_end: Slow, http: aiohttp.ClientSession
) -> None:
    url, key, peers, cut = slow_end
    body = {"model": "llama3", "messages": [{"role": "user", "content": "x"}]}
    async with asyncio.timeout(10):
        started = time.monotonic()
        async with http.post(
            url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["choices"][0]["message"]["content"] == "Hi there"
        assert time.monotonic() - started < END_WAIT_S
        await wait_until(lambda: cut == peers, timeout_s=END_WAIT_S + 2.0)
