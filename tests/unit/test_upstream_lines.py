"""`router.upstream.lines`: a read's complete lines (blank ones skipped, a partial one kept for
the next read); `parse_lines`: up to the done line, a bad line returned as the error after the
good lines before it; `has_token`: which lines start the time to first token."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiohttp
import pytest

from router.config import NodeConfig
from router.fleet.registry import NodeState
from router.upstream.lines import LineReader, has_token
from router.upstream.outcome import Outcome, UpstreamError

TOKEN = b'{"message":{"content":"a"},"done":false}'
DONE = b'{"done":true,"eval_count":1}'


@pytest.mark.parametrize(
    ("raws", "good", "outcome", "message"),
    [
        ([TOKEN, TOKEN], 2, None, None),
        ([TOKEN, DONE, b"not json"], 2, None, None),  # nothing after done is read
        ([TOKEN, b"{nope", TOKEN], 1, Outcome.PROTOCOL_ERROR, "node n sent invalid JSON"),
        ([b"[1]"], 0, Outcome.PROTOCOL_ERROR, "node n sent a non-object line"),
        ([TOKEN, b'{"error":"boom"}'], 1, Outcome.STREAM_ERROR, "node n failed: boom"),
        ([], 0, None, None),
        ([TOKEN], 1, None, None),
        ([b"{nope"], 0, Outcome.PROTOCOL_ERROR, "node n sent invalid JSON"),
        ([b'{"error":"boom"}'], 0, Outcome.STREAM_ERROR, "node n failed: boom"),
    ],
    ids=[
        "tokens",
        "stops-at-done",
        "invalid-json",
        "not-an-object",
        "error-line",
        "empty",
        "one-token",
        "one-invalid",
        "one-error",
    ],
)
async def test_parse_lines(
    raws: list[bytes], good: int, outcome: Outcome | None, message: str | None
) -> None:
    reader = LineReader(cast(Any, None), NodeState(NodeConfig("n", "http://127.0.0.1:1")))
    lines, error = reader.parse_lines(raws)
    assert len(lines) == good and all(isinstance(line, dict) for line in lines)
    assert (error and error.outcome) == outcome
    assert (error and error.message) == message


class _Protocol:
    """What aiohttp's body buffer asks of its connection (a buffer fed by hand has none)."""

    connected = True
    _reading_paused = False

    def pause_reading(self) -> None: ...

    def resume_reading(self, **kw: Any) -> None: ...


