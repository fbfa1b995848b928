"""SSE framing as the OpenAI SDK reads it (api-reference.md 3.3, 3.4, pitfall 19)."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from router.wire import sse
from tests.unit.wire.recorded import chat_encoder, sdk_stream


@pytest.mark.parametrize(
    "payload",
    [b"{}", b'{"a":1}', b'{"text":"line\\nbreak"}', '{"t":"ü"}'.encode()],
    ids=["empty-object", "object", "escaped-newline", "utf8"],
)
def test_event_is_one_data_line_and_a_blank_line(payload: bytes) -> None:
    framed = sse.event(payload)
    assert framed == b"data: " + payload + b"\n\n"
    assert framed.count(b"\n") == 2


def test_the_sdk_stops_reading_at_done(sdk: openai.OpenAI) -> None:
    unread = sse.event(b"not json")  # the SDK would raise on this if it read past DONE
    received = sdk_stream(sdk, ChatCompletionChunk, chat_encoder().start() + sse.DONE + unread)
    assert [c.choices[0].delta.role for c in received] == ["assistant"]


def test_headers_announce_an_unbuffered_event_stream() -> None:
    assert sse.HEADERS["Content-Type"] == "text/event-stream"
    assert sse.HEADERS["Cache-Control"] == "no-cache"
    assert sse.HEADERS["X-Accel-Buffering"] == "no"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("node gpu-a failed",),
            {"message": "node gpu-a failed", "type": "server_error", "param": None, "code": None},
        ),
        (
            ("too slow", "timeout_error", "upstream_timeout"),
            {
                "message": "too slow",
                "type": "timeout_error",
                "param": None,
                "code": "upstream_timeout",
            },
        ),
        (
            ('two\nlines "quoted"',),
            {"message": 'two\nlines "quoted"', "type": "server_error", "param": None, "code": None},
        ),
    ],
    ids=["default", "type-and-code", "newline-and-quotes"],
)
def test_error_event_is_the_openai_envelope(
    args: tuple[str, ...], expected: dict[str, object]
) -> None:
    framed = sse.error_event(*args)
    assert framed.startswith(b"data: ")
    assert framed.endswith(b"\n\n")
    assert framed.count(b"\n") == 2  # a newline in the message must not split the event
    assert json.loads(framed[len(b"data: ") : -2]) == {"error": expected}
