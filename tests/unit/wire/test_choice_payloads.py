"""`n`, `logprobs`, `tool_choice` and `parallel_tool_calls`: parsed, sent to Ollama, gathered."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.wire.logprobs import OFF, LogprobRequest
from router.wire.ollama import Gathered
from router.wire.openai import parse_chat, parse_completion
from router.wire.to_ollama import chat_payload, completion_payload
from router.wire.toolchoice import REQUIRED

USER = {"role": "user", "content": "hi"}
TOOLS = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
    for n in ("a", "b")
]


def chat(**changes: Any) -> dict[str, Any]:
    return {"model": "ollama/llama3", "messages": [USER], **changes}


def sent(body: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(chat_payload(parse_chat(body), "llama3:latest"))
    return data


@pytest.mark.parametrize(
    ("body", "n", "logprobs", "plain"),
    [
        (chat(), 1, OFF, True),
        (chat(n=3), 3, OFF, False),
        (chat(logprobs=True), 1, LogprobRequest(True, 0), False),
        (chat(logprobs=True, top_logprobs=4), 1, LogprobRequest(True, 4), False),
        (chat(logprobs=False), 1, OFF, True),
        (chat(tools=TOOLS, parallel_tool_calls=False), 1, OFF, False),
        (chat(tools=TOOLS, parallel_tool_calls=True), 1, OFF, True),
    ],
    ids=["default", "n3", "logprobs", "top4", "logprobs-false", "no-parallel", "parallel"],
)
def test_parse_chat_choice_fields(
    body: dict[str, Any], n: int, logprobs: LogprobRequest, plain: bool
) -> None:
    req = parse_chat(body)
    assert (req.n, req.logprobs, req.plain) == (n, logprobs, plain)


def test_parse_completion_choice_fields() -> None:
    req = parse_completion({"model": "m", "prompt": "p", "n": 2, "best_of": 2, "logprobs": 0})
    assert (req.n, req.logprobs, req.plain) == (2, LogprobRequest(True, 0), False)
    assert parse_completion({"model": "m", "prompt": "p"}).plain


@pytest.mark.parametrize(
    ("changes", "tools", "system"),
    [
        ({}, ["a", "b"], None),
        ({"tool_choice": "auto"}, ["a", "b"], None),
        ({"tool_choice": "none"}, None, None),
        ({"tool_choice": "required"}, ["a", "b"], REQUIRED),
        ({"tool_choice": {"type": "function", "function": {"name": "b"}}}, ["b"], "`b`"),
        ({"parallel_tool_calls": False}, ["a", "b"], None),
    ],
    ids=["absent", "auto", "none", "required", "named", "no-parallel"],
)
def test_tool_choice_in_the_payload(
    changes: dict[str, Any], tools: list[str] | None, system: str | None
) -> None:
    payload = sent(chat(tools=TOOLS, **changes))
    names = [t["function"]["name"] for t in payload["tools"]] if "tools" in payload else None
    assert names == tools
    first = payload["messages"][0]
    if system is None:
        assert first == USER
    else:
        assert first["role"] == "system" and system in first["content"]
        assert payload["messages"][1:] == [USER]


def test_logprobs_in_the_payloads() -> None:
    assert "logprobs" not in sent(chat())
    fields = sent(chat(logprobs=True, top_logprobs=3))
    assert (fields["logprobs"], fields["top_logprobs"]) == (True, 3)
    req = parse_completion({"model": "m", "prompt": "p", "logprobs": 2})
    payload = orjson.loads(completion_payload(req, "m:latest"))
    assert (payload["logprobs"], payload["top_logprobs"]) == (True, 2)


def _lp(token: str) -> list[dict[str, Any]]:
    return [{"token": token, "logprob": -0.5}]


def test_gathered_keeps_every_lines_logprobs() -> None:
    chat_lines = [
        {"message": {"role": "assistant", "content": "He"}, "logprobs": _lp("He"), "done": False},
        {"message": {"role": "assistant", "content": "y"}, "logprobs": _lp("y"), "done": False},
        {"message": {"role": "assistant", "content": ""}, "done": True, "eval_count": 2},
    ]
    gathered = Gathered()
    assert gathered.feed_all(chat_lines)
    answer = gathered.chat()
    assert answer["message"]["content"] == "Hey"
    assert answer["logprobs"] == _lp("He") + _lp("y")
    generate_lines = [
        {"response": "He", "logprobs": _lp("He"), "done": False},
        {"response": "y", "logprobs": _lp("y"), "done": True},  # the done line may carry text
    ]
    gathered = Gathered()
    assert gathered.feed_all(generate_lines)
    assert gathered.generate()["logprobs"] == _lp("He") + _lp("y")
    plain = Gathered()
    plain.feed_all([{"response": "x", "done": True}])
    assert "logprobs" not in plain.generate()
