"""Recorded Ollama answers and how the handler replays them through an encoder.

The lines are in `tests/fixtures/ollama/*.ndjson` (written from api-reference.md
1.5/1.6/1.11). A stream is replayed the way the handler feeds it: `start()`, `feed(line)` for
every line including the done line, then `finish(done_line)`. Ids the router makes come from
`counting_ids()`, so tests compare them exactly.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import openai

from router.ids import Ids
from router.wire import sse
from router.wire.to_openai import ChatStream, CompletionStream, Usage

OLLAMA = Path(__file__).resolve().parents[2] / "fixtures" / "ollama"
ID, CREATED = "chatcmpl-0123456789abcdef", 1733000000


def counting_ids() -> Ids:
    """`call_1`, `call_2`, ...: what the router's random ids stand for in a test."""
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}{next(counter)}"


def chat_encoder(include_usage: bool = False, model: str = "m") -> ChatStream:
    return ChatStream(model, ID, CREATED, include_usage, ids=counting_ids())


def lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (OLLAMA / name).read_text().splitlines() if line]


def body(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OLLAMA / name).read_text())
    return data


def replay(
    encoder: ChatStream | CompletionStream, ollama_lines: list[dict[str, Any]]
) -> tuple[bytes, Usage]:
    """What the handler writes for these upstream lines."""
    out = encoder.start()
    for line in ollama_lines:
        out += encoder.feed(line)
        if line.get("done"):
            tail, usage = encoder.finish(line)
            return out + tail, usage
    raise AssertionError("the fixture has no done line")


def frames(stream: bytes) -> list[bytes]:
    """The data of every SSE event, checking the framing the SDK relies on."""
    assert stream.endswith(b"\n\n")
    events = stream[:-2].split(b"\n\n")
    for event in events:
        assert event.startswith(b"data: "), event
        assert b"\n" not in event and b"\r" not in event, event
    data = [event[len(b"data: ") :] for event in events]
    assert data[-1] == b"[DONE]"
    assert data.count(b"[DONE]") == 1
    return data[:-1]


def chunks(stream: bytes) -> list[dict[str, Any]]:
    parsed = []
    for data in frames(stream):
        chunk = json.loads(data)
        assert isinstance(chunk, dict)
        parsed.append(chunk)
    return parsed


@dataclass(frozen=True)
class Expected:
    content: str
    finish: str
    usage: tuple[int, int]
    reasoning: str = ""
    # (id: as sent by Ollama, or made by `counting_ids()` when it sent none; name; arguments)
    tool_calls: tuple[tuple[str, str, dict[str, Any]], ...] = ()


CHAT_STREAMS = {
    "chat-stream.ndjson": Expected("The sky is blue.", "stop", (26, 282)),
    "chat-done-content.ndjson": Expected("Hello there!", "stop", (12, 3)),
    "chat-length.ndjson": Expected("Once upon", "length", (9, 2)),
    "chat-no-metrics.ndjson": Expected("ok", "stop", (0, 0)),
    "chat-thinking.ndjson": Expected(
        "42", "stop", (20, 7), reasoning="Let me think. Six times seven."
    ),
    "chat-tools-rendered.ndjson": Expected(
        "",
        "tool_calls",
        (140, 18),
        tool_calls=(("call_k3j9x0qz", "get_weather", {"city": "Tokyo"}),),
    ),
    "chat-tools-native.ndjson": Expected(
        "",
        "tool_calls",
        (151, 41),
        tool_calls=(
            ("call_1", "get_weather", {"city": "Tokyo", "unit": "celsius"}),
            ("call_2", "get_time", {"tz": "Asia/Tokyo"}),
        ),
    ),
}
COMPLETION_STREAMS = {
    "generate-stream.ndjson": Expected("The sky is blue.", "stop", (26, 259)),
    "generate-length.ndjson": Expected("Once upon", "length", (5, 2)),
    "generate-no-metrics.ndjson": Expected("ok", "stop", (0, 0)),
}
USAGE = [True, False]
USAGE_IDS = ["with-usage", "without-usage"]


def chat_stream(
    name: str, include_usage: bool, model: str = "ollama/llama3"
) -> tuple[bytes, Usage]:
    return replay(chat_encoder(include_usage, model), lines(name))


def completion_stream(name: str, include_usage: bool) -> tuple[bytes, Usage]:
    encoder = CompletionStream("ollama/llama3", "cmpl-42", CREATED, include_usage)
    return replay(encoder, lines(name))


def content_of(chunk: dict[str, Any]) -> str:
    return "".join(c["delta"].get("content") or "" for c in chunk["choices"])


def sdk_events(client: openai.OpenAI, cast_to: type[Any], data: bytes) -> Iterator[Any]:
    """What the OpenAI SDK's own SSE decoder makes of `data`, one event at a time."""
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(200, headers=dict(sse.HEADERS), content=data, request=request)
    return iter(openai.Stream(cast_to=cast_to, response=response, client=client))


def sdk_stream(client: openai.OpenAI, cast_to: type[Any], data: bytes) -> list[Any]:
    return list(sdk_events(client, cast_to, data))
