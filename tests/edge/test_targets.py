"""The router only ever connects to the configured node URLs: no model name, path or header
a client sends can make it reach another host or port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from yarl import URL

from tests.conftest import Router, wait_until


class Canary:
    """A listener on another loopback address that counts who connects to it."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    def seen(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    watcher = Canary()
    server = await asyncio.start_server(watcher.seen, "127.0.0.2", 0)
    watcher.port = server.sockets[0].getsockname()[1]
    try:
        yield watcher
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)


def _hostile_models(port: int) -> list[str]:
    where = f"127.0.0.2:{port}"
    return [
        "../../evil",
        "ollama/../../evil",
        f"llama3@{where}/",
        f"ollama/llama3@{where}",
        f"http://{where}/api/chat",
        f"//{where}/x",
        f"llama3\r\nHost: {where}",
        f"llama3#@{where}",
        f"{where}",
    ]


async def test_no_request_reaches_another_host(router: Router, http: Any, canary: Canary) -> None:
    where = f"127.0.0.2:{canary.port}"
    steering = {
        "Host": where,
        "X-Forwarded-Host": where,
        "X-Forwarded-For": "127.0.0.2",
        "X-Forwarded-Proto": "http",
        "Forwarded": f"for=127.0.0.2;host={where}",
        "X-Original-URL": f"http://{where}/",
        "X-Rewrite-URL": f"http://{where}/",
    }
    statuses = []
    for model in _hostile_models(canary.port):
        for stream in (False, True):
            body = {
                "model": model,
                "messages": [{"role": "user", "content": "hi"}],
                "stream": stream,
            }
            async with http.post(
                router.url + "/v1/chat/completions",
                json=body,
                headers={**router.headers(), **steering},
            ) as resp:
                statuses.append((model, resp.status))
                await resp.read()
        async with http.post(
            router.url + "/v1/completions",
            json={"model": model, "prompt": "hi"},
            headers=router.headers(),
        ) as resp:
            statuses.append((model, resp.status))
        async with http.get(
            URL(router.url + "/v1/models/" + quote(model, safe=""), encoded=True),
            headers=router.headers(),
        ) as resp:
            statuses.append((model, resp.status))
    assert {s for _, s in statuses} <= {400, 404}, statuses
    # A good request with every steering header is served by a configured node.
    async with http.post(
        router.url + "/v1/chat/completions",
        json={"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}]},
        headers={**router.headers(), **steering},
    ) as resp:
        assert resp.status == 200
    # Absolute-form and odd request targets, sent to the router itself.
    host, port = router.url.removeprefix("http://").split(":")
    for path in (f"http://{where}/v1/models", f"/{where}/v1/models", "/v1/../../etc"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {where}\r\nConnection: close\r\n"
            f"Authorization: Bearer {router.key}\r\n\r\n".encode()
        )
        await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert canary.connections == 0
    # The canary does count: one connection of our own is seen.
    _, writer = await asyncio.open_connection("127.0.0.2", canary.port)
    writer.close()
    await wait_until(lambda: canary.connections == 1)
    # The nodes saw only Ollama's own paths, and none of the client's steering headers.
    for node in router.nodes.values():
        assert set(node.stats.requests) <= {
            "/api/chat",
            "/api/generate",
            "/api/tags",
            "/api/ps",
            "/api/show",
        }
        for headers in node.stats.headers:
            assert headers["Host"] == node.url.removeprefix("http://")
            assert not {"X-Forwarded-Host", "Forwarded", "X-Original-URL"} & set(headers)
    assert sum(len(n.stats.bodies) for n in router.nodes.values()) == 1
