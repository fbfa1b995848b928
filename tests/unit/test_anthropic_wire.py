"""Anthropic Messages ⇄ Ollama translation: request payloads, 400s, answers, streams, errors.

Streams are replayed from the recorded Ollama lines (`tests/fixtures/ollama/*.ndjson`) the way
the handler feeds them. Every object and event is validated against the Anthropic SDK's own
types, and every stream is read back by the SDK (its SSE decoder and `MessageStream`, which is
what `client.messages.stream()` gives).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic._error_classes import make_status_error
from anthropic.lib.streaming import MessageStream
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorType
from pydantic import TypeAdapter

from router.api.errors import to_response
from router.errors import BadRequest, ModelNotFound, ServiceUnavailable, Unauthorized
from router.wire.anthropic import (
    build_message,
    context_overflow,
    count_tokens_body,
    count_tokens_payload,
    error_body,
    error_type,
    messages_payload,
)
from router.wire.anthropic_parse import MessagesRequest, parse_count_tokens, parse_messages
from router.wire.anthropic_stream import PING, MessagesStream
from router.wire.ollama import Gathered

OLLAMA = Path(__file__).resolve().parent.parent / "fixtures" / "ollama"
EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
MSG_ID, MODEL = "msg_0123456789abcdef", "ollama/llama3"
PNG_B64 = "iVBORw0KGgo="
HI = {"role": "user", "content": "hi"}
WEATHER = {
    "name": "get_weather",
    "description": "Get weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
NATIVE_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather",
        "parameters": WEATHER["input_schema"],
    },
}
TIME = {"name": "get_time", "input_schema": {"type": "object"}}
NATIVE_TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object"}},
}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Tokyo"}}
NATIVE_CALL = {"id": "toolu_1", "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "22C sunny"}
NATIVE_RESULT = {
    "role": "tool",
    "content": "22C sunny",
    "tool_call_id": "toolu_1",
    "tool_name": "get_weather",
}


def ids() -> Any:
    counts: Counter[str] = Counter()

    def new_id(prefix: str) -> str:
        counts[prefix] += 1
        return f"{prefix}{counts[prefix]:04d}"

    return new_id


def lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (OLLAMA / name).read_text().splitlines() if line]


def req(**changes: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 256, "messages": [HI], **changes}


def native(**changes: Any) -> dict[str, Any]:
    return {
        "model": "llama3:latest",
        "messages": [HI],
        "stream": True,
        "options": {"temperature": 1.0, "top_p": 1.0, "num_predict": 256},
        **changes,
    }


def opts(**changes: Any) -> dict[str, Any]:
    return {"temperature": 1.0, "top_p": 1.0, "num_predict": 256, **changes}


def payload(body: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(messages_payload(parse_messages(body), "llama3:latest"))
    return data


# -- request payloads -------------------------------------------------------------------------
PAYLOADS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("minimal", req(), native()),
    ("stream-client-still-streams-upstream", req(stream=True), native()),
    ("non-stream-client-streams-upstream", req(stream=False), native()),
    (
        "system-string",
        req(system="Be terse."),
        native(messages=[{"role": "system", "content": "Be terse."}, HI]),
    ),
    (
        "system-blocks-joined",
        req(
            system=[
                {"type": "text", "text": "Be terse."},
                {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}},
            ]
        ),
        native(messages=[{"role": "system", "content": "Be terse.\nBe kind."}, HI]),
    ),
    (
        "text-blocks-and-base64-image",
        req(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": PNG_B64,
                            },
                        },
                        {"type": "text", "text": "this?"},
                    ],
                }
            ]
        ),
        native(messages=[{"role": "user", "content": "what is\nthis?", "images": [PNG_B64]}]),
    ),
    (
        "tool-use-round-trip",
        req(
            messages=[
                HI,
                {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, TOOL_USE]},
                {"role": "user", "content": [RESULT]},
            ]
        ),
        native(
            messages=[
                HI,
                {"role": "assistant", "content": "Checking.", "tool_calls": [NATIVE_CALL]},
                NATIVE_RESULT,
            ]
        ),
    ),
    (
        "two-tool-uses-two-results-then-text",
        req(
            messages=[
                HI,
                {"role": "assistant", "content": [TOOL_USE, {**TOOL_USE, "id": "toolu_2"}]},
                {
                    "role": "user",
                    "content": [
                        RESULT,
                        {
                            **RESULT,
                            "tool_use_id": "toolu_2",
                            "content": [{"type": "text", "text": "18C"}],
                        },
                        {"type": "text", "text": "and now?"},
                    ],
                },
            ]
        ),
        native(
            messages=[
                HI,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [NATIVE_CALL, {**NATIVE_CALL, "id": "toolu_2"}],
                },
                NATIVE_RESULT,
                {**NATIVE_RESULT, "tool_call_id": "toolu_2", "content": "18C"},
                {"role": "user", "content": "and now?"},
            ]
        ),
    ),
    (
        "tool-result-error-said-in-text",
        req(
            messages=[
                HI,
                {"role": "assistant", "content": [TOOL_USE]},
                {
                    "role": "user",
                    "content": [{**RESULT, "content": "no such city", "is_error": True}],
                },
            ]
        ),
        native(
            messages=[
                HI,
                {"role": "assistant", "content": "", "tool_calls": [NATIVE_CALL]},
                {**NATIVE_RESULT, "content": "Error: no such city"},
            ]
        ),
    ),
    (
        "thinking-replayed-redacted-dropped",
        req(
            messages=[
                HI,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "text", "text": "Hello."},
                    ],
                },
                {"role": "user", "content": "again"},
            ]
        ),
        native(
            messages=[
                HI,
                {"role": "assistant", "content": "Hello.", "thinking": "Let me see."},
                {"role": "user", "content": "again"},
            ]
        ),
    ),
    ("tools-to-native", req(tools=[WEATHER]), native(tools=[NATIVE_WEATHER])),
    (
        "custom-type-tool",
        req(tools=[{**TIME, "type": "custom"}]),
        native(tools=[NATIVE_TIME]),
    ),
    (
        "tool-choice-auto",
        req(tools=[WEATHER], tool_choice={"type": "auto"}),
        native(tools=[NATIVE_WEATHER]),
    ),
    (
        "tool-choice-any-offers-all",
        req(tools=[WEATHER, TIME], tool_choice={"type": "any"}),
        native(tools=[NATIVE_WEATHER, NATIVE_TIME]),
    ),
    ("tool-choice-none-drops", req(tools=[WEATHER], tool_choice={"type": "none"}), native()),
    (
        "tool-choice-tool-narrows",
        req(tools=[WEATHER, TIME], tool_choice={"type": "tool", "name": "get_time"}),
        native(tools=[NATIVE_TIME]),
    ),
    (
        "sampling",
        req(temperature=0.2, top_p=0.5, top_k=20, stop_sequences=["\n\n", ""]),
        native(options=opts(temperature=0.2, top_p=0.5, top_k=20, stop=["\n\n"])),
    ),
    ("zero-temperature-kept", req(temperature=0), native(options=opts(temperature=0.0))),
    (
        "thinking-enabled",
        req(thinking={"type": "enabled", "budget_tokens": 1024}),
        native(think=True),
    ),
    ("thinking-disabled", req(thinking={"type": "disabled"}), native(think=False)),
    ("thinking-adaptive-model-default", req(thinking={"type": "adaptive"}), native()),
    ("effort", req(output_config={"effort": "high"}), native(think="high")),
    (
        "effort-but-disabled",
        req(thinking={"type": "disabled"}, output_config={"effort": "high"}),
        native(think=False),
    ),
    ("effort-xhigh-is-max", req(output_config={"effort": "xhigh"}), native(think="max")),
    (
        "structured-output-format",
        req(output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}}),
        native(format={"type": "object"}),
    ),
    ("metadata-not-sent", req(metadata={"user_id": "u1"}), native()),
]


@pytest.mark.parametrize(
    ("body", "expected"), [p[1:] for p in PAYLOADS], ids=[p[0] for p in PAYLOADS]
)
def test_payload(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert payload(body) == expected


def test_a_model_that_cannot_think_is_not_asked_to() -> None:
    request = parse_messages(req(thinking={"type": "enabled", "budget_tokens": 1024}))
    assert "think" not in json.loads(messages_payload(request, "m", can_think=False))
    assert "think" not in json.loads(count_tokens_payload(request, "m", can_think=False))
    assert json.loads(messages_payload(request, "m"))["think"] is True


def test_metadata_user_id_is_the_user() -> None:
    assert parse_messages(req(metadata={"user_id": "u1"})).user == "u1"
    assert parse_messages(req()).user is None


def test_count_tokens_needs_no_max_tokens_and_generates_one_token() -> None:
    body = req(system="s", tools=[WEATHER])
    del body["max_tokens"]
    request = parse_count_tokens(body)
    data = json.loads(count_tokens_payload(request, "llama3:latest"))
    assert data["options"]["num_predict"] == 1
    assert data["stream"] is True
    assert data["tools"] == [NATIVE_WEATHER]
    assert data["messages"][0] == {"role": "system", "content": "s"}
    assert json.loads(count_tokens_body({"done": True, "prompt_eval_count": 14})) == {
        "input_tokens": 14
    }
    assert json.loads(count_tokens_body({"done": True})) == {"input_tokens": 0}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no-model", {"max_tokens": 1, "messages": [HI]}, "model"),
    ("no-max-tokens", {"model": MODEL, "messages": [HI]}, "max_tokens"),
    ("max-tokens-zero", req(max_tokens=0), "max_tokens"),
    ("max-tokens-bool", req(max_tokens=True), "max_tokens"),
    ("no-messages", {"model": MODEL, "max_tokens": 1}, "messages"),
    ("empty-messages", req(messages=[]), "messages"),
    ("messages-not-list", req(messages="hi"), "messages"),
    ("message-not-object", req(messages=["hi"]), "messages.0"),
    ("system-role", req(messages=[{"role": "system", "content": "x"}]), "messages.0.role"),
    ("content-number", req(messages=[{"role": "user", "content": 3}]), "messages.0.content"),
    (
        "block-without-type",
        req(messages=[{"role": "user", "content": [{"text": "x"}]}]),
        "messages.0.content.0.type",
    ),
    (
        "url-image",
        req(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}],
                }
            ]
        ),
        "messages.0.content.0.source",
    ),
    (
        "document",
        req(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
        "messages.0.content.0.type",
    ),
    (
        "tool-use-in-user-turn",
        req(messages=[{"role": "user", "content": [TOOL_USE]}]),
        "messages.0.content.0.type",
    ),
    (
        "tool-use-input-not-object",
        req(messages=[HI, {"role": "assistant", "content": [{**TOOL_USE, "input": "x"}]}]),
        "messages.1.content.0.input",
    ),
    (
        "tool-result-without-id",
        req(messages=[{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]),
        "messages.0.content.0.tool_use_id",
    ),
    (
        "tool-result-bad-block",
        req(messages=[{"role": "user", "content": [{**RESULT, "content": [{"type": "video"}]}]}]),
        "messages.0.content.0.content.0.type",
    ),
    ("system-number", req(system=3), "system"),
    ("system-image-block", req(system=[{"type": "image"}]), "system.0.type"),
    (
        "server-tool",
        req(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        "tools.0.type",
    ),
    ("tool-without-schema", req(tools=[{"name": "f"}]), "tools.0.input_schema"),
    ("tool-without-name", req(tools=[{"input_schema": {}}]), "tools.0.name"),
    (
        "tool-choice-unknown-name",
        req(tools=[WEATHER], tool_choice={"type": "tool", "name": "x"}),
        "tool_choice.name",
    ),
    (
        "tool-choice-bad-type",
        req(tools=[WEATHER], tool_choice={"type": "some"}),
        "tool_choice.type",
    ),
    ("tool-choice-string", req(tools=[WEATHER], tool_choice="auto"), "tool_choice"),
    ("temperature-range", req(temperature=1.5), "temperature"),
    ("top-p-type", req(top_p="x"), "top_p"),
    ("top-k-type", req(top_k=1.5), "top_k"),
    ("stop-sequences-type", req(stop_sequences=[1]), "stop_sequences"),
    ("thinking-type", req(thinking={"type": "always"}), "thinking.type"),
    ("effort-bogus", req(output_config={"effort": "ultra"}), "output_config.effort"),
    ("stream-not-bool", req(stream="yes"), "stream"),
    ("format-type", req(output_config={"format": {"type": "yaml"}}), "output_config.format.type"),
    (
        "format-schema",
        req(output_config={"format": {"type": "json_schema"}}),
        "output_config.format.schema",
    ),
    ("output-config-type", req(output_config="high"), "output_config"),
]


@pytest.mark.parametrize(("body", "param"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_request_names_the_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_messages(body)
    assert caught.value.param == param
    assert caught.value.message.startswith(f"{param}: ")


def test_request_object_is_frozen() -> None:
    request = parse_messages(req())
    assert isinstance(request, MessagesRequest)
    with pytest.raises(AttributeError):
        request.model = "x"  # type: ignore[misc]


# -- answers ----------------------------------------------------------------------------------
def gathered(name: str) -> dict[str, Any]:
    g = Gathered()
    assert g.feed_all(lines(name))
    return g.chat()


def answer(data: dict[str, Any]) -> Message:
    body, _ = build_message(data, MODEL, MSG_ID, ids())
    return Message.model_validate_json(body)


def done(**changes: Any) -> dict[str, Any]:
    return {
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 5,
        "eval_count": 3,
        **changes,
    }


def said(content: str = "", **fields: Any) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": content, **fields}, "done": False}


Calls = list[tuple[str, dict[str, Any]]]
NATIVE_CALLS = [
    ("get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ("get_time", {"tz": "Asia/Tokyo"}),
]
# fixture → (block types, text, thinking, tool calls, stop_reason, usage)
ANSWERS: dict[str, tuple[list[str], str, str, Calls, str, tuple[int, int]]] = {
    "chat-stream.ndjson": (["text"], "The sky is blue.", "", [], "end_turn", (26, 282)),
    "chat-done-content.ndjson": (["text"], "Hello there!", "", [], "end_turn", (12, 3)),
    "chat-thinking.ndjson": (
        ["thinking", "text"],
        "42",
        "Let me think. Six times seven.",
        [],
        "end_turn",
        (20, 7),
    ),
    "chat-length.ndjson": (["text"], "Once upon", "", [], "max_tokens", (9, 2)),
    "chat-tools-rendered.ndjson": (
        ["tool_use"],
        "",
        "",
        [("get_weather", {"city": "Tokyo"})],
        "tool_use",
        (140, 18),
    ),
    "chat-tools-native.ndjson": (
        ["tool_use", "tool_use"],
        "",
        "",
        NATIVE_CALLS,
        "tool_use",
        (151, 41),
    ),
}
NAMES = sorted(ANSWERS)


def check(message: Any, name: str) -> None:
    types, text, thinking, calls, reason, usage = ANSWERS[name]
    assert message.id == MSG_ID
    assert message.model == MODEL
    assert message.role == "assistant"
    assert [b.type for b in message.content] == types
    assert "".join(b.text for b in message.content if b.type == "text") == text
    assert "".join(b.thinking for b in message.content if b.type == "thinking") == thinking
    assert all(b.signature == "" for b in message.content if b.type == "thinking")
    assert [(b.name, b.input) for b in message.content if b.type == "tool_use"] == calls
    tool_ids = [b.id for b in message.content if b.type == "tool_use"]
    assert len(set(tool_ids)) == len(tool_ids)
    assert all(i.startswith("toolu_") for i in tool_ids)
    assert message.stop_reason == reason
    assert message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == usage


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_non_streamed_answer(name: str) -> None:
    message = answer(gathered(name))
    check(message, name)
    assert message.type == "message"
    assert message.usage.cache_read_input_tokens == 0


def test_empty_answer_has_no_blocks() -> None:
    message = answer(done())
    assert message.content == []
    assert message.stop_reason == "end_turn"


# -- streams ----------------------------------------------------------------------------------
def encode(stream_lines: list[dict[str, Any]]) -> bytes:
    encoder = MessagesStream(MODEL, MSG_ID, ids())
    out = [encoder.start()]
    encoder.feed_all(stream_lines, out)
    tail, _ = encoder.finish(stream_lines[-1])
    return b"".join(out) + tail


def frames(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """`event: <name>` + `data: <json>` + blank line: the name is mandatory (pitfall 31)."""
    assert data.endswith(b"\n\n")
    out = []
    for frame in data[:-2].split(b"\n\n"):
        event, payload = frame.split(b"\n")
        assert event.startswith(b"event: ")
        assert payload.startswith(b"data: ")
        body = json.loads(payload[6:])
        assert body["type"] == event[7:].decode()
        out.append((body["type"], body))
    return out


def sdk_stream(data: bytes) -> MessageStream[Any]:
    client = anthropic.Anthropic(api_key="k", base_url="http://127.0.0.1:9", max_retries=0)
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/messages")
    headers = {"Content-Type": "text/event-stream"}
    response = httpx2.Response(200, headers=headers, content=data, request=request)
    raw: anthropic.Stream[Any] = anthropic.Stream(
        cast_to=RawMessageStreamEvent, response=response, client=client
    )
    return MessageStream(raw, anthropic.NOT_GIVEN)


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_stream_events_are_the_sdk_types(name: str) -> None:
    parsed = frames(encode(lines(name)))
    assert [t for t, _ in parsed[:2]] == ["message_start", "ping"]
    assert [t for t, _ in parsed[-2:]] == ["message_delta", "message_stop"]
    for kind, body in parsed:
        if kind != "ping":
            EVENTS.validate_python(body)
    start = parsed[0][1]["message"]
    assert (start["content"], start["stop_reason"]) == ([], None)
    assert b"[DONE]" not in encode(lines(name))


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_stream_read_back_by_the_sdk(name: str) -> None:
    stream = sdk_stream(encode(lines(name)))
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
    check(final, name)
    assert text == ANSWERS[name][1]


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_stream_ends_with_the_gathered_answer(name: str) -> None:
    final = sdk_stream(encode(lines(name))).get_final_message()
    # (the SDK sets stop_details from message_delta; both are None)
    assert final.to_dict(exclude_none=True) == answer(gathered(name)).to_dict(exclude_none=True)


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_blocks_indexed_from_zero_one_at_a_time(name: str) -> None:
    parsed = frames(encode(lines(name)))
    current: int | None = None
    started: list[int] = []
    for kind, body in parsed:
        if kind == "content_block_start":
            assert current is None
            current = body["index"]
            assert current == len(started)
            started.append(current)
        elif kind == "content_block_delta":
            assert body["index"] == current
        elif kind == "content_block_stop":
            assert body["index"] == current
            current = None
    assert current is None
    assert started == list(range(len(ANSWERS[name][0])))


def test_text_then_calls_then_thinking_each_block_its_own_index() -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
    stream_lines = [
        said("Checking"),
        said(" now.", tool_calls=[call, call]),
        said("", thinking="hmm"),
        said("Done."),
        done(),
    ]
    final = sdk_stream(encode(stream_lines)).get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use", "thinking", "text"]
    assert final.stop_reason == "tool_use"
    assert len({b.id for b in final.content if b.type == "tool_use"}) == 2


def test_interleaved_thinking_stays_out_of_text() -> None:
    stream_lines = [said("", thinking="a"), said("b"), said("", thinking="c"), said("d"), done()]
    stream = sdk_stream(encode(stream_lines))
    assert "".join(stream.text_stream) == "bd"
    final = stream.get_final_message()
    assert [b.thinking for b in final.content if b.type == "thinking"] == ["a", "c"]


def test_input_tokens_arrive_with_message_delta() -> None:
    parsed = frames(encode([said("x"), done(prompt_eval_count=33, eval_count=2)]))
    assert parsed[0][1]["message"]["usage"]["input_tokens"] == 0
    assert parsed[-2][1]["usage"] == {"input_tokens": 33, "output_tokens": 2}


def test_feed_all_matches_line_by_line() -> None:
    for name in NAMES:
        stream_lines = lines(name)
        encoder = MessagesStream(MODEL, MSG_ID, ids())
        out = [encoder.start()]
        for line in stream_lines:
            encoder.feed(line, out)
        tail, _ = encoder.finish(stream_lines[-1])
        assert b"".join(out) + tail == encode(stream_lines), name


def test_sdk_raises_on_the_error_event() -> None:
    encoder = MessagesStream(MODEL, MSG_ID, ids())
    out = [encoder.start()]
    encoder.feed_all([said("partial")], out)
    data = b"".join(out) + encoder.error("The stream failed: node gpu-a ended early")
    kind, body = frames(data)[-1]
    assert (kind, body["error"]["type"]) == ("error", "api_error")
    with pytest.raises(anthropic.APIStatusError, match="node gpu-a ended early"):
        "".join(sdk_stream(data).text_stream)


# -- errors -----------------------------------------------------------------------------------
ERRORS: list[tuple[int, str, type[Exception]]] = [
    (400, "invalid_request_error", anthropic.BadRequestError),
    (401, "authentication_error", anthropic.AuthenticationError),
    (403, "permission_error", anthropic.PermissionDeniedError),
    (404, "not_found_error", anthropic.NotFoundError),
    (405, "invalid_request_error", anthropic.APIStatusError),
    (413, "request_too_large", anthropic.APIStatusError),
    (429, "rate_limit_error", anthropic.RateLimitError),
    (500, "api_error", anthropic.InternalServerError),
    (502, "api_error", anthropic.InternalServerError),
    (503, "overloaded_error", anthropic.InternalServerError),
    (504, "timeout_error", anthropic.InternalServerError),
    (529, "overloaded_error", anthropic.InternalServerError),
]


@pytest.mark.parametrize(("status", "kind", "exc"), ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_error_body_and_sdk_exception(status: int, kind: str, exc: type[Exception]) -> None:
    body = json.loads(error_body(status, "something failed", "req_1"))
    assert body == {
        "type": "error",
        "error": {"type": kind, "message": "something failed"},
        "request_id": "req_1",
    }
    assert kind in (*ErrorType.__args__, "request_too_large")
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/messages")
    response = httpx2.Response(status, json=body, request=request)
    error = make_status_error("x", body=body, response=response)
    assert isinstance(error, exc)
    assert "something failed" in str(error)


def test_router_errors_in_anthropic_shape() -> None:
    cases = [
        (BadRequest("bad", param="x"), "invalid_request_error"),
        (Unauthorized("no key"), "authentication_error"),
        (ModelNotFound("no model"), "not_found_error"),
        (ServiceUnavailable("busy", retry_after_s=1), "overloaded_error"),
    ]
    for exc, kind in cases:
        status, _, raw = to_response(exc, method="POST", path="/v1/messages")
        body = json.loads(raw)
        assert body == {"type": "error", "error": {"type": kind, "message": exc.message}}
        assert error_type(status) == kind


def test_context_overflow_in_anthropic_words() -> None:
    error = context_overflow(208656, 200000)
    assert error.message == "prompt is too long: 208656 tokens > 200000 maximum"
    status, _, raw = to_response(error, method="POST", path="/v1/messages")
    assert json.loads(raw)["error"]["type"] == "invalid_request_error"
    assert status == 400


def test_ping_is_a_named_event_the_sdk_skips() -> None:
    encoder = MessagesStream(MODEL, MSG_ID, ids())
    out = [encoder.start(), PING]
    encoder.feed_all([said("hi")], out)
    out.append(PING)  # a keep-alive between two tokens
    encoder.feed_all([said("!")], out)
    tail, _ = encoder.finish(done())
    stream = sdk_stream(b"".join(out) + tail)
    assert "".join(stream.text_stream) == "hi!"
