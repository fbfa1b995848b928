"""The request log: one JSON line per request with the facts an operator needs, never a key or
a prompt; and X-Request-ID from the client (or made) on every response and at the node."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

import router.api.middleware
from router.api.app import create_app, make_runner
from router.api.auth import digest, new_key
from router.config import ApiKeyConfig, FleetConfig, LoggingConfig, NodeConfig
from router.emulator import EmulatedNode, EmulatorConfig
from router.obs.logs import REQUEST_LOGGER, JsonFormatter, TextFormatter
from tests.conftest import Router, RouterFactory, wait_until
from tests.observability.conftest import MESSAGES, MODEL, PACED, SHORT

PROMPT = MESSAGES[0]["content"]
FIELDS = {
    "time",
    "level",
    "logger",
    "message",
    "request_id",
    "key_name",
    "endpoint",
    "api",
    "model",
    "node",
    "served_model",
    "attempts",
    "stream",
    "status",
    "ttft_ms",
    "duration_ms",
    "prompt_tokens",
    "completion_tokens",
    "client_disconnected",
    "error",
}


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    records = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    return [orjson.loads(formatter.format(r)) for r in records]


async def _post(
    http: aiohttp.ClientSession, router: Router, body: dict[str, Any], **headers: str
) -> tuple[int, dict[str, str], bytes]:
    async with http.post(
        router.url + "/v1/chat/completions",
        json=body,
        headers={**router.headers(), **headers},
    ) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_one_json_line_per_request_with_every_field_and_no_secret(
    make_router: RouterFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    router = await make_router({"node-a": PACED})
    stream = {"model": MODEL, "messages": MESSAGES, "max_tokens": SHORT, "stream": True}
    status, headers, raw = await _post(http, router, stream, **{"X-Request-ID": "trace-42"})
    assert status == 200 and headers["X-Request-ID"] == "trace-42"
    usage = {"model": MODEL, "messages": MESSAGES, "max_tokens": SHORT}
    status, _, whole = await _post(http, router, usage)
    answer = orjson.loads(whole)
    status_404, _, _ = await _post(http, router, {"model": "ollama/nope", "messages": MESSAGES})
    assert (status, status_404) == (200, 404)

    await wait_until(lambda: len(_lines(caplog)) == 3)
    first, second, third = _lines(caplog)
    for line in (first, second, third):
        assert set(line) == FIELDS
        assert line["logger"] == REQUEST_LOGGER and line["key_name"] == "test"
        assert line["endpoint"] == "/chat/completions" and line["api"] == "chat"
        text = orjson.dumps(line).decode()
        assert router.key not in text and PROMPT not in text
    assert first["request_id"] == "trace-42"
    assert first["stream"] is True and first["status"] == 200 and first["attempts"] == 1
    assert first["node"] == "node-a" and first["model"] == MODEL
    assert 0 < first["ttft_ms"] <= first["duration_ms"]
    assert first["completion_tokens"] == SHORT and first["prompt_tokens"] > 0
    assert first["client_disconnected"] is False and first["error"] is None
    assert b"data: [DONE]" in raw
    # Non-streamed answers have a time to first token too: the router streams from the node.
    assert second["stream"] is False and 0 < second["ttft_ms"] <= second["duration_ms"]
    assert second["prompt_tokens"] == answer["usage"]["prompt_tokens"]
    assert second["completion_tokens"] == answer["usage"]["completion_tokens"]
    assert re.fullmatch(r"[0-9a-f]{32}", second["request_id"])
    assert third["status"] == 404 and third["model"] == "ollama/nope" and third["node"] is None
    assert third["error"] == "http_404"


async def test_a_client_that_hangs_up_is_logged_as_disconnected(
    make_router: RouterFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    router = await make_router({"node-a": PACED})
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    resp = await http.post(router.url + "/v1/chat/completions", json=body, headers=router.headers())
    await resp.content.readuntil(b"\n\n")
    await resp.content.readuntil(b"\n\n")
    resp.close()
    await wait_until(lambda: len(_lines(caplog)) == 1)
    (line,) = _lines(caplog)
    assert line["client_disconnected"] is True and line["status"] == 499
    assert line["ttft_ms"] is not None and line["completion_tokens"] == 0


async def test_text_format_carries_the_same_fields(
    make_router: RouterFactory, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    router = await make_router({"node-a": PACED})
    await _post(http, router, {"model": MODEL, "messages": MESSAGES, "max_tokens": SHORT})
    await wait_until(lambda: len(_lines(caplog)) == 1)
    record = next(r for r in caplog.records if r.name == REQUEST_LOGGER)
    line = TextFormatter().format(record)
    assert " INFO jarvis.request request " in line
    assert "key_name=test" in line and "status=200" in line and "node=node-a" in line
    assert router.key not in line and PROMPT not in line


@pytest.mark.parametrize(
    "config",
    [LoggingConfig(level="info", access_log=False), None],
    ids=["access-log-off", "logger-at-warning"],
)
async def test_no_line_is_built_when_request_logging_is_off(
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    config: LoggingConfig | None,
) -> None:
    built: list[object] = []
    real = router.api.middleware.request_fields

    def spy(*args: Any) -> dict[str, Any]:
        built.append(args)
        return real(*args)

    monkeypatch.setattr(router.api.middleware, "request_fields", spy)
    if config is None:
        caplog.set_level(logging.WARNING, logger=REQUEST_LOGGER)
        jarvis = await make_router({"node-a": PACED})
    else:
        caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
        jarvis = await make_router({"node-a": PACED}, logging=config)
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": SHORT}
    status, _, _ = await _post(http, jarvis, body)
    assert status == 200
    assert built == [] and _lines(caplog) == []


# -- X-Request-ID ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "auth"),
    [
        ("GET", "/v1/models", True),
        ("GET", "/v1/models", False),  # 401
        ("GET", "/v1/no-such-path", True),  # 404
        ("GET", "/metrics", False),
        ("GET", "/status", False),
    ],
    ids=["ok", "unauthorized", "unknown-url", "metrics", "status"],
)
async def test_every_response_carries_the_request_id(
    router: Router, http: aiohttp.ClientSession, method: str, path: str, auth: bool
) -> None:
    headers = router.headers() if auth else {}
    async with http.request(
        method, router.url + path, headers={**headers, "X-Request-ID": "abc.123"}
    ) as resp:
        assert resp.headers["X-Request-ID"] == "abc.123"
    async with http.request(method, router.url + path, headers=headers) as resp:
        minted = resp.headers["X-Request-ID"]
    async with http.request(
        method, router.url + path, headers={**headers, "X-Request-ID": "no spaces <allowed>"}
    ) as resp:
        replaced = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", minted) and re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert minted != replaced


@pytest.fixture
async def recording_router() -> AsyncIterator[tuple[str, str, list[dict[str, str]]]]:
    """A router whose only node is an emulated node behind a proxy that records headers."""
    seen: list[dict[str, str]] = []
    async with (
        EmulatedNode(EmulatorConfig(models=("llama3",)), name="real") as node,
        aiohttp.ClientSession() as upstream,
    ):

        async def forward(request: web.Request) -> web.Response:
            if request.path not in ("/api/tags", "/api/ps"):  # health checks
                seen.append(dict(request.headers))
            async with upstream.request(
                request.method, node.url + request.path, data=await request.read()
            ) as resp:
                body, kind = await resp.read(), resp.headers["Content-Type"]
            return web.Response(status=resp.status, body=body, headers={"Content-Type": kind})

        proxy = web.Application()
        proxy.router.add_route("*", "/{path:.*}", forward)
        proxy_runner = web.AppRunner(proxy)
        await proxy_runner.setup()
        await web.TCPSite(proxy_runner, "127.0.0.1", 0).start()
        key = new_key()
        proxy_url = f"http://127.0.0.1:{proxy_runner.addresses[0][1]}"
        config = FleetConfig(
            nodes=(NodeConfig("rec", proxy_url),), api_keys=(ApiKeyConfig("t", digest(key)),)
        )
        runner = make_runner(create_app(config, rng=random.Random(1)), shutdown_grace_s=1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}", key, seen
        finally:
            await runner.cleanup()
            await proxy_runner.cleanup()


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_the_node_receives_the_request_id(
    recording_router: tuple[str, str, list[dict[str, str]]],
    http: aiohttp.ClientSession,
    stream: bool,
) -> None:
    url, key, seen = recording_router
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": SHORT, "stream": stream}
    for given in ("client-id-1", None):
        headers = {"Authorization": f"Bearer {key}"}
        if given:
            headers["X-Request-ID"] = given
        async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
            assert resp.status == 200
            returned = resp.headers["X-Request-ID"]
            await resp.read()
        assert seen[-1]["X-Request-ID"] == returned == (given or returned)
    assert len(seen) == 2
