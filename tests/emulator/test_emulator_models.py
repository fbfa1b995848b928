"""Model kinds and management: /api/tags capabilities, /api/show, /api/pull, /api/delete, and
load/unload in /api/ps (api-reference 1.3, 1.4, 1.5, 1.8, 5.7)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from router.emulator import EmulatedNode

from .conftest import NodeFactory, read_ndjson

pytestmark = pytest.mark.timeout(10)
JSON = "application/json; charset=utf-8"
MODELS = ("llama3", "nomic-embed-text", "qwen3:8b", "llava:7b")


@pytest.fixture
async def node(make_node: NodeFactory) -> EmulatedNode:
    return await make_node(models=MODELS)


async def call(
    session: aiohttp.ClientSession, node: EmulatedNode, method: str, path: str, body: Any = None
) -> tuple[int, str, bytes]:
    data = None if body is None else orjson.dumps(body)
    async with session.request(method, node.url + path, data=data) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def tags(session: aiohttp.ClientSession, node: EmulatedNode) -> dict[str, Any]:
    _, _, raw = await call(session, node, "GET", "/api/tags")
    return {m["name"]: m for m in orjson.loads(raw)["models"]}


async def ps(session: aiohttp.ClientSession, node: EmulatedNode) -> dict[str, int]:
    _, _, raw = await call(session, node, "GET", "/api/ps")
    return {m["name"]: m["context_length"] for m in orjson.loads(raw)["models"]}


@pytest.mark.parametrize(
    ("name", "capabilities", "family", "context", "length"),
    [
        ("llama3:latest", ["completion", "tools", "insert"], "llama", 131072, 4096),
        ("nomic-embed-text:latest", ["embedding"], "nomic-bert", 2048, 768),
        ("qwen3:8b", ["completion", "tools", "insert", "thinking"], "qwen", 131072, 4096),
        ("llava:7b", ["completion", "tools", "insert", "vision"], "llava", 131072, 4096),
    ],
    ids=["chat", "embedding", "thinking", "vision"],
)
async def test_tags_and_show_describe_each_kind(
    node: EmulatedNode,
    session: aiohttp.ClientSession,
    name: str,
    capabilities: list[str],
    family: str,
    context: int,
    length: int,
) -> None:
    entry = (await tags(session, node))[name]
    assert entry["capabilities"] == capabilities
    assert entry["details"]["family"] == family
    assert entry["details"]["context_length"] == context
    assert entry["details"]["embedding_length"] == length
    status, ctype, raw = await call(session, node, "POST", "/api/show", {"model": name})
    assert (status, ctype) == (200, JSON)
    show = orjson.loads(raw)
    assert list(show) == [
        "license", "modelfile", "parameters", "template", "details", "model_info",
        "capabilities", "modified_at",
    ]  # fmt: skip
    assert show["capabilities"] == capabilities
    assert show["model_info"]["general.architecture"] == family
    assert show["model_info"][f"{family}.context_length"] == context
    assert show["model_info"][f"{family}.embedding_length"] == length
    assert list(show["model_info"]) == sorted(show["model_info"])  # Go sorts map keys
    assert show["modified_at"] == entry["modified_at"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "nope"}, 404, "model 'nope:latest' not found"),
        ({}, 400, "model is required"),
        ({"model": "bad name!"}, 400, "invalid model name"),
    ],
    ids=["unknown", "missing", "invalid"],
)
async def test_show_errors(
    node: EmulatedNode, session: aiohttp.ClientSession, body: Any, status: int, error: str
) -> None:
    got = await call(session, node, "POST", "/api/show", body)
    assert (got[0], orjson.loads(got[2])) == (status, {"error": error})


async def test_show_takes_the_legacy_name_field(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    status, _, _ = await call(session, node, "POST", "/api/show", {"name": "LLAMA3"})
    assert status == 200


@pytest.mark.parametrize("kind", ["chat", "generate"])
async def test_embedding_model_refuses_generation(
    node: EmulatedNode, session: aiohttp.ClientSession, kind: str
) -> None:
    body: dict[str, Any] = {"model": "nomic-embed-text"}
    body |= {"messages": [{"role": "user", "content": "hi"}]} if kind == "chat" else {"prompt": "x"}
    status, ctype, raw = await call(session, node, "POST", f"/api/{kind}", body)
    assert (status, ctype) == (400, JSON)
    assert orjson.loads(raw) == {"error": f'"nomic-embed-text" does not support {kind}'}


async def test_pull_streams_progress_then_lists_the_model(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    assert "all-minilm:latest" not in await tags(session, node)
    async with session.post(node.url + "/api/pull", json={"model": "all-minilm"}) as resp:
        assert (resp.status, resp.headers["Content-Type"]) == (200, "application/x-ndjson")
        lines = await read_ndjson(resp)
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    progress = [
        line for line in lines if line["status"].startswith("pulling ") and "digest" in line
    ]
    assert progress and all(line["digest"].startswith("sha256:") for line in progress)
    assert progress[-1]["completed"] == progress[-1]["total"]
    listed = (await tags(session, node))["all-minilm:latest"]
    assert listed["capabilities"] == ["embedding"]
    assert listed["details"]["family"] == "bert"
    assert next(iter(await tags(session, node))) == "all-minilm:latest"  # newest first
    embed = {"model": "all-minilm", "input": "now installed"}
    assert (await call(session, node, "POST", "/api/embed", embed))[0] == 200


async def test_pull_without_stream_answers_once(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    got = await call(session, node, "POST", "/api/pull", {"model": "phi3", "stream": False})
    assert (got[0], got[1], orjson.loads(got[2])) == (200, JSON, {"status": "success"})
    assert "phi3:latest" in await tags(session, node)


async def test_pull_of_a_model_the_registry_lacks(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(models=("llama3",), pullable=("phi3",))
    async with session.post(node.url + "/api/pull", json={"model": "nope"}) as resp:
        assert resp.status == 200  # the error comes after the first line
        lines = await read_ndjson(resp)
    assert lines == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]
    got = await call(session, node, "POST", "/api/pull", {"model": "nope", "stream": False})
    assert (got[0], orjson.loads(got[2])) == (
        500,
        {"error": "pull model manifest: file does not exist"},
    )
    assert "nope:latest" not in await tags(session, node)
    assert (await call(session, node, "POST", "/api/pull", {"model": "phi3"}))[0] == 200
    bad = await call(session, node, "POST", "/api/pull", {"model": ""})
    assert (bad[0], orjson.loads(bad[2])) == (400, {"error": "invalid model name"})


async def test_delete_unlists_but_keeps_the_loaded_copy(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    status, _, raw = await call(session, node, "DELETE", "/api/delete", {"model": "llama3"})
    assert (status, raw) == (200, b"")
    assert "llama3:latest" not in await tags(session, node)
    assert "llama3:latest" in await ps(session, node)
    chat = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}
    got = await call(session, node, "POST", "/api/chat", chat)
    assert (got[0], orjson.loads(got[2])) == (404, {"error": "model 'llama3' not found"})
    again = await call(session, node, "DELETE", "/api/delete", {"model": "llama3"})
    assert (again[0], orjson.loads(again[2])) == (404, {"error": "model 'llama3' not found"})
    assert (await call(session, node, "POST", "/api/delete", {"model": "x"}))[0] == 405


async def test_load_unload_and_context_length_in_ps(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(models=("llama3", "nomic-embed-text"), preloaded=False)
    assert await ps(session, node) == {}
    got = await call(session, node, "POST", "/api/generate", {"model": "llama3", "prompt": ""})
    assert orjson.loads(got[2])["done_reason"] == "load"
    assert await ps(session, node) == {"llama3:latest": 4096}
    load = {"model": "llama3", "messages": [], "options": {"num_ctx": 8192}}
    await call(session, node, "POST", "/api/chat", load)
    assert await ps(session, node) == {"llama3:latest": 8192}  # another num_ctx reloads
    await call(session, node, "POST", "/api/embed", {"model": "nomic-embed-text"})
    assert (await ps(session, node))["nomic-embed-text:latest"] == 2048  # capped at training
    unload = {"model": "llama3", "messages": [], "keep_alive": 0}
    got = await call(session, node, "POST", "/api/chat", unload)
    assert orjson.loads(got[2])["done_reason"] == "unload"
    assert await ps(session, node) == {"nomic-embed-text:latest": 2048}
