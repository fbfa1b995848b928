"""OpenAI requests → Ollama payloads: the request body a node gets for each client body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.errors import BadRequest
from router.wire.openai import parse_chat, parse_completion
from router.wire.to_ollama import chat_payload, completion_payload

MODEL = "llama3:latest"
PNG_B64 = "iVBORw0KGgo="
USER = {"role": "user", "content": "hi"}


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
