"""POST /api/chat and /api/generate against a real node (api-reference 1.5, 1.6, 1.9, 1.11)."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import orjson
import pytest

from router.emulator import EmulatedNode

from .conftest import NodeFactory, read_ndjson

pytestmark = pytest.mark.timeout(10)
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
METRICS = [
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
]
CHAT_BODY: dict[str, Any] = {
    "model": "llama3",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Why is the sky blue?"},
    ],
    "options": {"seed": 42},
}


async def post(
    session: aiohttp.ClientSession, node: EmulatedNode, path: str, body: Any
) -> tuple[int, str, bytes]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with session.post(node.url + path, data=data) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.read()


@pytest.mark.parametrize("stream", ["absent", None, True], ids=["absent", "null", "true"])
async def test_chat_streams_unless_false(
    node: EmulatedNode, session: aiohttp.ClientSession, stream: Any
) -> None:
    body = dict(CHAT_BODY)
    if stream != "absent":
        body["stream"] = stream
    async with session.post(node.url + "/api/chat", json=body) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/x-ndjson"
        lines = await read_ndjson(resp)
    *tokens, done = lines
    assert tokens
    for line in tokens:
        assert list(line) == ["model", "created_at", "message", "done"]
        assert line["model"] == "llama3"
        assert STAMP.match(line["created_at"])
        assert line["message"]["role"] == "assistant"
        assert line["done"] is False
    assert tokens[0]["message"]["content"][0] != " "
    assert all(t["message"]["content"].startswith(" ") for t in tokens[1:])
    assert list(done) == ["model", "created_at", "message", "done", "done_reason", *METRICS]
    assert done["message"] == {"role": "assistant", "content": ""}
    assert (done["done"], done["done_reason"]) == (True, "stop")
    assert done["eval_count"] == len(tokens)
    assert all(isinstance(done[m], int) and done[m] > 0 for m in METRICS)
    assert done["prompt_eval_count"] == (3 + 4) + (5 + 4)
    assert node.stats.completed == 1


async def test_chat_non_stream_equals_joined_stream(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    async with session.post(node.url + "/api/chat", json=CHAT_BODY) as resp:
        lines = await read_ndjson(resp)
    streamed = "".join(line["message"]["content"] for line in lines)
    status, ctype, raw = await post(session, node, "/api/chat", {**CHAT_BODY, "stream": False})
    assert (status, ctype) == (200, "application/json; charset=utf-8")
    assert not raw.endswith(b"\n")
    body = orjson.loads(raw)
    assert list(body) == ["model", "created_at", "message", "done", "done_reason", *METRICS]
    assert body["message"]["content"] == streamed
    assert body["eval_count"] == lines[-1]["eval_count"]


async def test_generate_stream_and_context(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    body = {"model": "llama3:latest", "prompt": "Why is the sky blue?", "options": {"seed": 1}}
    async with session.post(node.url + "/api/generate", json=body) as resp:
        assert resp.headers["Content-Type"] == "application/x-ndjson"
        *tokens, done = await read_ndjson(resp)
    assert all(list(t) == ["model", "created_at", "response", "done"] for t in tokens)
    assert list(done) == ["model", "created_at", "response", "done", "done_reason", "context",
                          *METRICS]  # fmt: skip
    assert done["model"] == "llama3:latest"
    assert len(done["context"]) == done["prompt_eval_count"] + done["eval_count"]
    status, _, raw = await post(session, node, "/api/generate", {**body, "stream": False})
    assert status == 200
    single = orjson.loads(raw)
    assert single["response"] == "".join(t["response"] for t in tokens)
    assert single["context"] == done["context"]


async def test_generate_raw_has_no_context(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    body = {"model": "llama3", "prompt": "x", "raw": True, "stream": False}
    _, _, raw = await post(session, node, "/api/generate", body)
    assert "context" not in orjson.loads(raw)


async def test_model_echoed_verbatim_and_matched_case_insensitively(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    texts = set()
    for name in ("llama3", "llama3:latest", "LLAMA3:Latest"):
        body = {**CHAT_BODY, "model": name, "stream": False}
        status, _, raw = await post(session, node, "/api/chat", body)
        reply = orjson.loads(raw)
        assert (status, reply["model"]) == (200, name)
        texts.add(reply["message"]["content"])
    assert len(texts) == 1


async def test_seed_and_prompt_change_text(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    async def text(body: dict[str, Any]) -> str:
        _, _, raw = await post(session, node, "/api/chat", {**body, "stream": False})
        return str(orjson.loads(raw)["message"]["content"])

    base = await text(CHAT_BODY)
    assert await text(CHAT_BODY) == base
    assert await text({**CHAT_BODY, "options": {"seed": 43}}) != base
    other = [{"role": "user", "content": "Something else"}]
    assert await text({**CHAT_BODY, "messages": other}) != base


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "single"])
async def test_num_predict_gives_length(
    node: EmulatedNode, session: aiohttp.ClientSession, stream: bool
) -> None:
    body = {**CHAT_BODY, "stream": stream, "options": {"seed": 42, "num_predict": 3}}
    _, _, raw = await post(session, node, "/api/chat", body)
    last = orjson.loads(raw.strip().split(b"\n")[-1])
    assert (last["done_reason"], last["eval_count"]) == ("length", 3)


async def test_default_tokens_and_stop(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(default_tokens=12)
    _, _, raw = await post(session, node, "/api/chat", {**CHAT_BODY, "stream": False})
    full = orjson.loads(raw)
    words = full["message"]["content"].split(" ")
    assert full["eval_count"] == len(words) == 12
    stop_at = words.index(words[6])
    body = {**CHAT_BODY, "stream": False, "options": {"seed": 42, "stop": [words[6]]}}
    _, _, raw = await post(session, node, "/api/chat", body)
    cut = orjson.loads(raw)
    assert cut["message"]["content"] == " ".join(words[:stop_at])
    assert (cut["done_reason"], cut["eval_count"]) == ("stop", stop_at)


@pytest.mark.parametrize(
    "fmt",
    ["json", {"type": "object", "properties": {"city": {"type": "string"}}}],
    ids=["json", "schema"],
)
async def test_format_produces_json(
    node: EmulatedNode, session: aiohttp.ClientSession, fmt: Any
) -> None:
    body = {**CHAT_BODY, "format": fmt}
    async with session.post(node.url + "/api/chat", json=body) as resp:
        lines = await read_ndjson(resp)
    content = "".join(line["message"]["content"] for line in lines)
    assert isinstance(orjson.loads(content), dict)


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/api/chat", {"model": "llama3", "messages": []}, "load"),
        ("/api/chat", {"model": "llama3", "messages": [], "keep_alive": 0}, "unload"),
        ("/api/chat", {"model": "llama3"}, "load"),
        ("/api/generate", {"model": "llama3", "prompt": ""}, "load"),
        ("/api/generate", {"model": "llama3", "keep_alive": "0s"}, "unload"),
    ],
    ids=["chat-load", "chat-unload", "chat-no-messages", "generate-load", "generate-unload"],
)
async def test_load_and_unload(
    node: EmulatedNode, session: aiohttp.ClientSession, path: str, body: Any, reason: str
) -> None:
    status, ctype, raw = await post(session, node, path, body)
    assert (status, ctype) == (200, "application/json; charset=utf-8")
    reply = orjson.loads(raw)
    content_key = "message" if path == "/api/chat" else "response"
    assert list(reply) == ["model", "created_at", content_key, "done", "done_reason"]
    assert (reply["done"], reply["done_reason"]) == (True, reason)
    async with session.get(node.url + "/api/ps") as resp:
        loaded = [m["name"] for m in (await resp.json())["models"]]
    assert loaded == ([] if reason == "unload" else ["llama3:latest"])


ERRORS = [
    ("/api/chat", b"", 400, "missing request body"),
    ("/api/chat", b"{not json", 400, "invalid character 'n' looking for beginning of value"),
    ("/api/chat", {"model": "llama3", "messages": "hi"}, 400,
     "json: cannot unmarshal string into Go struct field ChatRequest.messages"
     " of type []api.Message"),
    ("/api/chat", {"model": "llama3", "messages": [], "options": "x"}, 400,
     "json: cannot unmarshal string into Go struct field ChatRequest.options of type"
     " map[string]interface {}"),
    ("/api/chat", {"messages": []}, 400, "model is required"),
    ("/api/chat", {"model": "", "messages": []}, 400, "model is required"),
    ("/api/generate", {"prompt": "x"}, 404, "model '' not found"),
    ("/api/chat", {"model": "Llama9", "messages": []}, 404, "model 'Llama9' not found"),
    ("/api/generate", {"model": "llama9:7b", "prompt": "x"}, 404, "model 'llama9:7b' not found"),
    ("/api/chat", {"model": "llama3", "keep_alive": "300"}, 400,
     'time: missing unit in duration "300"'),
    ("/api/chat", {"model": "llama3", "messages": [{"content": "x"}], "think": True}, 400,
     '"llama3" does not support thinking'),
    ("/api/chat", {"model": "llama3", "messages": [{"content": "x"}], "options": {"stop": "x"}},
     500, 'option "stop" must be of type array'),
    ("/api/generate", {"model": "llama3", "prompt": "x", "options": {"num_predict": "5"}}, 500,
     'option "num_predict" must be of type integer'),
    ("/api/chat", {"model": "llama3", "messages": [{"content": "x"}], "format": "yaml",
                   "stream": False}, 500,
     'invalid format: "\\"yaml\\""; expected "json" or a valid JSON Schema object'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    ERRORS,
    ids=[
        "empty-body",
        "bad-json",
        "messages-type",
        "options-type",
        "no-model",
        "empty-model",
        "generate-no-model",
        "unknown-chat",
        "unknown-generate",
        "keep-alive-unit",
        "think",
        "stop-string",
        "num-predict-type",
        "format",
    ],
)
async def test_error_statuses_and_texts(
    node: EmulatedNode,
    session: aiohttp.ClientSession,
    path: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    got_status, ctype, raw = await post(session, node, path, body)
    assert (got_status, ctype) == (status, "application/json; charset=utf-8")
    assert orjson.loads(raw) == {"error": message}
    assert node.stats.in_flight == 0


async def test_format_error_while_streaming_is_bare_json(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    body = {"model": "llama3", "messages": [{"content": "x"}], "format": 3}
    status, ctype, raw = await post(session, node, "/api/chat", body)
    assert (status, ctype) == (500, "application/json")
    assert orjson.loads(raw)["error"].startswith('invalid format: "3"')


async def test_unknown_fields_ignored_and_bodies_recorded(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    body = {**CHAT_BODY, "stream": False, "tools": [], "whatever": {"x": 1}}
    async with session.post(
        node.url + "/api/chat", json=body, headers={"X-Request-ID": "trace-1"}
    ) as resp:
        assert resp.status == 200
    await post(session, node, "/api/generate", {"model": "llama3", "prompt": "p", "stream": False})
    await post(session, node, "/api/chat", b"{broken")
    assert node.stats.bodies == [body, {"model": "llama3", "prompt": "p", "stream": False}]
    assert len(node.stats.headers) == 2
    assert node.stats.headers[0].get("x-request-id") == "trace-1"
    node.stats.reset()
    assert (node.stats.bodies, node.stats.headers, node.stats.completed) == ([], [], 0)
