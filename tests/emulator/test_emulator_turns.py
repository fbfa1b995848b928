"""What one turn carries: thinking, tool calls, logprobs, and the context limit (api-reference
1.5, 1.6, 1.11, 5.6; `api/types.go` `Logprob`, `ChatResponse`, `GenerateResponse`)."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import orjson
import pytest

from router.emulator import EmulatedNode

from .conftest import NodeFactory, read_ndjson

pytestmark = pytest.mark.timeout(10)
METRICS = [
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
]
CALL_ID = re.compile(r"^call_[a-z0-9]{8}$")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def lines_of(
    session: aiohttp.ClientSession, node: EmulatedNode, path: str, body: dict[str, Any]
) -> list[dict[str, Any]]:
    async with session.post(node.url + path, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await read_ndjson(resp)


async def single(
    session: aiohttp.ClientSession, node: EmulatedNode, path: str, body: dict[str, Any]
) -> tuple[int, str, dict[str, Any]]:
    async with session.post(node.url + path, json={**body, "stream": False}) as resp:
        return resp.status, resp.headers["Content-Type"], orjson.loads(await resp.read())


# -- thinking ----------------------------------------------------------------------------------
async def test_thinking_model_reasons_first_unless_told_not_to(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(models=("qwen3",))
    body = {"model": "qwen3", "messages": user("why?")}
    *tokens, done = await lines_of(session, node, "/api/chat", body)
    thinking = [t for t in tokens if "thinking" in t["message"]]
    assert thinking and tokens[: len(thinking)] == thinking  # all reasoning comes first
    for line in thinking:
        assert list(line["message"]) == ["role", "content", "thinking"]
        assert line["message"]["content"] == ""
    assert any(t["message"]["content"] for t in tokens[len(thinking) :])
    assert done["eval_count"] == len(tokens)  # thinking tokens count too
    _, _, answer = await single(session, node, "/api/chat", body)
    assert answer["message"]["thinking"] == "".join(t["message"]["thinking"] for t in thinking)
    _, _, plain = await single(session, node, "/api/chat", {**body, "think": False})
    assert "thinking" not in plain["message"]
    gen = await lines_of(session, node, "/api/generate", {"model": "qwen3", "prompt": "why?"})
    assert any(line.get("thinking") and line["response"] == "" for line in gen)


async def test_think_on_a_model_without_the_capability_is_a_400(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    status, _, body = await single(
        session, node, "/api/chat", {"model": "llama3", "messages": user("x"), "think": True}
    )
    assert (status, body) == (400, {"error": '"llama3" does not support thinking'})


# -- tool calls --------------------------------------------------------------------------------
async def test_rendered_path_puts_calls_on_their_own_line(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    body = {"model": "llama3", "messages": user("weather?"), "tools": [WEATHER, TIME]}
    *_, call_line, done = await lines_of(session, node, "/api/chat", body)
    assert call_line["done"] is False
    assert call_line["message"]["content"] == ""
    (call,) = call_line["message"]["tool_calls"]  # none named: the first tool
    assert list(call) == ["id", "function"]
    assert CALL_ID.match(call["id"])
    assert list(call["function"]) == ["index", "name", "arguments"]
    assert call["function"]["index"] == 0
    assert call["function"]["name"] == "get_weather"
    args = call["function"]["arguments"]
    assert isinstance(args["city"], str) and isinstance(args["days"], int)
    assert done["done_reason"] == "stop"
    assert "tool_calls" not in done["message"]


async def test_several_calls_in_one_turn(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    body = {
        "model": "llama3",
        "messages": user("use get_time and get_weather for Tokyo"),
        "tools": [WEATHER, TIME],
    }
    lines = await lines_of(session, node, "/api/chat", body)
    calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
    assert [(c["function"]["index"], c["function"]["name"]) for c in calls] == [
        (0, "get_weather"),
        (1, "get_time"),
    ]
    assert len({c["id"] for c in calls}) == 2
    _, _, answer = await single(session, node, "/api/chat", body)
    assert answer["message"]["tool_calls"] == calls
    assert answer["message"]["content"] == ""


async def test_native_path_puts_calls_on_the_done_line_without_ids(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    node = await make_node(models=("llama3",), tool_call_path="native")
    body = {"model": "llama3", "messages": user("get_time please"), "tools": [WEATHER, TIME]}
    *tokens, done = await lines_of(session, node, "/api/chat", body)
    assert all("tool_calls" not in t["message"] for t in tokens)
    (call,) = done["message"]["tool_calls"]
    assert "id" not in call
    assert call["function"]["name"] == "get_time"
    assert done["done_reason"] == "stop"


async def test_after_a_tool_result_the_model_answers_in_text(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    messages = [
        *user("weather?"),
        {"role": "assistant", "content": "", "tool_calls": [{"function": WEATHER["function"]}]},
        {"role": "tool", "content": "22C sunny", "tool_name": "get_weather"},
    ]
    body = {"model": "llama3", "messages": messages, "tools": [WEATHER]}
    _, _, answer = await single(session, node, "/api/chat", body)
    assert answer["message"]["content"]
    assert "tool_calls" not in answer["message"]


async def test_a_model_may_answer_in_text_despite_tools(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    body = {"model": "llama3", "messages": user("hi, answer without tools"), "tools": [WEATHER]}
    _, _, answer = await single(session, node, "/api/chat", body)
    assert answer["message"]["content"]
    assert "tool_calls" not in answer["message"]


# -- logprobs ----------------------------------------------------------------------------------
def check_entry(entry: dict[str, Any], top: int) -> None:
    assert list(entry)[:3] == ["token", "logprob", "bytes"]
    assert entry["bytes"] == list(entry["token"].encode())
    assert entry["logprob"] < 0
    if top == 0:
        assert "top_logprobs" not in entry
        return
    alternatives = entry["top_logprobs"]
    assert len(alternatives) == top
    assert alternatives[0]["token"] == entry["token"]
    values = [a["logprob"] for a in alternatives]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("top", [0, 3])
async def test_chat_logprobs_per_line_and_in_the_answer(
    node: EmulatedNode, session: aiohttp.ClientSession, top: int
) -> None:
    body = {"model": "llama3", "messages": user("hi"), "logprobs": True, "top_logprobs": top}
    *tokens, done = await lines_of(session, node, "/api/chat", body)
    for line in tokens:
        assert list(line) == ["model", "created_at", "message", "done", "logprobs"]
        (entry,) = line["logprobs"]
        assert entry["token"] == line["message"]["content"]
        check_entry(entry, top)
    assert "logprobs" not in done
    _, _, answer = await single(session, node, "/api/chat", body)
    assert list(answer) == ["model", "created_at", "message", "done", "done_reason", "logprobs",
                            *METRICS]  # fmt: skip
    assert answer["logprobs"] == [t["logprobs"][0] for t in tokens]


async def test_generate_logprobs_come_after_the_metrics(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    body = {"model": "llama3", "prompt": "hi", "logprobs": True, "top_logprobs": 1}
    _, _, answer = await single(session, node, "/api/generate", body)
    assert list(answer)[-1] == "logprobs"
    assert "".join(e["token"] for e in answer["logprobs"]) == answer["response"]


async def test_without_logprobs_lines_have_none(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    lines = await lines_of(session, node, "/api/chat", {"model": "llama3", "messages": user("a")})
    assert all("logprobs" not in line for line in lines)


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
@pytest.mark.parametrize("top", [21, -1])
async def test_top_logprobs_out_of_range(
    node: EmulatedNode, session: aiohttp.ClientSession, path: str, top: int
) -> None:
    # Checked before the model: even an unknown model gets this 400.
    body = {"model": "nope", "messages": user("a"), "prompt": "a", "top_logprobs": top}
    status, _, answer = await single(session, node, path, body)
    assert (status, answer) == (400, {"error": "top_logprobs must be between 0 and 20"})


# -- context -----------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [True, False])
async def test_overflow_with_truncate_false_is_llama_servers_400(
    node: EmulatedNode, session: aiohttp.ClientSession, stream: bool
) -> None:
    body = {"model": "llama3", "messages": user("w " * 5000), "truncate": False, "stream": stream}
    async with session.post(node.url + "/api/chat", json=body) as resp:
        assert resp.status == 400
        ctype = "application/json" if stream else "application/json; charset=utf-8"
        assert resp.headers["Content-Type"] == ctype
        error = orjson.loads(await resp.read())["error"]
    inner = orjson.loads(error)["error"]  # the runner's body, as a string (5.6)
    assert inner == {
        "code": 400,
        "message": "request (5004 tokens) exceeds the available context size (4096 tokens), "
        "try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 5004,
        "n_ctx": 4096,
    }


async def test_overflow_is_cut_silently_by_default_and_num_ctx_widens(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    body = {"model": "llama3", "prompt": "w " * 5000, "raw": True}
    status, _, answer = await single(session, node, "/api/generate", body)
    assert (status, answer["prompt_eval_count"]) == (200, 4096)
    wide = {**body, "truncate": False, "options": {"num_ctx": 8192}}
    status, _, answer = await single(session, node, "/api/generate", wide)
    assert (status, answer["prompt_eval_count"]) == (200, 5000)
