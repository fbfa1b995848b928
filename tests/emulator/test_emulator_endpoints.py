"""GET endpoints and routing errors against a real node (api-reference 1.1-1.4, 1.0)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import aiohttp
import orjson
import pytest

from router.emulator import EmulatedNode

from .conftest import NodeFactory

RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
pytestmark = pytest.mark.timeout(10)


def parse_time(text: str) -> datetime:
    match = RFC3339_NANO.match(text)
    assert match, text
    micros = (match.group(1) or ".0")[1:7].ljust(6, "0")
    return datetime.fromisoformat(f"{text[:19]}.{micros}+00:00")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_root(node: EmulatedNode, session: aiohttp.ClientSession, method: str) -> None:
    async with session.request(method, node.url + "/") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await resp.read() == (b"Ollama is running" if method == "GET" else b"")


async def test_version(make_node: NodeFactory, session: aiohttp.ClientSession) -> None:
    node = await make_node(version="0.9.1")
    async with session.get(node.url + "/api/version") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert await resp.json() == {"version": "0.9.1"}


async def test_tags_shape_and_order(make_node: NodeFactory, session: aiohttp.ClientSession) -> None:
    node = await make_node(models=("llama3", "Qwen2.5:7B", "user/coder:1.5b"))
    async with session.get(node.url + "/api/tags") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        models = (await resp.json())["models"]
    assert [m["name"] for m in models] == ["llama3:latest", "qwen2.5:7b", "user/coder:1.5b"]
    times = [parse_time(m["modified_at"]) for m in models]
    assert times == sorted(times, reverse=True)
    for m in models:
        assert list(m) == [
            "name", "model", "modified_at", "size", "digest", "details", "capabilities"
        ]  # fmt: skip
        assert m["model"] == m["name"]
        assert re.fullmatch(r"[0-9a-f]{64}", m["digest"])
        assert isinstance(m["size"], int) and m["size"] > 0
        assert set(m["details"]) == {
            "parent_model", "format", "family", "families", "parameter_size",
            "quantization_level", "context_length", "embedding_length",
        }  # fmt: skip
        assert "completion" in m["capabilities"]
    assert models[1]["details"]["parameter_size"] == "7.0B"


async def test_ps_lists_preloaded_models(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(models=("a", "b"))
    async with session.get(node.url + "/api/ps") as resp:
        assert resp.status == 200
        models = (await resp.json())["models"]
    assert {m["name"] for m in models} == {"a:latest", "b:latest"}
    for m in models:
        assert list(m) == [
            "name", "model", "size", "digest", "details", "expires_at", "size_vram",
            "context_length",
        ]  # fmt: skip
        assert RFC3339_NANO.match(m["expires_at"])
        assert m["size_vram"] == m["size"]


async def test_ps_shows_the_stored_expiry_until_the_model_is_used(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    # Ollama keeps a model's expiry from its last request; /api/ps shows that, unchanged.
    node = await make_node(models=("a",))
    bodies = []
    for _ in range(2):
        async with session.get(node.url + "/api/ps") as resp:
            bodies.append(await resp.read())
        await asyncio.sleep(0.01)
    assert bodies[0] == bodies[1]
    body = {"model": "a", "prompt": "hi", "stream": False, "options": {"num_predict": 1}}
    async with session.post(node.url + "/api/generate", json=body) as resp:
        assert resp.status == 200
    async with session.get(node.url + "/api/ps") as resp:
        after = (await resp.json())["models"][0]["expires_at"]
    assert parse_time(after) > parse_time(orjson.loads(bodies[0])["models"][0]["expires_at"])


async def test_ps_empty_when_not_preloaded(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(preloaded=False)
    async with session.get(node.url + "/api/ps") as resp:
        assert await resp.read() == b'{"models":[]}'


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/nope", 404, b"404 page not found"),
        ("POST", "/v1/whatever", 404, b"404 page not found"),
        ("GET", "/api/chat", 405, b"405 method not allowed"),
        ("GET", "/api/generate", 405, b"405 method not allowed"),
        ("POST", "/api/tags", 405, b"405 method not allowed"),
        ("DELETE", "/", 405, b"405 method not allowed"),
        ("POST", "/api/version", 405, b"405 method not allowed"),
    ],
    ids=[
        "unknown-get",
        "unknown-post",
        "get-chat",
        "get-generate",
        "post-tags",
        "delete-root",
        "post-version",
    ],
)
async def test_routing_errors_are_plain_text(
    node: EmulatedNode,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    status: int,
    body: bytes,
) -> None:
    async with session.request(method, node.url + path) as resp:
        assert resp.status == status
        assert resp.headers["Content-Type"] == "text/plain"
        assert await resp.read() == body


async def test_head_tags_and_version(node: EmulatedNode, session: aiohttp.ClientSession) -> None:
    for path in ("/api/tags", "/api/version"):
        async with session.head(node.url + path) as resp:
            assert resp.status == 200


async def test_requests_are_counted_by_path(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    for path in ("/", "/api/tags", "/api/tags", "/missing"):
        async with session.get(node.url + path) as resp:
            await resp.read()
    assert node.stats.requests == {"/": 1, "/api/tags": 2, "/missing": 1}
