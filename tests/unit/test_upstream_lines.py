"""`router.upstream.lines`: a read's complete lines (blank ones skipped, a partial one kept for
the next read, and returned at the end of the body); `parse_lines`: up to the done line, a bad
line returned as the error after the good lines before it; `has_token`: which lines start the
time to first token."""

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
    ],
    ids=["tokens", "stops-at-done", "invalid-json", "not-an-object", "error-line", "empty"],
)
def test_parse_lines(
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


def _reader(resp: _Response) -> LineReader:
    return LineReader(cast(Any, resp), NodeState(NodeConfig("n", "http://127.0.0.1:1")))


@pytest.mark.parametrize(
    ("chunks", "reads"),
    [
        ([TOKEN + b"\n"], [[TOKEN]]),
        ([TOKEN + b"\n" + DONE + b"\n"], [[TOKEN, DONE]]),
        ([b"\n", b" \r\n", TOKEN + b"\n"], [[TOKEN]]),
        ([TOKEN + b"\n\n" + DONE + b"\n"], [[TOKEN, DONE]]),
        # The body's last line without its newline is still a line (Ollama's `stream: false`
        # answer ends so); cut short, it is invalid JSON, which the parser reports.
        ([TOKEN + b"\n" + DONE[:4]], [[TOKEN], [DONE[:4]]]),
        ([DONE], [[DONE]]),
        ([TOKEN + b"\n \r\n"], [[TOKEN]]),
    ],
    ids=[
        "one-line",
        "two-lines",
        "blank-lines",
        "blank-between",
        "cut-end",
        "no-newline",
        "blank-end",
    ],
)
async def test_lines(chunks: list[bytes], reads: list[list[bytes]]) -> None:
    reader = _reader(_Response(chunks))
    for expected in reads:
        assert await reader.lines(1.0) == expected
    assert await reader.lines(1.0) == []  # the end of the body


async def test_a_line_split_across_reads_waits_for_its_end() -> None:
    resp = _Response([TOKEN[:5]], end=False)
    reader = _reader(resp)
    read = asyncio.create_task(reader.lines(5.0))
    await asyncio.sleep(0.01)
    assert not read.done()  # half a line is not a line
    resp.content.feed_data(TOKEN[5:] + b"\n" + DONE[:3])
    assert await asyncio.wait_for(read, 5.0) == [TOKEN]
    resp.content.feed_data(DONE[3:] + b"\n")
    resp.content.feed_eof()
    assert await reader.lines(5.0) == [DONE]


async def test_a_silent_node_times_out() -> None:
    reader = _reader(_Response([], end=False))
    with pytest.raises(UpstreamError) as info:
        await reader.lines(0.01)
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
