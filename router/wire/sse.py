"""Server-sent events as the OpenAI SDKs read them (api-reference.md 3.3, 3.4, pitfall 19).

Only `data:` lines and blank-line separators: an `event:`/`id:`/`retry:` field would make the
Python SDK raise a bare JSONDecodeError.
"""

from __future__ import annotations

import orjson

HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # Stop nginx-style proxies from buffering the stream.
    "X-Accel-Buffering": "no",
}
DONE = b"data: [DONE]\n\n"


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> bytes:
    """OpenAI's error object: the body of an error answer, and of a stream's error event."""
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


def event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def error_event(message: str, type_: str = "server_error", code: str | None = None) -> bytes:
    """The SDK raises `openai.APIError` with this message when it reads the event."""
    return event(error_body(message, type_, None, code))