class _Response:
    def __init__(self, chunks: list[bytes], *, end: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self.content = aiohttp.StreamReader(cast(Any, _Protocol()), 2**16, loop=loop)
        for chunk in chunks:
            self.content.feed_data(chunk)
        if end:
            self.content.feed_eof()

    def close(self) -> None: ...


def _reader(resp: _Response) -> LineReader:
    return LineReader(cast(Any, resp), NodeState(NodeConfig("n", "http://127.0.0.1:1")))


@pytest.mark.parametrize(
    ("chunks", "reads"),
    [
        ([TOKEN + b"\n"], [[TOKEN]]),
        ([TOKEN + b"\n" + DONE + b"\n"], [[TOKEN, DONE]]),
        ([b"\n", b" \r\n", TOKEN + b"\n"], [[TOKEN]]),
        ([TOKEN + b"\n\n" + DONE + b"\n"], [[TOKEN, DONE]]),
        ([TOKEN + b"\n" + DONE[:4]], [[TOKEN], [DONE[:4]]]),  # judged by parse_lines
        ([DONE], [[DONE]]),  # `stream: false`: one object, no newline
        ([TOKEN + b"\n \r"], [[TOKEN]]),  # a blank end is no line
    ],
    ids=[
        "one-line",
        "two-lines",
        "blank-lines",
        "blank-between",
        "partial-end",
        "one-object",
        "blank-end",
    ],
)
async def test_lines(chunks: list[bytes], reads: list[list[bytes]]) -> None:
    reader = _reader(_Response(chunks))
    for expected in reads:
        assert await reader.lines() == expected
    assert await reader.lines() == []  # the end of the body


async def test_a_line_split_across_reads_waits_for_its_end() -> None:
    resp = _Response([TOKEN[:5]], end=False)
    reader = _reader(resp)
    read = asyncio.create_task(reader.lines())
    await asyncio.sleep(0.01)
    assert not read.done()  # half a line is not a line
    resp.content.feed_data(TOKEN[5:] + b"\n" + DONE[:3])
    assert await asyncio.wait_for(read, 5.0) == [TOKEN]
    resp.content.feed_data(DONE[3:] + b"\n")
    resp.content.feed_eof()
    assert await reader.lines() == [DONE]


def _far() -> float:
    return asyncio.get_running_loop().time() + 60.0


async def test_a_silent_node_times_out() -> None:
    reader = _reader(_Response([], end=False))
    reader.watch(0.01, _far())
    with pytest.raises(UpstreamError) as info:
        await asyncio.wait_for(reader.lines(), 5.0)
    assert (info.value.outcome, info.value.message) == (Outcome.TIMEOUT, "node n timed out")


async def test_a_node_that_keeps_sending_does_not_time_out() -> None:
    resp = _Response([], end=False)
    reader = _reader(resp)
    reader.watch(0.05, _far())
    for _ in range(6):  # 6 reads of 0.02 s each: longer than the gap in all, never in one
        read = asyncio.create_task(reader.lines())
        await asyncio.sleep(0.02)
        resp.content.feed_data(TOKEN + b"\n")
        assert await asyncio.wait_for(read, 5.0) == [TOKEN]
    reader.close()


async def test_once_unwatched_a_read_waits_as_long_as_it_takes() -> None:
    resp = _Response([], end=False)
    reader = _reader(resp)
    reader.watch(0.01, _far())
    reader.unwatch()  # the done line arrived: nothing left to time
    read = asyncio.create_task(reader.lines())
    await asyncio.sleep(0.05)
    assert not read.done()
    resp.content.feed_data(TOKEN + b"\n")
    assert await asyncio.wait_for(read, 5.0) == [TOKEN]


async def test_time_without_a_read_waiting_is_not_the_nodes() -> None:
    """A relay blocked writing to a slow client reads nothing, and the node is not to blame."""
    resp = _Response([TOKEN + b"\n"], end=False)
    reader = _reader(resp)
    reader.watch(0.01, _far())
    await asyncio.sleep(0.05)  # nobody reads: the watchdog fires and finds no read waiting
    assert await asyncio.wait_for(reader.lines(), 5.0) == [TOKEN]
    reader.close()


async def test_the_request_timeout_ends_even_a_steady_answer() -> None:
    resp = _Response([], end=False)
    reader = _reader(resp)
    reader.watch(1.0, asyncio.get_running_loop().time() + 0.03)
    await asyncio.sleep(0.05)
    resp.content.feed_data(TOKEN + b"\n")  # data waits in the buffer: the deadline passed
    with pytest.raises(UpstreamError) as info:
        await asyncio.wait_for(reader.lines(), 5.0)
    assert info.value.outcome is Outcome.TIMEOUT


@pytest.mark.parametrize(
    ("line", "token"),
    [
        ({"message": {"role": "assistant", "content": "a"}, "done": False}, True),
        ({"message": {"role": "assistant", "content": ""}, "done": False}, False),
        ({"message": {"role": "assistant", "thinking": "hm"}, "done": False}, True),
        ({"message": {"role": "assistant", "tool_calls": [{"function": {}}]}}, True),
        ({"response": "a", "done": False}, True),
        ({"response": "", "thinking": "hm", "done": False}, True),
        ({"response": "", "done": True, "eval_count": 3}, False),
    ],
    ids=[
        "chat-text",
        "chat-empty",
        "chat-thinking",
        "chat-tools",
        "gen-text",
        "gen-thinking",
        "gen-done",
    ],
)
def test_has_token(line: dict[str, Any], token: bool) -> None:
    assert has_token([line]) is token
    assert has_token([{"done": False}, line]) is token
