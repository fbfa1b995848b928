"""OpenAI ⇄ Ollama translation: request payloads, non-stream bodies and SSE streams.

Streams are replayed from recorded Ollama lines (`tests/fixtures/ollama/*.ndjson`, written from
api-reference.md 1.5/1.6/1.11) the way the handler feeds them: `start()`, `feed(line)` for
every line including the done line, then `finish(done_line)`. Every stream is also read back
by the OpenAI SDK's own SSE decoder and validated against its pydantic types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from router.errors import BadRequest
from router.wire import sse
from router.wire.openai import parse_chat, parse_completion
from router.wire.translate import (
    ChatStream,
    CompletionStream,
    Usage,
    chat_completion,
    chat_payload,
    completion_payload,
    finish_reason,
    new_id,
    text_completion,
    usage_of,
)

OLLAMA = Path(__file__).resolve().parent.parent / "fixtures" / "ollama"
MODEL = "llama3:latest"
ID, CREATED = "chatcmpl-0123456789abcdef", 1733000000
PNG_B64 = "iVBORw0KGgo="
USER = {"role": "user", "content": "hi"}


def lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (OLLAMA / name).read_text().splitlines() if line]


def body(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OLLAMA / name).read_text())
    return data


# -- request payloads -------------------------------------------------------------------------
def chat(**changes: Any) -> dict[str, Any]:
    return {"model": "ollama/llama3", "messages": [USER], **changes}


def native(**changes: Any) -> dict[str, Any]:
    """The Ollama chat payload for `chat()` with `changes` applied."""
    return {
        "model": MODEL,
        "messages": [USER],
        "stream": True,  # always: non-streamed answers are gathered from the stream
        "options": {"temperature": 1.0, "top_p": 1.0},
        **changes,
    }


def opts(**changes: Any) -> dict[str, Any]:
    return {"temperature": 1.0, "top_p": 1.0, **changes}


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}}
ASSISTANT_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_ab12cd34",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
        }
    ],
}
NATIVE_CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}, "id": "call_ab12cd34"}
    ],
}

CHAT_PAYLOADS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("minimal", chat(), native()),
    ("stream-is-explicit-true", chat(stream=True), native(stream=True)),
    ("non-stream-client-still-streams-upstream", chat(stream=False), native(stream=True)),
    (
        "sampling-options",
        chat(
            temperature=0.2,
            top_p=0.9,
            max_tokens=128,
            seed=42,
            presence_penalty=0.5,
            frequency_penalty=-0.5,
        ),
        native(
            options={
                "temperature": 0.2,
                "top_p": 0.9,
                "num_predict": 128,
                "seed": 42,
                "presence_penalty": 0.5,
                "frequency_penalty": -0.5,
            }
        ),
    ),
    ("zero-temperature-is-kept", chat(temperature=0), native(options=opts(temperature=0.0))),
    ("stop-string-becomes-list", chat(stop="\n\n"), native(options=opts(stop=["\n\n"]))),
    ("stop-list", chat(stop=["a", "b"]), native(options=opts(stop=["a", "b"]))),
    ("empty-stop-list-omitted", chat(stop=[]), native()),
    (
        "max-completion-tokens-to-num-predict",
        chat(max_completion_tokens=64),
        native(options=opts(num_predict=64)),
    ),
    (
        "developer-becomes-system",
        chat(messages=[{"role": "developer", "content": "Be terse."}, USER]),
        native(messages=[{"role": "system", "content": "Be terse."}, USER]),
    ),
    (
        "parts-joined-images-stripped",
        chat(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PNG_B64}"},
                        },
                        {"type": "text", "text": "this picture?"},
                        {"type": "image_url", "image_url": "data:image/jpeg;base64,/9j/4AAQ"},
                    ],
                }
            ]
        ),
        native(
            messages=[
                {
                    "role": "user",
                    "content": "What is in\nthis picture?",
                    "images": [PNG_B64, "/9j/4AAQ"],
                }
            ]
        ),
    ),
    (
        "text-parts-only-no-images-key",
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}]}]),
        native(messages=[{"role": "user", "content": "a"}]),
    ),
    (
        "tool-call-arguments-string-to-object",
        chat(messages=[USER, ASSISTANT_CALL]),
        native(messages=[USER, NATIVE_CALL]),
    ),
    (
        "empty-arguments-string-is-empty-object",
        chat(
            messages=[
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "now", "arguments": ""}}],
                }
            ]
        ),
        native(
            messages=[
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "now", "arguments": {}}}],
                }
            ]
        ),
    ),
    (
        "arguments-object-kept-missing-is-empty",
        chat(
            messages=[
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "a", "arguments": {"x": [1]}}},
                        {"function": {"name": "b"}},
                    ],
                }
            ]
        ),
        native(
            messages=[
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "a", "arguments": {"x": [1]}}},
                        {"function": {"name": "b", "arguments": {}}},
                    ],
                }
            ]
        ),
    ),
    (
        "tool-result-gets-its-tool-name",
        chat(
            messages=[
                USER,
                ASSISTANT_CALL,
                {"role": "tool", "tool_call_id": "call_ab12cd34", "content": "22C sunny"},
            ]
        ),
        native(
            messages=[
                USER,
                NATIVE_CALL,
                {
                    "role": "tool",
                    "content": "22C sunny",
                    "tool_call_id": "call_ab12cd34",
                    "tool_name": "get_weather",
                },
            ]
        ),
    ),
    (
        "function-role-becomes-tool",
        chat(messages=[USER, {"role": "function", "name": "get_weather", "content": "22C"}]),
        native(messages=[USER, {"role": "tool", "content": "22C", "tool_name": "get_weather"}]),
    ),
    (
        "json-object-to-format-json",
        chat(response_format={"type": "json_object"}),
        native(format="json"),
    ),
    (
        "json-schema-to-the-schema",
        chat(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "answer", "strict": True, "schema": SCHEMA},
            }
        ),
        native(format=SCHEMA),
    ),
    ("text-format-omitted", chat(response_format={"type": "text"}), native()),
    ("tools-passed-through", chat(tools=TOOLS), native(tools=TOOLS)),
    ("tool-choice-auto-keeps-tools", chat(tools=TOOLS, tool_choice="auto"), native(tools=TOOLS)),
    ("tool-choice-none-drops-tools", chat(tools=TOOLS, tool_choice="none"), native()),
    ("reasoning-none-is-think-false", chat(reasoning_effort="none"), native(think=False)),
    ("reasoning-minimal-is-low", chat(reasoning_effort="minimal"), native(think="low")),
    ("reasoning-low", chat(reasoning_effort="low"), native(think="low")),
    ("reasoning-medium", chat(reasoning_effort="medium"), native(think="medium")),
    ("reasoning-high", chat(reasoning_effort="high"), native(think="high")),
    ("reasoning-xhigh-is-max", chat(reasoning_effort="xhigh"), native(think="max")),
]


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [c[1:] for c in CHAT_PAYLOADS],
    ids=[c[0] for c in CHAT_PAYLOADS],
)
def test_chat_payload(request_body: dict[str, Any], expected: dict[str, Any]) -> None:
    payload = json.loads(chat_payload(parse_chat(request_body), MODEL))
    assert payload == expected


def test_chat_payload_uses_the_routed_name_not_the_client_spelling() -> None:
    payload = json.loads(chat_payload(parse_chat(chat(model="OLLAMA/Llama3")), MODEL))
    assert payload["model"] == MODEL


CHAT_PAYLOAD_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("reasoning-effort-unknown", chat(reasoning_effort="turbo"), "reasoning_effort"),
    (
        "tool-call-without-function",
        chat(messages=[{"role": "assistant", "content": "", "tool_calls": [{"id": "x"}]}]),
        "messages[0].tool_calls[0]",
    ),
    (
        "tool-call-without-name",
        chat(
            messages=[
                USER,
                {"role": "assistant", "content": "", "tool_calls": [{"function": {}}]},
            ]
        ),
        "messages[1].tool_calls[0]",
    ),
    (
        "tool-call-arguments-not-json",
        chat(
            messages=[
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "a", "arguments": "{}"}},
                        {"function": {"name": "b", "arguments": "{city: Tokyo}"}},
                    ],
                }
            ]
        ),
        "messages[0].tool_calls[1].function.arguments",
    ),
    (
        # Ollama needs an object; an array would come back as an opaque upstream 400
        "tool-call-arguments-not-an-object",
        chat(
            messages=[
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "a", "arguments": "[1, 2]"}}],
                }
            ]
        ),
        "messages[0].tool_calls[0].function.arguments",
    ),
]


@pytest.mark.parametrize(
    ("request_body", "param"),
    [c[1:] for c in CHAT_PAYLOAD_ERRORS],
    ids=[c[0] for c in CHAT_PAYLOAD_ERRORS],
)
def test_chat_payload_error_names_its_param(request_body: dict[str, Any], param: str) -> None:
    req = parse_chat(request_body)
    with pytest.raises(BadRequest) as caught:
        chat_payload(req, MODEL)
    assert caught.value.param == param
    assert caught.value.status == 400


def completion(**changes: Any) -> dict[str, Any]:
    return {"model": "ollama/llama3", "prompt": "Once upon a time", **changes}


def native_generate(**changes: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "prompt": "Once upon a time",
        "stream": True,
        "options": {"temperature": 1.0, "top_p": 1.0},
        **changes,
    }


COMPLETION_PAYLOADS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("minimal", completion(), native_generate()),
    ("stream-true", completion(stream=True), native_generate(stream=True)),
    (
        "sampling",
        completion(max_tokens=16, temperature=0.3, top_p=0.4, stop="\n", seed=1),
        native_generate(
            options={"temperature": 0.3, "top_p": 0.4, "num_predict": 16, "stop": ["\n"], "seed": 1}
        ),
    ),
    ("suffix", completion(suffix=" The end."), native_generate(suffix=" The end.")),
    ("prompt-list-of-one", completion(prompt=["Hi"]), native_generate(prompt="Hi")),
]


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [c[1:] for c in COMPLETION_PAYLOADS],
    ids=[c[0] for c in COMPLETION_PAYLOADS],
)
def test_completion_payload(request_body: dict[str, Any], expected: dict[str, Any]) -> None:
    payload = json.loads(completion_payload(parse_completion(request_body), MODEL))
    assert payload == expected


# -- usage and finish reasons -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("done", "expected"),
    [
        ({"prompt_eval_count": 26, "eval_count": 282}, Usage(26, 282)),
        ({}, Usage(0, 0)),
        ({"eval_count": 5}, Usage(0, 5)),
        ({"prompt_eval_count": 7}, Usage(7, 0)),
        ({"prompt_eval_count": None, "eval_count": None}, Usage(0, 0)),
    ],
    ids=["both", "none", "no-prompt-count", "no-eval-count", "nulls"],
)
def test_usage_of(done: dict[str, Any], expected: Usage) -> None:
    assert usage_of(done) == expected


def test_usage_total_is_the_sum() -> None:
    assert Usage(26, 3).as_dict() == {
        "prompt_tokens": 26,
        "completion_tokens": 3,
        "total_tokens": 29,
    }


@pytest.mark.parametrize(
    ("done_reason", "tool_calls", "expected"),
    [
        ("stop", False, "stop"),
        ("stop", True, "tool_calls"),
        ("length", False, "length"),
        ("length", True, "length"),
        (None, False, "stop"),
        (None, True, "tool_calls"),
    ],
    ids=["stop", "stop-with-tools", "length", "length-with-tools", "missing", "missing-with-tools"],
)
def test_finish_reason(done_reason: str | None, tool_calls: bool, expected: str) -> None:
    done = {"done": True} if done_reason is None else {"done": True, "done_reason": done_reason}
    assert finish_reason(done, tool_calls) == expected


def test_new_ids_are_unique_and_prefixed() -> None:
    ids = {new_id("chatcmpl-") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("chatcmpl-") and len(i) > len("chatcmpl-") + 16 for i in ids)


# -- non-stream bodies ------------------------------------------------------------------------
def test_chat_completion_body() -> None:
    raw, usage = chat_completion(body("chat-nonstream.json"), "ollama/llama3", ID, CREATED)
    assert json.loads(raw) == {
        "id": ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": "ollama/llama3",
        "system_fingerprint": "fp_jarvis",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! How are you today?",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 26, "completion_tokens": 298, "total_tokens": 324},
    }
    assert usage == Usage(26, 298)


def test_chat_completion_with_tool_calls() -> None:
    raw, _ = chat_completion(body("chat-nonstream-tools.json"), "m", ID, CREATED)
    choice = json.loads(raw)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == ""
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "call_k3j9x0qz"
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert isinstance(call["function"]["arguments"], str)
    assert json.loads(call["function"]["arguments"]) == {"city": "Tokyo"}
    assert "index" not in call  # only stream deltas carry an index


def test_chat_completion_with_thinking_and_length() -> None:
    raw, usage = chat_completion(body("chat-nonstream-thinking.json"), "m", ID, CREATED)
    choice = json.loads(raw)["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "42"
    assert choice["message"]["reasoning_content"] == "Let me think."
    assert usage == Usage(20, 7)


def test_text_completion_body() -> None:
    raw, usage = text_completion(
        body("generate-nonstream.json"), "ollama/llama3", "cmpl-1", CREATED
    )
    assert json.loads(raw) == {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": CREATED,
        "model": "ollama/llama3",
        "system_fingerprint": "fp_jarvis",
        "choices": [
            {
                "text": "The sky is blue because of Rayleigh scattering.",
                "index": 0,
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 26, "completion_tokens": 259, "total_tokens": 285},
    }
    assert usage == Usage(26, 259)


def test_text_completion_without_metrics() -> None:
    raw, usage = text_completion(body("generate-nonstream-no-metrics.json"), "m", "cmpl-1", 1)
    data = json.loads(raw)
    assert data["choices"][0] == {
        "text": "",
        "index": 0,
        "logprobs": None,
        "finish_reason": "length",
    }
    assert data["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert usage == Usage(0, 0)


@pytest.mark.parametrize(
    "name",
    ["chat-nonstream.json", "chat-nonstream-tools.json", "chat-nonstream-thinking.json"],
    ids=["plain", "tools", "thinking"],
)
def test_sdk_validates_chat_completion(name: str) -> None:
    raw, _ = chat_completion(body(name), "ollama/llama3", ID, CREATED)
    parsed = ChatCompletion.model_validate_json(raw)
    assert parsed.id == ID
    assert parsed.choices[0].message.role == "assistant"
    assert parsed.usage is not None
    for call in parsed.choices[0].message.tool_calls or []:
        assert json.loads(call.function.arguments) == {"city": "Tokyo"}


@pytest.mark.parametrize(
    "name",
    ["generate-nonstream.json", "generate-nonstream-no-metrics.json"],
    ids=["plain", "no-metrics"],
)
def test_sdk_validates_text_completion(name: str) -> None:
    raw, _ = text_completion(body(name), "ollama/llama3", "cmpl-1", CREATED)
    parsed = Completion.model_validate_json(raw)
    assert parsed.object == "text_completion"
    assert parsed.choices[0].finish_reason in ("stop", "length")


# -- streams ----------------------------------------------------------------------------------
def replay(
    encoder: ChatStream | CompletionStream, ollama_lines: list[dict[str, Any]]
) -> tuple[bytes, Usage]:
    """What the handler writes for these upstream lines."""
    out = encoder.start()
    for line in ollama_lines:
        out += encoder.feed(line)
        if line.get("done"):
            tail, usage = encoder.finish(line)
            return out + tail, usage
    raise AssertionError("the fixture has no done line")


def frames(stream: bytes) -> list[bytes]:
    """The data of every SSE event, checking the framing the SDK relies on."""
    assert stream.endswith(b"\n\n")
    events = stream[:-2].split(b"\n\n")
    for event in events:
        assert event.startswith(b"data: "), event
        assert b"\n" not in event and b"\r" not in event, event
    data = [event[len(b"data: ") :] for event in events]
    assert data[-1] == b"[DONE]"
    assert data.count(b"[DONE]") == 1
    return data[:-1]


def chunks(stream: bytes) -> list[dict[str, Any]]:
    parsed = []
    for data in frames(stream):
        chunk = json.loads(data)
        assert isinstance(chunk, dict)
        parsed.append(chunk)
    return parsed


@dataclass(frozen=True)
class Expected:
    content: str
    finish: str
    usage: tuple[int, int]
    reasoning: str = ""
    # (id as sent by Ollama or None when it sent none, name, arguments)
    tool_calls: tuple[tuple[str | None, str, dict[str, Any]], ...] = ()


CHAT_STREAMS = {
    "chat-stream.ndjson": Expected("The sky is blue.", "stop", (26, 282)),
    "chat-done-content.ndjson": Expected("Hello there!", "stop", (12, 3)),
    "chat-length.ndjson": Expected("Once upon", "length", (9, 2)),
    "chat-no-metrics.ndjson": Expected("ok", "stop", (0, 0)),
    "chat-thinking.ndjson": Expected(
        "42", "stop", (20, 7), reasoning="Let me think. Six times seven."
    ),
    "chat-tools-rendered.ndjson": Expected(
        "",
        "tool_calls",
        (140, 18),
        tool_calls=(("call_k3j9x0qz", "get_weather", {"city": "Tokyo"}),),
    ),
    "chat-tools-native.ndjson": Expected(
        "",
        "tool_calls",
        (151, 41),
        tool_calls=(
            (None, "get_weather", {"city": "Tokyo", "unit": "celsius"}),
            (None, "get_time", {"tz": "Asia/Tokyo"}),
        ),
    ),
}
COMPLETION_STREAMS = {
    "generate-stream.ndjson": Expected("The sky is blue.", "stop", (26, 259)),
    "generate-length.ndjson": Expected("Once upon", "length", (5, 2)),
    "generate-no-metrics.ndjson": Expected("ok", "stop", (0, 0)),
}
USAGE = [True, False]
USAGE_IDS = ["with-usage", "without-usage"]


def test_every_recorded_stream_has_an_expectation() -> None:
    recorded = sorted(p.name for p in OLLAMA.glob("*.ndjson"))
    assert recorded == sorted([*CHAT_STREAMS, *COMPLETION_STREAMS])


def chat_stream(
    name: str, include_usage: bool, model: str = "ollama/llama3"
) -> tuple[bytes, Usage]:
    return replay(ChatStream(model, ID, CREATED, include_usage), lines(name))


def completion_stream(name: str, include_usage: bool) -> tuple[bytes, Usage]:
    return replay(CompletionStream("ollama/llama3", "cmpl-42", CREATED, include_usage), lines(name))


def content_of(chunk: dict[str, Any]) -> str:
    return "".join(c["delta"].get("content") or "" for c in chunk["choices"])


@pytest.mark.parametrize("include_usage", USAGE, ids=USAGE_IDS)
@pytest.mark.parametrize("name", sorted(CHAT_STREAMS), ids=sorted(CHAT_STREAMS))
def test_chat_stream_golden(name: str, include_usage: bool) -> None:
    expected = CHAT_STREAMS[name]
    stream, usage = chat_stream(name, include_usage)
    parsed = chunks(stream)

    for chunk in parsed:  # one identity for the whole stream
        assert chunk["id"] == ID
        assert chunk["created"] == CREATED
        assert chunk["model"] == "ollama/llama3"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["system_fingerprint"] == "fp_jarvis"

    first = parsed[0]["choices"][0]
    assert first["delta"]["role"] == "assistant"
    assert first["finish_reason"] is None

    if include_usage:
        *body_chunks, usage_chunk = parsed
        assert usage_chunk["choices"] == []
        prompt, completion = expected.usage
        assert usage_chunk["usage"] == {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    else:
        body_chunks = parsed
    assert all("usage" not in chunk for chunk in body_chunks)
    assert usage == Usage(*expected.usage)

    *content_chunks, finish = body_chunks
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": expected.finish}
    ]
    for chunk in content_chunks:
        assert len(chunk["choices"]) == 1
        assert chunk["choices"][0]["index"] == 0
        assert chunk["choices"][0]["finish_reason"] is None
    assert "".join(content_of(c) for c in content_chunks) == expected.content
    reasoning = "".join(
        c["choices"][0]["delta"].get("reasoning_content", "") for c in content_chunks
    )
    assert reasoning == expected.reasoning


@pytest.mark.parametrize(
    "name",
    ["chat-tools-rendered.ndjson", "chat-tools-native.ndjson"],
    ids=["rendered-path", "native-path-on-done-line"],
)
def test_chat_stream_tool_calls(name: str) -> None:
    expected = CHAT_STREAMS[name]
    parsed = chunks(chat_stream(name, include_usage=False)[0])
    calls = [
        call for chunk in parsed for call in chunk["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert [c["index"] for c in calls] == list(range(len(expected.tool_calls)))
    for call, (id_, name_, arguments) in zip(calls, expected.tool_calls, strict=True):
        assert call["type"] == "function"
        assert call["function"]["name"] == name_
        assert isinstance(call["function"]["arguments"], str)
        assert json.loads(call["function"]["arguments"]) == arguments
        if id_ is None:  # Ollama sent no id (or ""): the router makes one
            assert call["id"].startswith("call_") and len(call["id"]) > len("call_")
        else:
            assert call["id"] == id_
    assert len({c["id"] for c in calls}) == len(calls)
    assert parsed[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_call_indexes_continue_across_lines() -> None:
    encoder = ChatStream("m", ID, CREATED, False)
    call = {"function": {"name": "f", "arguments": {}}}
    first = encoder.feed({"message": {"role": "assistant", "content": "", "tool_calls": [call]}})
    second = encoder.feed(
        {"message": {"role": "assistant", "content": "", "tool_calls": [call, call]}, "done": True}
    )
    indexes = [
        c["index"]
        for chunk in chunks(first + second + sse.DONE)
        for c in chunk["choices"][0]["delta"]["tool_calls"]
    ]
    assert indexes == [0, 1, 2]


def test_done_line_content_is_not_lost() -> None:
    encoder = ChatStream("m", ID, CREATED, False)
    done = {"message": {"role": "assistant", "content": "!"}, "done": True, "done_reason": "stop"}
    fed = chunks(encoder.feed(done) + sse.DONE)
    assert [content_of(c) for c in fed] == ["!"]
    completion_encoder = CompletionStream("m", "cmpl-1", CREATED, False)
    fed = chunks(completion_encoder.feed({"response": " blue.", "done": True}) + sse.DONE)
    assert [c["choices"][0]["text"] for c in fed] == [" blue."]


@pytest.mark.parametrize(
    "line",
    [
        {"message": {"role": "assistant", "content": ""}, "done": False},
        {"message": {"role": "assistant"}, "done": False},
        {"done": False},
        {"message": "oops", "done": False},
    ],
    ids=["empty-content", "no-content", "no-message", "message-not-object"],
)
def test_lines_without_text_write_nothing(line: dict[str, Any]) -> None:
    assert ChatStream("m", ID, CREATED, False).feed(line) == b""


def test_thinking_and_content_on_one_line_are_two_chunks() -> None:
    line = {"message": {"role": "assistant", "content": "4", "thinking": "six times seven"}}
    fed = chunks(ChatStream("m", ID, CREATED, False).feed(line) + sse.DONE)
    assert [c["choices"][0]["delta"] for c in fed] == [
        {"reasoning_content": "six times seven"},
        {"content": "4"},
    ]


@pytest.mark.parametrize(
    "model",
    ['we"ird\\model', "line\nbreak", "ünïcode/模型:latest"],
    ids=["quote-and-backslash", "newline", "unicode"],
)
def test_model_name_is_json_escaped_in_every_chunk(model: str) -> None:
    stream, _ = chat_stream("chat-stream.ndjson", True, model=model)
    assert all(chunk["model"] == model for chunk in chunks(stream))


def test_content_with_json_specials_survives() -> None:
    text = 'say "hi"\n\tand \\ then </script> \u2028 data: [DONE]\n\n'
    encoder = ChatStream("m", ID, CREATED, False)
    stream = encoder.start() + encoder.feed({"message": {"content": text}})
    stream += encoder.finish({"done": True})[0]
    assert "".join(content_of(c) for c in chunks(stream)) == text


@pytest.mark.parametrize("include_usage", USAGE, ids=USAGE_IDS)
@pytest.mark.parametrize("name", sorted(COMPLETION_STREAMS), ids=sorted(COMPLETION_STREAMS))
def test_completion_stream_golden(name: str, include_usage: bool) -> None:
    expected = COMPLETION_STREAMS[name]
    stream, usage = completion_stream(name, include_usage)
    parsed = chunks(stream)
    for chunk in parsed:
        assert chunk["id"] == "cmpl-42"
        assert chunk["created"] == CREATED
        assert chunk["model"] == "ollama/llama3"
        assert chunk["object"] == "text_completion"  # not ".chunk" for completions
    if include_usage:
        *body_chunks, usage_chunk = parsed
        assert usage_chunk["choices"] == []
        assert usage_chunk["usage"]["prompt_tokens"] == expected.usage[0]
        assert usage_chunk["usage"]["completion_tokens"] == expected.usage[1]
        assert usage_chunk["usage"]["total_tokens"] == sum(expected.usage)
    else:
        body_chunks = parsed
    assert all("usage" not in chunk for chunk in body_chunks)
    assert usage == Usage(*expected.usage)
    *text_chunks, finish = body_chunks
    assert finish["choices"] == [
        {"text": "", "index": 0, "logprobs": None, "finish_reason": expected.finish}
    ]
    assert all(c["choices"][0]["finish_reason"] is None for c in text_chunks)
    assert "".join(c["choices"][0]["text"] for c in text_chunks) == expected.content


def test_generate_context_never_reaches_the_client() -> None:
    stream, _ = completion_stream("generate-stream.ndjson", True)
    assert b"context" not in stream
    assert b"128006" not in stream


# -- the OpenAI SDK reads what we write -------------------------------------------------------
@pytest.fixture(scope="module")
def sdk() -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key="test", base_url="http://127.0.0.1:9/v1", max_retries=0) as client:
        yield client


def sdk_stream(client: openai.OpenAI, cast_to: type[Any], data: bytes) -> list[Any]:
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(200, headers=dict(sse.HEADERS), content=data, request=request)
    return list(openai.Stream(cast_to=cast_to, response=response, client=client))


@pytest.mark.parametrize("include_usage", USAGE, ids=USAGE_IDS)
@pytest.mark.parametrize("name", sorted(CHAT_STREAMS), ids=sorted(CHAT_STREAMS))
def test_sdk_reads_chat_stream(sdk: openai.OpenAI, name: str, include_usage: bool) -> None:
    expected = CHAT_STREAMS[name]
    stream, _ = chat_stream(name, include_usage)
    for data in frames(stream):  # strict validation of every chunk against the SDK's types
        ChatCompletionChunk.model_validate_json(data)
    received = sdk_stream(sdk, ChatCompletionChunk, stream)
    assert len(received) == len(frames(stream))
    assert all(isinstance(c, ChatCompletionChunk) for c in received)
    with_choices = [c for c in received if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == expected.content
    assert with_choices[0].choices[0].delta.role == "assistant"
    assert with_choices[-1].choices[0].finish_reason == expected.finish
    calls = [t for c in with_choices for t in c.choices[0].delta.tool_calls or []]
    assert [(t.function.name, json.loads(t.function.arguments)) for t in calls] == [
        (n, a) for _, n, a in expected.tool_calls
    ]
    if include_usage:
        assert received[-1].choices == []
        assert received[-1].usage is not None
        assert received[-1].usage.total_tokens == sum(expected.usage)
    else:
        assert all(c.usage is None for c in received)


@pytest.mark.parametrize("include_usage", USAGE, ids=USAGE_IDS)
@pytest.mark.parametrize("name", sorted(COMPLETION_STREAMS), ids=sorted(COMPLETION_STREAMS))
def test_sdk_reads_completion_stream(sdk: openai.OpenAI, name: str, include_usage: bool) -> None:
    expected = COMPLETION_STREAMS[name]
    stream, _ = completion_stream(name, include_usage)
    for data in frames(stream):
        # OpenAI itself sends finish_reason null on text chunks (api-reference.md 3.5) although
        # the SDK's type says otherwise; the SDK builds those leniently, so validate the rest.
        if b'"finish_reason":null' not in data:
            Completion.model_validate_json(data)
    received = sdk_stream(sdk, Completion, stream)
    with_choices = [c for c in received if c.choices]
    assert "".join(c.choices[0].text for c in with_choices) == expected.content
    assert with_choices[-1].choices[0].finish_reason == expected.finish
    if include_usage:
        assert received[-1].choices == []
        assert received[-1].usage is not None
        assert received[-1].usage.completion_tokens == expected.usage[1]


def test_sdk_raises_on_the_error_event_after_content(sdk: openai.OpenAI) -> None:
    encoder = ChatStream("m", ID, CREATED, False)
    stream = encoder.start() + encoder.feed({"message": {"content": "partial"}})
    stream += sse.error_event("The stream failed: node gpu-a ended the stream early")
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(200, headers=dict(sse.HEADERS), content=stream, request=request)
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in openai.Stream(cast_to=ChatCompletionChunk, response=response, client=sdk):
            received.append(chunk)
    assert caught.value.message == "The stream failed: node gpu-a ended the stream early"
    assert [c.choices[0].delta.content for c in received] == ["", "partial"]


def test_sdk_skips_keepalive_comments(sdk: openai.OpenAI) -> None:
    stream, _ = chat_stream("chat-stream.ndjson", False)
    first, rest = stream.split(b"\n\n", 1)
    received = sdk_stream(sdk, ChatCompletionChunk, first + b"\n\n" + sse.KEEPALIVE + rest)
    assert "".join(c.choices[0].delta.content or "" for c in received) == "The sky is blue."


_CALL_ID = re.compile(rb'"call_[0-9a-f]{24}"')


@pytest.mark.parametrize("name", sorted([*CHAT_STREAMS, *COMPLETION_STREAMS]))
def test_feed_all_writes_what_feed_writes(name: str) -> None:
    """The relay's batched `feed_all` makes the same bytes as `feed` line by line."""

    def encoder() -> ChatStream | CompletionStream:
        if name.startswith("chat"):
            return ChatStream("m", ID, CREATED, True)
        return CompletionStream("m", "cmpl-42", CREATED, True)

    one, batched = encoder(), encoder()
    recorded = lines(name)
    expected = b"".join(one.feed(line) for line in recorded)
    out: list[bytes] = []
    batched.feed_all(recorded[:2], out)  # two reads, as a relay would get them
    batched.feed_all(recorded[2:], out)
    assert all(out)  # lines without text add nothing, not b""
    # Tool calls without an id get a random one.
    assert _CALL_ID.sub(b"id", b"".join(out)) == _CALL_ID.sub(b"id", expected)
    assert one.finish(recorded[-1])[1] == batched.finish(recorded[-1])[1]
