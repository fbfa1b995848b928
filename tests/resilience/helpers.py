"""What every resilience test checks: a request succeeds, or fails clearly (right status,
OpenAI envelope, Retry-After where it is due), and none hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import openai

MODEL = "ollama/llama3"
REQUEST_BOUND_S = 10.0  # no single request may take longer: a hang fails the test


def messages(text: str = "Tell me a story.") -> list[Any]:
    return [{"role": "user", "content": text}]


async def chat(client: openai.AsyncOpenAI, **kw: Any) -> str:
    kw.setdefault("messages", messages())
    resp = await client.chat.completions.create(model=MODEL, **kw)
    content = resp.choices[0].message.content
    assert content
    return str(content)


async def stream(client: openai.AsyncOpenAI, **kw: Any) -> str:
    kw.setdefault("messages", messages())
    chunks = await client.chat.completions.create(model=MODEL, stream=True, **kw)
    text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    assert text
    return text


@dataclass
class Result:
    ok: bool
    seconds: float
    error: BaseException | None = None


async def timed(call: Awaitable[Any]) -> Result:
    """Run one request within REQUEST_BOUND_S; an SDK error is a result, anything else raises."""
    start = time.perf_counter()
    try:
        await asyncio.wait_for(call, REQUEST_BOUND_S)
    except openai.APIError as exc:
        return Result(False, time.perf_counter() - start, exc)
    return Result(True, time.perf_counter() - start)


def assert_envelope(exc: BaseException | None, status: int, *, retry_after: bool) -> None:
    """An HTTP error with the given status in the OpenAI envelope."""
    assert isinstance(exc, openai.APIStatusError), repr(exc)
    assert exc.status_code == status, (exc.status_code, exc.message)
    body = exc.response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    if retry_after:
        assert int(exc.response.headers["Retry-After"]) >= 0


def assert_stream_error(exc: BaseException | None) -> None:
    """A stream that broke after it started: the SDK read the router's SSE error event."""
    assert isinstance(exc, openai.APIError), repr(exc)
    assert not isinstance(exc, openai.APIStatusError), repr(exc)  # HTTP 200 came first
    assert "stream failed" in exc.message, exc.message
