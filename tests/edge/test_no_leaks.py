"""No answer names the server's software, and none (nor the logs) echoes an API key or a stack
trace, whatever the client got wrong and wherever it put its key."""

from __future__ import annotations

import logging

import pytest

from router.config import ServerConfig
from tests.conftest import Router, RouterFactory
from tests.edge.raw import parse, send

BAD_KEY = "jrv_" + "S3cretKeyMaterial" * 3  # looks like a key, is none


def _head(method: str, path: str, auth: str, extra: str = "", length: int = 0) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: Bearer {auth}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def _post(path: str, auth: str, body: bytes, extra: str = "") -> bytes:
    return _head("POST", path, auth, extra, len(body)) + body


def _cases(key: str) -> dict[str, tuple[bytes, int]]:
    """What a client might send, with the key in it somewhere, and the status it gets."""
    chat = b'{"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}]}'
    keyed = f"X-Request-ID: {key}\r\nX-Api-Key: {key}\r\nApi-Key: {key}\r\nCookie: k={key}\r\n"
    return {
        "ok": (_post("/v1/chat/completions", key, chat, keyed), 200),
        "wrong key": (_head("GET", "/v1/models", BAD_KEY, keyed), 401),
        "key as request id": (_head("GET", "/v1/models", key, f"X-Request-ID: {key}\r\n"), 200),
        "unknown path": (_head("GET", "/v1/nothing", key, keyed), 404),
        "wrong method": (_head("DELETE", "/v1/models", key, keyed), 405),
        "bad json": (_post("/v1/chat/completions", key, b"{nope", keyed), 400),
        "unknown model": (
            _post("/v1/chat/completions", key, chat.replace(b"llama3", b"nope"), keyed),
            404,
        ),
        "too deep": (
            _post("/v1/chat/completions", key, b'{"x": ' + b"[" * 100 + b"]" * 100 + b"}"),
            400,
        ),
        "too large": (_post("/v1/chat/completions", key, b" " * 5000, keyed), 413),
        "body never comes": (_head("POST", "/v1/chat/completions", key, keyed, 100), 408),
        "header too long": (_head("GET", "/v1/models", key + "x" * 9000), 431),
        "key as request line": (f"{key} {key}\r\n\r\n".encode(), 400),
    }


@pytest.fixture
async def strict(make_router: RouterFactory) -> Router:
    return await make_router(server=ServerConfig(max_body_bytes=4096, body_timeout_s=0.5))


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


@pytest.mark.parametrize("case", list(_cases("k")), ids=str)
async def test_no_key_banner_or_traceback_in_any_answer(
    strict: Router, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG)
    data, status = _cases(strict.key)[case]
    raw = await send(strict, data)
    answer = parse(raw)
    assert answer.status == status
    assert answer.headers["server"] == "jarvis-router"
    for secret in (strict.key, BAD_KEY, strict.key[4:16], BAD_KEY[4:16]):
        assert secret.encode() not in raw
        assert secret not in _logged(caplog)
    for banner in (b"aiohttp", b"Python", b"Traceback"):
        assert banner not in raw
    if status >= 400:
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    if status not in (400, 431) or case in ("bad json", "too deep"):
        # The request log has the request (and no key, checked above).
        assert any(r.name == "jarvis.request" for r in caplog.records)


@pytest.mark.parametrize(
    "credentials",
    [b"Authorization: Bearer jrv_\xfc\xff\xfe", b"x-api-key: jrv_\xc3\x28secret"],
    ids=["bearer", "x-api-key"],
)
async def test_a_key_that_is_not_utf8_is_401_not_500(router: Router, credentials: bytes) -> None:
    """Header bytes that are not UTF-8 (hypothesis found this one): refused like any wrong
    key, in the envelope, with nothing of them echoed."""
    body = b'{"model":"llama3","messages":[{"role":"user","content":"hi"}]}'
    raw = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + credentials
        + b"\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    answer = parse(await send(router, raw))
    assert answer.status == 401, answer.body
    error = answer.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert b"secret" not in answer.body and b"\xfc" not in answer.head + answer.body
