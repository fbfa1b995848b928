"""Each size limit trips with a clean 4xx in the OpenAI envelope, and nothing is echoed."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from router.config import ServerConfig
from tests.conftest import Router, RouterFactory
from tests.edge.raw import parse, request, send

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
SMALL = ServerConfig(
    max_messages=5, max_request_line_bytes=1024, max_header_bytes=1024, max_headers=20
)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _envelope(body: bytes) -> dict[str, Any]:
    error = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert "Traceback" not in error["message"]
    return dict(error)


@pytest.fixture
async def small(make_router: RouterFactory) -> Router:
    return await make_router(server=SMALL)


@pytest.mark.parametrize(
    "depth", [65, 300, 2000], ids=["just-over", "past-orjson-dumps", "past-orjson-loads"]
)
async def test_json_nested_too_deep_is_400(router: Router, http: Any, depth: int) -> None:
    # Raw bytes: the SDK's own encoder cannot write 2000 levels.
    body = b'{"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}], '
    body += b'"metadata": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
    async with http.post(
        router.url + "/v1/chat/completions", data=body, headers=router.headers()
    ) as resp:
        assert resp.status == 400
        error = _envelope(await resp.read())
    assert error["code"] == "json_too_deep"
    assert "64" in error["message"]


async def test_json_nested_to_the_limit_is_served(router: Router) -> None:
    # The body object and `metadata` count: 62 more arrays make 64 levels.
    answer = await router.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, extra_body={"metadata": {"x": _nested(61)}}
    )
    assert answer.choices[0].message.content


async def test_brackets_inside_strings_are_not_nesting(router: Router) -> None:
    content = "[" * 500 + "{" * 500 + '"\\' * 100
    answer = await router.client().chat.completions.create(
        model="ollama/llama3", messages=[{"role": "user", "content": content}]
    )
    assert answer.choices[0].message.content


async def test_too_many_messages_is_400(small: Router) -> None:
    messages = MESSAGES * 6
    with pytest.raises(openai.BadRequestError) as info:
        await small.client().chat.completions.create(model="ollama/llama3", messages=messages)
    assert info.value.code == "array_above_max_length"
    assert info.value.param == "messages"
    answer = await small.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES * 5
    )
    assert answer.choices[0].message.content


async def test_request_line_too_long_is_431(small: Router) -> None:
    path = "/v1/models?q=" + "secretish" * 200
    answer = parse(await send(small, request(small, "GET", path)))
    assert answer.status == 431
    assert _envelope(answer.body)["code"] == "request_header_fields_too_large"
    assert b"secretish" not in answer.head + answer.body


async def test_header_too_long_is_431(small: Router) -> None:
    extra = "X-Note: " + "secretish" * 200 + "\r\n"
    answer = parse(await send(small, request(small, "GET", "/v1/models", extra=extra)))
    assert answer.status == 431
    _envelope(answer.body)
    assert b"secretish" not in answer.head + answer.body


async def test_too_many_headers_is_431(small: Router) -> None:
    extra = "".join(f"X-H{i}: v\r\n" for i in range(30))
    answer = parse(await send(small, request(small, "GET", "/v1/models", extra=extra)))
    assert answer.status == 431
    _envelope(answer.body)


async def test_headers_within_the_limits_are_served(small: Router) -> None:
    extra = "".join(f"X-H{i}: {'v' * 100}\r\n" for i in range(10))
    answer = parse(await send(small, request(small, "GET", "/v1/models", extra=extra)))
    assert answer.status == 200


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ],
    ids=["no-http", "bad-version", "tls-hello"],
)
async def test_not_http_is_400_in_the_envelope(router: Router, data: bytes) -> None:
    raw = await send(router, data)
    answer = parse(raw)
    assert answer.status == 400
    assert _envelope(answer.body)["code"] == "invalid_request"
    assert answer.headers["server"] == "jarvis-router"


async def test_broken_chunked_body_is_400(router: Router) -> None:
    head = request(router, "POST", "/v1/chat/completions").replace(
        b"Content-Length: 0", b"Transfer-Encoding: chunked"
    )
    answer = parse(await send(router, head + b"zz\r\nnot a chunk\r\n"))
    assert answer.status == 400
    _envelope(answer.body)
