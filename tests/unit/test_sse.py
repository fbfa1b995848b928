"""SSE framing as the OpenAI SDK reads it (api-reference.md 3.3, 3.4, pitfall 19)."""

from __future__ import annotations

import json

import pytest

from router.wire import sse


@pytest.mark.parametrize(
    "payload",
    [b"{}", b'{"a":1}', b'{"text":"line\\nbreak"}', '{"t":"ü"}'.encode()],
    ids=["empty-object", "object", "escaped-newline", "utf8"],
)
def test_event_is_one_data_line_and_a_blank_line(payload: bytes) -> None:
    framed = sse.event(payload)
    assert framed == b"data: " + payload + b"\n\n"
    assert framed.count(b"\n") == 2


def test_done_is_the_sentinel_the_sdk_stops_at() -> None:
    assert sse.DONE == b"data: [DONE]\n\n"


def test_keepalive_is_a_comment_not_an_event() -> None:
    # event:/id:/retry: lines would make the SDK raise a bare JSONDecodeError
    assert sse.KEEPALIVE.startswith(b":")
    assert sse.KEEPALIVE.endswith(b"\n\n")
    assert b"data:" not in sse.KEEPALIVE


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
