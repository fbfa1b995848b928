"""OpenAI request bodies: every bad field is a 400 naming its `param`; good bodies parse.

Semantics follow the OpenAI API (api-reference.md 3.1): absent or null means "not given",
booleans are not numbers, unknown fields are ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from router.errors import BadRequest
from router.wire.openai import (
    ChatRequest,
    CompletionRequest,
    Sampling,
    load_json,
    parse_chat,
    parse_completion,
)

DROP = object()
USER = {"role": "user", "content": "hi"}
PNG = "data:image/png;base64,iVBORw0KGgo="


def chat(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "ollama/llama3", "messages": [USER]}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


def completion(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "ollama/llama3", "prompt": "Once upon a time"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


# -- load_json --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"not json", b"[1, 2]", b"null", b'"text"', b"42", b"\xff\xfe", b"{'a': 1}"],
    ids=["empty", "truncated", "text", "array", "null", "string", "number", "bad-utf8", "quotes"],
)
def test_load_json_rejects_what_is_not_an_object(body: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        load_json(body)
    assert caught.value.code == "invalid_json"
    assert caught.value.param is None


def test_load_json_returns_the_object() -> None:
    assert load_json(b'{"model": "m", "n": 1}') == {"model": "m", "n": 1}


# -- chat errors ------------------------------------------------------------------------------
CHAT_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("model-missing", chat(model=DROP), "model"),
    ("model-empty", chat(model=""), "model"),
    ("model-null", chat(model=None), "model"),
    ("model-number", chat(model=5), "model"),
    ("messages-missing", chat(messages=DROP), "messages"),
    ("messages-string", chat(messages="hi"), "messages"),
    ("messages-object", chat(messages=USER), "messages"),
    ("messages-empty", chat(messages=[]), "messages"),
    ("message-not-object", chat(messages=[USER, "hi"]), "messages[1]"),
    ("role-missing", chat(messages=[{"content": "hi"}]), "messages[0].role"),
    ("role-unknown", chat(messages=[{"role": "robot", "content": "hi"}]), "messages[0].role"),
    ("role-number", chat(messages=[{"role": 1, "content": "hi"}]), "messages[0].role"),
    ("content-missing", chat(messages=[{"role": "user"}]), "messages[0].content"),
    ("content-null", chat(messages=user(None)), "messages[0].content"),
    ("content-number", chat(messages=user(5)), "messages[0].content"),
    ("content-object", chat(messages=user({"text": "hi"})), "messages[0].content"),
    (
        "assistant-null-content-without-tool-calls",
        chat(messages=[USER, {"role": "assistant", "content": None}]),
        "messages[1].content",
    ),
    (
        "assistant-null-content-empty-tool-calls",
        chat(messages=[USER, {"role": "assistant", "content": None, "tool_calls": []}]),
        "messages[1].content",
    ),
    (
        "tool-null-content",
        chat(messages=[{"role": "tool", "content": None}]),
        "messages[0].content",
    ),
    ("part-not-object", chat(messages=user(["hi"])), "messages[0].content[0]"),
    (
        "part-type-unknown",
        chat(messages=user([{"type": "input_audio", "input_audio": {}}])),
        "messages[0].content[0].type",
    ),
    ("part-type-missing", chat(messages=user([{"text": "hi"}])), "messages[0].content[0].type"),
    (
        "text-part-without-text",
        chat(messages=user([{"type": "text", "text": 5}])),
        "messages[0].content[0].text",
    ),
    (
        "image-remote-url",
        chat(
            messages=user(
                [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ]
            )
        ),
        "messages[0].content[1].image_url.url",
    ),
    (
        "image-url-missing",
        chat(messages=user([{"type": "image_url", "image_url": {"detail": "low"}}])),
        "messages[0].content[0].image_url.url",
    ),
    (
        "image-data-url-not-base64",
        chat(messages=user([{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}])),
        "messages[0].content[0].image_url.url",
    ),
    (
        "tool-calls-not-list",
        chat(messages=[{"role": "assistant", "content": "", "tool_calls": {"id": "x"}}]),
        "messages[0].tool_calls",
    ),
    ("temperature-too-high", chat(temperature=2.01), "temperature"),
    ("temperature-negative", chat(temperature=-0.1), "temperature"),
    ("temperature-string", chat(temperature="0.5"), "temperature"),
    ("temperature-bool", chat(temperature=True), "temperature"),
    ("top-p-too-high", chat(top_p=1.5), "top_p"),
    ("top-p-bool", chat(top_p=False), "top_p"),
    ("max-tokens-zero", chat(max_tokens=0), "max_tokens"),
    ("max-tokens-negative", chat(max_tokens=-5), "max_tokens"),
    ("max-tokens-float", chat(max_tokens=1.5), "max_tokens"),
    ("max-tokens-string", chat(max_tokens="10"), "max_tokens"),
    ("max-tokens-bool", chat(max_tokens=True), "max_tokens"),
    ("max-completion-tokens-zero", chat(max_completion_tokens=0), "max_completion_tokens"),
    ("max-completion-tokens-bool", chat(max_completion_tokens=True), "max_completion_tokens"),
    ("stop-number", chat(stop=5), "stop"),
    ("stop-list-of-numbers", chat(stop=[1]), "stop"),
    ("stop-mixed-list", chat(stop=["a", None]), "stop"),
    ("stop-too-many", chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    ("seed-float", chat(seed=1.5), "seed"),
    ("seed-bool", chat(seed=True), "seed"),
    ("presence-penalty-too-high", chat(presence_penalty=2.5), "presence_penalty"),
    ("frequency-penalty-too-low", chat(frequency_penalty=-2.5), "frequency_penalty"),
    ("frequency-penalty-string", chat(frequency_penalty="0"), "frequency_penalty"),
    ("stream-string", chat(stream="true"), "stream"),
    ("stream-number", chat(stream=1), "stream"),
    (
        "stream-options-without-stream",
        chat(stream_options={"include_usage": True}),
        "stream_options",
    ),
    (
        "stream-options-with-stream-false",
        chat(stream=False, stream_options={"include_usage": True}),
        "stream_options",
    ),
    ("stream-options-not-object", chat(stream=True, stream_options=True), "stream_options"),
    (
        "include-usage-string",
        chat(stream=True, stream_options={"include_usage": "yes"}),
        "stream_options.include_usage",
    ),
    ("n-over-128", chat(n=129), "n"),
    ("n-zero", chat(n=0), "n"),
    ("n-bool", chat(n=True), "n"),
    ("tools-not-list", chat(tools={"type": "function"}), "tools"),
    ("tools-of-strings", chat(tools=["get_weather"]), "tools"),
    ("response-format-string", chat(response_format="json"), "response_format"),
    ("response-format-type-unknown", chat(response_format={"type": "xml"}), "response_format.type"),
    ("response-format-type-missing", chat(response_format={}), "response_format.type"),
    (
        "json-schema-missing",
        chat(response_format={"type": "json_schema"}),
        "response_format.json_schema",
    ),
    ("reasoning-effort-number", chat(reasoning_effort=1), "reasoning_effort"),
    ("user-number", chat(user=5), "user"),
]


@pytest.mark.parametrize(
    ("body", "param"), [c[1:] for c in CHAT_ERRORS], ids=[c[0] for c in CHAT_ERRORS]
)
def test_chat_error_names_its_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_chat(body)
    assert caught.value.param == param
    assert caught.value.message


# -- completion errors ------------------------------------------------------------------------
COMPLETION_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("model-missing", completion(model=DROP), "model"),
    ("model-list", completion(model=["m"]), "model"),
    ("prompt-missing", completion(prompt=DROP), "prompt"),
    ("prompt-null", completion(prompt=None), "prompt"),
    ("prompt-number", completion(prompt=5), "prompt"),
    ("prompt-object", completion(prompt={"text": "x"}), "prompt"),
    ("prompt-two-strings", completion(prompt=["a", "b"]), "prompt"),
    ("prompt-empty-list", completion(prompt=[]), "prompt"),
    ("prompt-token-ids", completion(prompt=[1, 2, 3]), "prompt"),
    ("n-over-128", completion(n=129), "n"),
    ("best-of-not-n", completion(n=2, best_of=3), "best_of"),
    ("max-tokens-zero", completion(max_tokens=0), "max_tokens"),
    ("temperature-too-high", completion(temperature=3), "temperature"),
    ("top-p-string", completion(top_p="1"), "top_p"),
    ("stop-too-many", completion(stop=["1", "2", "3", "4", "5"]), "stop"),
    ("suffix-number", completion(suffix=5), "suffix"),
    ("stream-string", completion(stream="yes"), "stream"),
    ("stream-options-without-stream", completion(stream_options={}), "stream_options"),
    (
        "include-usage-number",
        completion(stream=True, stream_options={"include_usage": 1}),
        "stream_options.include_usage",
    ),
]


@pytest.mark.parametrize(
    ("body", "param"),
    [c[1:] for c in COMPLETION_ERRORS],
    ids=[c[0] for c in COMPLETION_ERRORS],
)
def test_completion_error_names_its_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_completion(body)
    assert caught.value.param == param


# -- valid chat bodies ------------------------------------------------------------------------
MESSAGES_MIXED = [
    {"role": "developer", "content": "Be terse."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
            {"type": "image_url", "image_url": PNG},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "look", "arguments": '{"zoom": 2}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
    {"role": "function", "name": "look", "content": "a cat"},
    {"role": "system", "content": ""},
]
TOOLS = [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}]

CHAT_VALID: list[tuple[str, dict[str, Any], ChatRequest]] = [
    (
        "minimal",
        chat(),
        ChatRequest(model="ollama/llama3", messages=(USER,), sampling=Sampling()),
    ),
    (
        "nulls-are-not-given",
        chat(
            temperature=None,
            top_p=None,
            max_tokens=None,
            stop=None,
            seed=None,
            n=None,
            stream=None,
            stream_options=None,
            tools=None,
            response_format=None,
            user=None,
        ),
        ChatRequest(model="ollama/llama3", messages=(USER,), sampling=Sampling()),
    ),
    (
        "sampling-at-the-limits",
        chat(
            temperature=0,
            top_p=1,
            max_tokens=1,
            stop="END",
            seed=-1,
            presence_penalty=-2,
            frequency_penalty=2,
        ),
        ChatRequest(
            model="ollama/llama3",
            messages=(USER,),
            sampling=Sampling(
                temperature=0.0,
                top_p=1.0,
                max_tokens=1,
                stop=("END",),
                seed=-1,
                presence_penalty=-2.0,
                frequency_penalty=2.0,
            ),
        ),
    ),
    (
        "upper-limits",
        chat(temperature=2, top_p=0, stop=["a", "b", "c", "d"]),
        ChatRequest(
            model="ollama/llama3",
            messages=(USER,),
            sampling=Sampling(temperature=2.0, top_p=0.0, stop=("a", "b", "c", "d")),
        ),
    ),
    (
        "empty-stop-list",
        chat(stop=[]),
        ChatRequest(model="ollama/llama3", messages=(USER,), sampling=Sampling()),
    ),
    (
        "max-completion-tokens-wins",
        chat(max_tokens=100, max_completion_tokens=7),
        ChatRequest(model="ollama/llama3", messages=(USER,), sampling=Sampling(max_tokens=7)),
    ),
    (
        "max-completion-tokens-alone",
        chat(max_completion_tokens=64),
        ChatRequest(model="ollama/llama3", messages=(USER,), sampling=Sampling(max_tokens=64)),
    ),
    (
        "stream-with-usage",
        chat(stream=True, stream_options={"include_usage": True}),
        ChatRequest(
            model="ollama/llama3",
            messages=(USER,),
            sampling=Sampling(),
            stream=True,
            include_usage=True,
        ),
    ),
    (
        "stream-empty-options",
        chat(stream=True, stream_options={}),
        ChatRequest(model="ollama/llama3", messages=(USER,), sampling=Sampling(), stream=True),
    ),
    (
        "stream-false",
        chat(stream=False, n=1),
        ChatRequest(model="ollama/llama3", messages=(USER,), sampling=Sampling()),
    ),
    (
        "unknown-fields-ignored",
        chat(logit_bias={"50256": -100}, metadata={"a": "b"}, store=True, frobnicate=1),
        ChatRequest(model="ollama/llama3", messages=(USER,), sampling=Sampling()),
    ),
    (
        "every-role-and-part",
        chat(messages=MESSAGES_MIXED),
        ChatRequest(model="ollama/llama3", messages=tuple(MESSAGES_MIXED), sampling=Sampling()),
    ),
    (
        "tools-format-effort-user",
        chat(
            tools=TOOLS,
            tool_choice="auto",
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            reasoning_effort="high",
            user="alice",
        ),
        ChatRequest(
            model="ollama/llama3",
            messages=(USER,),
            sampling=Sampling(),
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            tools=tuple(TOOLS),
            tool_choice="auto",
            reasoning_effort="high",
            user="alice",
        ),
    ),
    (
        "empty-tools-are-no-tools",
        chat(tools=[], response_format={"type": "text"}),
        ChatRequest(
            model="ollama/llama3",
            messages=(USER,),
            sampling=Sampling(),
            response_format={"type": "text"},
        ),
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in CHAT_VALID], ids=[c[0] for c in CHAT_VALID]
)
def test_valid_chat_body(body: dict[str, Any], expected: ChatRequest) -> None:
    assert parse_chat(body) == expected


def test_numbers_come_out_as_floats() -> None:
    sampling = parse_chat(chat(temperature=1, top_p=1, presence_penalty=0)).sampling
    assert isinstance(sampling.temperature, float)
    assert isinstance(sampling.top_p, float)
    assert isinstance(sampling.presence_penalty, float)


def test_chat_request_is_frozen() -> None:
    req = parse_chat(chat())
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.model = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.sampling.temperature = 2.0  # type: ignore[misc]
    assert isinstance(req.messages, tuple)


def test_loaded_body_parses() -> None:
    body = b'{"model":"ollama/llama3","messages":[{"role":"user","content":"hi"}],"stream":true}'
    req = parse_chat(load_json(body))
    assert req.stream is True
    assert req.messages == (USER,)


# -- valid completion bodies ------------------------------------------------------------------
COMPLETION_VALID: list[tuple[str, dict[str, Any], CompletionRequest]] = [
    (
        "minimal",
        completion(),
        CompletionRequest(model="ollama/llama3", prompt="Once upon a time", sampling=Sampling()),
    ),
    (
        "single-prompt-in-a-list",
        completion(prompt=["Once"]),
        CompletionRequest(model="ollama/llama3", prompt="Once", sampling=Sampling()),
    ),
    (
        "everything",
        completion(
            max_tokens=16,
            temperature=0.2,
            top_p=0.5,
            stop=["\n"],
            seed=42,
            suffix=" The end.",
            stream=True,
            stream_options={"include_usage": True},
            n=1,
            best_of=1,
            echo=False,
            user="bob",
        ),
        CompletionRequest(
            model="ollama/llama3",
            prompt="Once upon a time",
            sampling=Sampling(temperature=0.2, top_p=0.5, max_tokens=16, stop=("\n",), seed=42),
            stream=True,
            include_usage=True,
            suffix=" The end.",
            user="bob",
        ),
    ),
    (
        # max_completion_tokens is a chat parameter; completions ignores it like any unknown field
        "chat-only-field-ignored",
        completion(max_completion_tokens=0),
        CompletionRequest(model="ollama/llama3", prompt="Once upon a time", sampling=Sampling()),
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [c[1:] for c in COMPLETION_VALID],
    ids=[c[0] for c in COMPLETION_VALID],
)
def test_valid_completion_body(body: dict[str, Any], expected: CompletionRequest) -> None:
    assert parse_completion(body) == expected


def test_completion_request_is_frozen() -> None:
    req = parse_completion(completion())
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.prompt = "other"  # type: ignore[misc]


def test_empty_completion_prompt_is_rejected() -> None:
    # Ollama would read "" as "load the model" and answer with no text at all.
    with pytest.raises(BadRequest) as info:
        parse_completion(completion(prompt=""))
    assert info.value.param == "prompt"


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("", None), (["", "END"], ("END",)), ([""], None)],
    ids=["empty-string", "empty-in-list", "only-empty"],
)
def test_empty_stop_strings_are_dropped(stop: Any, expected: tuple[str, ...] | None) -> None:
    assert parse_chat(chat(stop=stop)).sampling.stop == expected
