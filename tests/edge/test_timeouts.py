"""Slow and idle clients (slowloris): each is answered 408 or closed within its timeout, and the
router serves good requests afterwards with no node slot taken."""

from __future__ import annotations

import asyncio

import pytest

from router.config import ServerConfig
from tests.conftest import Router, RouterFactory
from tests.edge.raw import connect, parse, read_to_close, request

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = b'{"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}]}'
# One short timeout at a time, the others long: each test shows the one it is about.
SHORT = ServerConfig(header_timeout_s=60, body_timeout_s=0.5, keepalive_timeout_s=60)
SHORT_HEAD = ServerConfig(header_timeout_s=0.5, body_timeout_s=60, keepalive_timeout_s=60)
SHORT_IDLE = ServerConfig(header_timeout_s=60, body_timeout_s=60, keepalive_timeout_s=0.5)


@pytest.fixture
async def short(make_router: RouterFactory) -> Router:
    return await make_router(server=SHORT)


@pytest.fixture
async def short_head(make_router: RouterFactory) -> Router:
    return await make_router(server=SHORT_HEAD)


async def _still_serves(router: Router) -> None:
    answer = await router.client().chat.completions.create(model="ollama/llama3", messages=MESSAGES)
    assert answer.choices[0].message.content


async def test_body_shorter_than_its_length_is_408_then_closed(short: Router) -> None:
    reader, writer = await connect(short)
    data = request(short, "POST", "/v1/chat/completions", CHAT)
    writer.write(data[:-10])  # the last 10 bytes of the body never come
    answer = parse(await read_to_close(reader))
    writer.close()
    assert answer.status == 408
    assert answer.json()["error"]["code"] == "request_timeout"
    assert answer.json()["error"]["type"] == "invalid_request_error"
    await _still_serves(short)


async def test_chunked_body_that_never_ends_is_408_then_closed(short: Router) -> None:
    reader, writer = await connect(short)
    head = request(short, "POST", "/v1/chat/completions").replace(
        b"Content-Length: 0", b"Transfer-Encoding: chunked"
    )
    writer.write(head + b"10\r\n" + CHAT[:16] + b"\r\n")  # one chunk, then nothing
    raw = await read_to_close(reader)
    writer.close()
    assert parse(raw).status == 408
    await _still_serves(short)


async def test_a_keep_alive_client_that_stalls_mid_body_is_cut_off(short: Router) -> None:
    """The connection closes after the 408, even though the client asked to keep it."""
    reader, writer = await connect(short)
    data = request(short, "POST", "/v1/chat/completions", CHAT).replace(
        b"Connection: close", b"Connection: keep-alive"
    )
    writer.write(data[:-1])
    raw = await read_to_close(reader)  # fails if the connection stays open
    writer.close()
    assert parse(raw).status == 408


async def test_200_half_heads_are_all_closed(short_head: Router) -> None:
    short = short_head
    conns = [await connect(short) for _ in range(200)]
    for _, writer in conns:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    try:
        # Each sees the close (EOF, nothing answered) within the bounded wait.
        answers = await asyncio.gather(*(read_to_close(r, 10.0) for r, _ in conns))
    finally:
        for _, writer in conns:
            writer.close()
    assert answers == [b""] * 200
    await _still_serves(short)


async def test_a_connection_that_sends_nothing_is_closed(short_head: Router) -> None:
    reader, writer = await connect(short_head)
    assert await read_to_close(reader) == b""
    writer.close()


async def test_a_head_dribbled_within_the_timeout_is_served(make_router: RouterFactory) -> None:
    router = await make_router(server=ServerConfig(header_timeout_s=5.0))
    reader, writer = await connect(router)
    data = request(router, "GET", "/v1/models")
    for i in range(0, len(data), 40):
        writer.write(data[i : i + 40])
        await asyncio.sleep(0.01)
    answer = parse(await read_to_close(reader))
    writer.close()
    assert answer.status == 200


async def test_idle_keep_alive_connection_is_closed(make_router: RouterFactory) -> None:
    router = await make_router(server=SHORT_IDLE)
    reader, writer = await connect(router)
    writer.write(
        request(router, "GET", "/v1/models").replace(
            b"Connection: close", b"Connection: keep-alive"
        )
    )
    # The answer comes and the connection stays open for the next request, then, idle, closes.
    raw = await read_to_close(reader)
    writer.close()
    assert parse(raw).status == 200


@pytest.mark.parametrize("pause_s", [0.0, 0.7])
async def test_a_keep_alive_connections_next_head_that_stalls_is_closed(
    short_head: Router, pause_s: float
) -> None:
    # A head after an answer on the same connection is due as the first one was: whether it
    # starts before the connection's first deadline (0.0) or after it passed (0.7).
    reader, writer = await connect(short_head)
    writer.write(
        request(short_head, "GET", "/healthz").replace(
            b"Connection: close", b"Connection: keep-alive"
        )
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(parse(head).headers["content-length"])
    await asyncio.wait_for(reader.readexactly(length), 5)
    await asyncio.sleep(pause_s)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    try:
        assert await read_to_close(reader, 10.0) == b""  # closed, nothing answered
    finally:
        writer.close()
    assert parse(head).status == 200
    await _still_serves(short_head)
