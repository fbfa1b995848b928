"""The load generator reads Responses and Messages streams as api-reference §5.1/§5.3 frame them
(`event:` + `data:`, typed by `type`), counting one token per text delta. Until the router serves
those APIs, a small aiohttp app writes the documented events; S6 then uses the same reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from benchmarks.loadgen import Load, LoadSpec

TOKENS = 5


def _event(kind: str, **data: object) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), orjson.dumps({"type": kind, **data}))


def _responses() -> list[bytes]:
    deltas = [_event("response.output_text.delta", delta=f"t{i}") for i in range(TOKENS)]
    head = [_event("response.created", response={}), _event("response.in_progress", response={})]
    return [*head, *deltas, _event("response.output_text.done", text="t"),
            _event("response.completed", response={})]  # fmt: skip


def _messages() -> list[bytes]:
    delta = [
        _event("content_block_delta", index=0, delta={"type": "text_delta", "text": f"t{i}"})
        for i in range(TOKENS)
    ]
    start = _event("content_block_start", index=0, content_block={"type": "text", "text": ""})
    return [_event("message_start", message={}), start, b"event: ping\n\n", *delta,
            _event("content_block_stop", index=0), _event("message_stop")]  # fmt: skip


async def _serve(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for event in _responses() if request.path == "/v1/responses" else _messages():
        await resp.write(event)
    return resp


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/responses", _serve)
    app.router.add_post("/v1/messages", _serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize("api", ["responses", "messages"])
async def test_typed_stream_counts_text_deltas(base: str, api: str) -> None:
    spec = LoadSpec([f"{base}/v1/{api}"], api, ["{}"], {}, True, 2, 0.5, TOKENS, max_requests=6)
    res = await asyncio.wait_for(Load(spec).run(), 30)
    assert (res.completed, res.failed, res.errors) == (6, 0, {})
    assert len(res.ttft_ms) == res.requests
