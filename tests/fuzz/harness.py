"""The running router for property-based tests, and a raw HTTP/1.1 client that can send what
no SDK would.

Hypothesis runs a test function many times with function-scoped fixtures set up once, and
pytest-asyncio gives each test its own loop; so the router (production's runner and edge
listener, in front of emulated nodes) runs on its own loop in a thread, one per test module,
and the tests are plain functions over blocking sockets, every read bounded by `TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from router.api.app import create_app, make_runner
from router.api.auth import digest, new_key
from router.api.edge import start_site
from router.api.state import STATE
from router.config import (
    ApiKeyConfig,
    FleetConfig,
    HealthConfig,
    NodeConfig,
    RoutingConfig,
    ServerConfig,
)
from router.emulator import EmulatedNode, EmulatorConfig

TIMEOUT_S = 10.0  # no answer within this is a hang: the test fails
MODELS = ("llama3", "qwen3", "nomic-embed-text")
# On a node of its own that takes ~2 s per answer: a client can leave in the middle.
SLOW_MODEL = "mistral"
SLOW = EmulatorConfig(models=(SLOW_MODEL,), tokens_per_second=200, default_tokens=400)
# Small limits, so the huge and deep cases trip them without megabytes per example.
SERVER = ServerConfig(
    max_body_bytes=64 * 1024,
    max_messages=200,
    # A body shorter than announced waits this long for the rest: short, so such examples stay
    # cheap (tests/edge checks the timeouts themselves).
    header_timeout_s=1.0,
    body_timeout_s=1.0,
    max_headers=64,
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class LiveRouter:
    port: int
    key: str
    loop: asyncio.AbstractEventLoop
    app: Any
    nodes: list[EmulatedNode]

    def in_flight(self) -> dict[str, int]:
        """Slots held, as the router and as the nodes count them."""
        fleet = self.app[STATE].fleet
        out = {f"router {n}": s.in_flight for n, s in fleet.nodes.items()}
        out.update({f"node {n.name}": n.stats.in_flight for n in self.nodes})
        return out

    def wait_idle(self, timeout_s: float = 5.0) -> None:
        """Every slot comes back: a leaked lease would starve a node forever."""
        deadline = time.monotonic() + timeout_s
        while any(self.in_flight().values()):
            assert time.monotonic() < deadline, f"slots still taken: {self.in_flight()}"
            time.sleep(0.01)


async def _start(stack: contextlib.AsyncExitStack) -> LiveRouter:
    nodes = [
        EmulatedNode(EmulatorConfig(models=MODELS), name="node-a"),
        EmulatedNode(SLOW, name="node-slow"),
    ]
    for node in nodes:
        await node.start()
        stack.push_async_callback(node.stop)
    key = new_key()
    config = FleetConfig(
        nodes=tuple(NodeConfig(n.name, n.url, 4) for n in nodes),
        api_keys=(ApiKeyConfig("fuzz", digest(key)),),
        health=HealthConfig(interval_s=0.5, timeout_s=0.5, refresh_min_interval_s=0.0),
        routing=RoutingConfig(connect_timeout_s=1.0, request_timeout_s=5.0),
        server=SERVER,
    )
    app = create_app(config, rng=random.Random(7))
    runner = make_runner(app, shutdown_grace_s=1.0)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await start_site(runner, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    return LiveRouter(port, key, asyncio.get_running_loop(), app, nodes)


@contextlib.contextmanager
def live_router() -> Iterator[LiveRouter]:
    """The router on a loop in a thread for the block's duration; then every slot must be
    back and the router is shut down."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-router", daemon=True)
    thread.start()
    stack = contextlib.AsyncExitStack()
    try:
        live = asyncio.run_coroutine_threadsafe(_start(stack), loop).result(30)
        yield live
        live.wait_idle()
    finally:
        asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# -- raw HTTP ---------------------------------------------------------------------------------
def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    sock.settimeout(TIMEOUT_S)
    return sock


def head(
    method: str, path: str, headers: list[tuple[str, str]], body: bytes, *, length: bool = True
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def exchange(port: int, data: bytes) -> Answer | None:
    """Send `data`, read until the router closes; None when it closed without an answer
    (a clean close). A read that takes longer than `TIMEOUT_S` raises: a hang."""
    with connect(port) as sock:
        # The router may close first; what it answered is still to be read. No half-close
        # after sending: asyncio closes a connection whose peer sent EOF (aiohttp's
        # `eof_received` keeps nothing open), before any answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    raw = b"".join(chunks)
    return parse(raw) if raw else None


def parse(raw: bytes) -> Answer:
    top, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"an answer without a complete head: {raw[:200]!r}"
    lines = top.decode("latin-1").split("\r\n")
    assert lines[0].startswith(("HTTP/1.1 ", "HTTP/1.0 ")), lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    elif "content-length" in headers:
        assert len(body) == int(headers["content-length"]), "a body shorter than announced"
    return Answer(int(lines[0].split()[1]), headers, body)


def _dechunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        data = rest[size + 2 :]
    return b"".join(out)


def request(
    live: LiveRouter,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    headers: list[tuple[str, str]] | None = None,
    auth: bool = True,
) -> Answer | None:
    extra = list(headers or [])
    if auth:
        extra.append(("Authorization", f"Bearer {live.key}"))
    if body:
        extra.append(("Content-Type", "application/json"))
    return exchange(live.port, head(method, path, extra, body) + body)


# -- what every answer must be ----------------------------------------------------------------
def is_anthropic(path: str) -> bool:
    return path.startswith(("/v1/messages", "/messages"))


def check_error(answer: Answer, path: str) -> None:
    """A well-formed 4xx in the envelope of the API `path` belongs to."""
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    assert answer.headers.get("content-type", "").startswith("application/json")
    body = answer.json()
    if is_anthropic(path) and not _parser_refusal(body):
        assert body["type"] == "error", body
        error = body["error"]
        assert isinstance(error["type"], str) and isinstance(error["message"], str)
    else:
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, body
        assert isinstance(error["message"], str) and isinstance(error["type"], str)
    assert "Traceback" not in error["message"]


def _parser_refusal(body: Any) -> bool:
    """What aiohttp's parser refused (a bad request line or header) never became a request:
    its path is unknown, so the answer is in OpenAI's envelope (`router.api.edge`)."""
    error = body.get("error") if isinstance(body, dict) else None
    codes = ("invalid_request", "request_header_fields_too_large")
    return isinstance(error, dict) and "param" in error and error.get("code") in codes


def check(answer: Answer | None, path: str) -> None:
    """Any answer to a hostile request: a success, a well-formed 4xx, or a clean close;
    never a 5xx."""
    if answer is None:
        return
    assert answer.status < 500, (answer.status, answer.body[:300])
    if answer.status >= 400:
        check_error(answer, path)


def still_serving(live: LiveRouter) -> None:
    """A good request is answered afterwards, and no slot is left taken."""
    body = orjson.dumps({"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}]})
    answer = request(live, "POST", "/v1/chat/completions", body)
    assert answer is not None and answer.status == 200, answer
    assert answer.json()["object"] == "chat.completion"
    live.wait_idle()
