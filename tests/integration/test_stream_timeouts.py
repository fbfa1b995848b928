"""The clocks on a node's answer once its first line is in (issue #16): a gap between lines
longer than `token_gap_timeout_s`, or an answer still going at `request_timeout_s`, ends the
stream in one SSE error event, counted as the node's timeout; a node whose lines keep coming
within the gap is never cut, however long it takes in all. And a done line without its newline
(an answer's last bytes) still ends the answer well."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
from aiohttp import web

from router.api.auth import digest, new_key
from router.api.state import STATE, RouterState
from router.config import ApiKeyConfig, FleetConfig, NodeConfig, RoutingConfig
from tests.conftest import serve_scripted, start_router, wait_until

MODEL = "llama3:latest"
TAGS = {"models": [{"name": MODEL, "modified_at": "2025-01-01T00:00:00Z"}]}
GAP_S = 0.3  # the router's between-token timeout in these tests


def _token(word: str) -> bytes:
    line = {"model": MODEL, "message": {"role": "assistant", "content": word}, "done": False}
    return orjson.dumps(line) + b"\n"


DONE = orjson.dumps({"model": MODEL, "message": {"role": "assistant", "content": ""},
                     "done": True, "done_reason": "stop", "eval_count": 3})  # fmt: skip


@dataclass
class Script:
    """What the node sends: (seconds to wait first, bytes), then it holds the answer open
    (`hang`) or ends the body."""

    steps: list[tuple[float, bytes]] = field(default_factory=list)
    hang: bool = False


async def _node(script: Script) -> web.AppRunner:
    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for wait_s, data in script.steps:
            await asyncio.sleep(wait_s)
            await resp.write(data)
        if script.hang:
            await asyncio.sleep(30)  # cancelled when the router closes the connection
        await resp.write_eof()
        return resp

    async def tags(request: web.Request) -> web.Response:
        return web.json_response(TAGS)

    async def ps(request: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": MODEL}]})

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/ps", ps)
    return await serve_scripted(app, handler_cancellation=True)


@dataclass
class Router:
    url: str
    headers: dict[str, str]
    state: RouterState
    script: Script


@pytest.fixture
async def router() -> AsyncIterator[Router]:
    script = Script()
    node = await _node(script)
    key = new_key()
    config = FleetConfig(
        nodes=(NodeConfig("n", f"http://127.0.0.1:{node.addresses[0][1]}"),),
        api_keys=(ApiKeyConfig("t", digest(key)),),
        routing=RoutingConfig(token_gap_timeout_s=GAP_S, request_timeout_s=1.5),
    )
    runner, url = await start_router(config, seed=3)
    state = runner.app[STATE]
    try:
        yield Router(url, {"Authorization": f"Bearer {key}"}, state, script)
        await wait_until(lambda: not any(n.in_flight for n in state.fleet.nodes.values()))
    finally:
        await runner.cleanup()
        await node.cleanup()


async def _stream(router: Router, http: aiohttp.ClientSession) -> list[str]:
    body = {"model": "llama3", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    async with asyncio.timeout(10):
        url = router.url + "/v1/chat/completions"
        async with http.post(url, json=body, headers=router.headers) as r:
            assert r.status == 200
            return (await r.text()).strip().split("\n\n")


def _text(events: list[str]) -> str:
    chunks = [orjson.loads(e.removeprefix("data: ")) for e in events if e != "data: [DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def test_a_node_silent_between_tokens_ends_the_stream_in_one_error(
    router: Router, http: aiohttp.ClientSession
) -> None:
    router.script.steps = [(0, _token("Hi")), (0.05, _token(" there"))]
    router.script.hang = True
    events = await _stream(router, http)
    assert "data: [DONE]" not in events
    assert '"error"' in events[-1] and "node n timed out" in events[-1]
    assert _text(events[:-1]) == "Hi there"  # what came before the gap went out
    assert router.state.metrics.upstream_outcomes() == {"n": {"timeout": 1}}


async def test_a_node_that_keeps_sending_within_the_gap_is_not_cut(
    router: Router, http: aiohttp.ClientSession
) -> None:
    words = ["a", "b", "c", "d"]  # 4 gaps of 2/3 of the timeout: longer than it in all
    router.script.steps = [(GAP_S * 2 / 3, _token(w)) for w in words] + [(0, DONE + b"\n")]
    events = await _stream(router, http)
    assert events[-1] == "data: [DONE]"
    assert _text(events) == "abcd"
    await wait_until(lambda: router.state.metrics.upstream_outcomes() == {"n": {"ok": 1}})


async def test_the_request_timeout_ends_a_steady_stream(
    router: Router, http: aiohttp.ClientSession
) -> None:
    router.script.steps = [(0.2, _token("a")) for _ in range(20)]  # 4 s at a steady pace
    events = await _stream(router, http)
    assert '"error"' in events[-1] and "node n timed out" in events[-1]
    assert 0 < len(_text(events[:-1])) < 20
    assert router.state.metrics.upstream_outcomes() == {"n": {"timeout": 1}}


async def test_a_done_line_without_its_newline_ends_the_answer_well(
    router: Router, http: aiohttp.ClientSession
) -> None:
    router.script.steps = [(0, _token("Hi")), (0, DONE)]  # the body ends right after it
    events = await _stream(router, http)
    assert events[-1] == "data: [DONE]"
    assert _text(events) == "Hi"
    await wait_until(lambda: router.state.metrics.upstream_outcomes() == {"n": {"ok": 1}})
