"""OpenAI Responses ⇄ Ollama translation: request payloads, 400s, answers and streams.

Streams are replayed from the recorded Ollama lines (`tests/fixtures/ollama/*.ndjson`) the way
the handler feeds them: `start()`, `feed_all(lines)` with the done line included, then
`finish(done)`. Every object and event is validated against the OpenAI SDK's own types, and every
stream is read back by the SDK (its SSE decoder, then its `responses.stream()` accumulator).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from router.errors import BadRequest
from router.wire.ollama import Gathered
from router.wire.responses import (
    ResponseHead,
    build_response,
    context_overflow,
    responses_payload,
)
from router.wire.responses_parse import ResponsesRequest, parse_responses
from router.wire.responses_stream import ResponsesStream

OLLAMA = Path(__file__).resolve().parent.parent / "fixtures" / "ollama"
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
RESP_ID, CREATED = "resp_0123456789abcdef", 1741476542
PNG_B64 = "iVBORw0KGgo="
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
NATIVE_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather",
        "parameters": WEATHER["parameters"],
    },
}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object"}}
NATIVE_TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object"}},
}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}}
CALL = {
    "type": "function_call",
    "call_id": "call_1",
    "name": "get_weather",
    "arguments": '{"city":"Tokyo"}',
}
NATIVE_CALL = {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "22C sunny"}
NATIVE_OUTPUT = {
    "role": "tool",
    "content": "22C sunny",
    "tool_call_id": "call_1",
    "tool_name": "get_weather",
}
HI = {"role": "user", "content": "hi"}


def ids() -> Any:
    """A deterministic `new_id`: a counter per prefix, so call order does not matter."""
    counts: Counter[str] = Counter()

    def new_id(prefix: str) -> str:
        counts[prefix] += 1
        return f"{prefix}{counts[prefix]:04d}"

    return new_id


def lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (OLLAMA / name).read_text().splitlines() if line]


def req(**changes: Any) -> dict[str, Any]:
    return {"model": "ollama/llama3", "input": "hi", **changes}


def native(**changes: Any) -> dict[str, Any]:
    return {
        "model": "llama3:latest",
        "messages": [HI],
        "stream": True,
        "options": {"temperature": 1.0, "top_p": 1.0},
        **changes,
    }


def payload(body: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(responses_payload(parse_responses(body), "llama3:latest"))
    return data


# -- request payloads -------------------------------------------------------------------------
PAYLOADS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("string-input", req(), native()),
    ("stream-client-still-streams-upstream", req(stream=True), native()),
    ("non-stream-client-streams-upstream", req(stream=False), native()),
    (
        "instructions-first-system",
        req(instructions="Be terse."),
        native(messages=[{"role": "system", "content": "Be terse."}, HI]),
    ),
    ("typeless-message-agents-sdk", req(input=[HI]), native()),
    (
        "developer-becomes-system",
        req(input=[{"type": "message", "role": "developer", "content": "rules"}, HI]),
        native(messages=[{"role": "system", "content": "rules"}, HI]),
    ),
    (
        "parts-joined-images-bare-base64",
        req(
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is"},
                        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}"},
                        {"type": "input_text", "text": "this?"},
                    ],
                }
            ]
        ),
        native(messages=[{"role": "user", "content": "what is\nthis?", "images": [PNG_B64]}]),
    ),
    (
        "assistant-history-output-text",
        req(
            input=[
                HI,
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "hello", "annotations": []}],
                },
                {"role": "user", "content": "again"},
            ]
        ),
        native(
            messages=[
                HI,
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "again"},
            ]
        ),
    ),
    (
        "function-call-round-trip",
        req(input=[HI, CALL, OUTPUT]),
        native(
            messages=[
                HI,
                {"role": "assistant", "content": "", "tool_calls": [NATIVE_CALL]},
                NATIVE_OUTPUT,
            ]
        ),
    ),
    (
        "two-calls-one-assistant-message",
        req(
            input=[
                HI,
                CALL,
                {**CALL, "call_id": "call_2", "arguments": '{"city":"Paris"}'},
                OUTPUT,
                {**OUTPUT, "call_id": "call_2", "output": "18C"},
            ]
        ),
        native(
            messages=[
                HI,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        NATIVE_CALL,
                        {
                            "id": "call_2",
                            "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                        },
                    ],
                },
                NATIVE_OUTPUT,
                {**NATIVE_OUTPUT, "tool_call_id": "call_2", "content": "18C"},
            ]
        ),
    ),
    (
        "assistant-text-then-call-is-one-turn",
        req(input=[HI, {"role": "assistant", "content": "Checking."}, CALL]),
        native(
            messages=[
                HI,
                {"role": "assistant", "content": "Checking.", "tool_calls": [NATIVE_CALL]},
            ]
        ),
    ),
    (
        "reasoning-content-replayed-as-thinking",
        req(
            input=[
                HI,
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "short"}],
                    "content": [{"type": "reasoning_text", "text": "Let me think."}],
                },
                CALL,
                OUTPUT,
            ]
        ),
        native(
            messages=[
                HI,
                {
                    "role": "assistant",
                    "content": "",
                    "thinking": "Let me think.",
                    "tool_calls": [NATIVE_CALL],
                },
                NATIVE_OUTPUT,
            ]
        ),
    ),
    (
        "summary-only-reasoning-dropped",
        req(
            input=[
                HI,
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "x"},
                {"role": "assistant", "content": "hello"},
            ]
        ),
        native(messages=[HI, {"role": "assistant", "content": "hello"}]),
    ),
    (
        "function-output-as-parts",
        req(
            input=[
                HI,
                CALL,
                {**OUTPUT, "output": [{"type": "input_text", "text": "22C"}]},
            ]
        ),
        native(
            messages=[
                HI,
                {"role": "assistant", "content": "", "tool_calls": [NATIVE_CALL]},
                {**NATIVE_OUTPUT, "content": "22C"},
            ]
        ),
    ),
    ("flat-tools-to-native", req(tools=[WEATHER]), native(tools=[NATIVE_WEATHER])),
    ("tool-choice-auto", req(tools=[WEATHER], tool_choice="auto"), native(tools=[NATIVE_WEATHER])),
    (
        "tool-choice-required-offers-all",
        req(tools=[WEATHER, TIME], tool_choice="required"),
        native(tools=[NATIVE_WEATHER, NATIVE_TIME]),
    ),
    ("tool-choice-none-drops-tools", req(tools=[WEATHER], tool_choice="none"), native()),
    (
        "tool-choice-function-narrows",
        req(tools=[WEATHER, TIME], tool_choice={"type": "function", "name": "get_time"}),
        native(tools=[NATIVE_TIME]),
    ),
    (
        "tool-choice-allowed-tools-narrows",
        req(
            tools=[WEATHER, TIME],
            tool_choice={
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "get_weather"}],
            },
        ),
        native(tools=[NATIVE_WEATHER]),
    ),
    (
        "tool-without-parameters",
        req(tools=[{"type": "function", "name": "now"}]),
        native(
            tools=[
                {
                    "type": "function",
                    "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
                }
            ]
        ),
    ),
    (
        "json-schema-format",
        req(text={"format": {"type": "json_schema", "name": "a", "schema": SCHEMA}}),
        native(format=SCHEMA),
    ),
    ("json-object-format", req(text={"format": {"type": "json_object"}}), native(format="json")),
    ("text-format-none", req(text={"format": {"type": "text"}}), native()),
    ("effort-high", req(reasoning={"effort": "high"}), native(think="high")),
    ("effort-none-is-false", req(reasoning={"effort": "none"}), native(think=False)),
    ("effort-minimal-is-low", req(reasoning={"effort": "minimal"}), native(think="low")),
    ("effort-xhigh-is-max", req(reasoning={"effort": "xhigh"}), native(think="max")),
    ("summary-only-no-think", req(reasoning={"summary": "auto"}), native()),
    (
        "sampling",
        req(temperature=0.2, top_p=0.5, max_output_tokens=64),
        native(options={"temperature": 0.2, "top_p": 0.5, "num_predict": 64}),
    ),
    (
        "zero-temperature-kept",
        req(temperature=0),
        native(options={"temperature": 0.0, "top_p": 1.0}),
    ),
    (
        "ignored-fields",
        req(
            store=False,
            metadata={"k": "v"},
            user="u1",
            parallel_tool_calls=False,
            include=["reasoning.encrypted_content"],
            truncation="auto",
        ),
        native(),
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [p[1:] for p in PAYLOADS], ids=[p[0] for p in PAYLOADS]
)
def test_payload(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert payload(body) == expected


def test_a_model_that_cannot_think_is_not_asked_to() -> None:
    request = parse_responses(req(reasoning={"effort": "medium"}))
    assert "think" not in json.loads(responses_payload(request, "m", can_think=False))
    assert json.loads(responses_payload(request, "m"))["think"] == "medium"


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("previous-response-id", req(previous_response_id="resp_1"), "previous_response_id"),
    ("store-true", req(store=True), "store"),
    ("conversation", req(conversation="conv_1"), "conversation"),
    ("background", req(background=True), "background"),
    ("no-model", {"input": "hi"}, "model"),
    ("model-not-string", req(model=3), "model"),
    ("no-input", {"model": "m"}, "input"),
    ("input-number", req(input=3), "input"),
    ("input-empty-list", req(input=[]), "input"),
    ("item-not-object", req(input=["hi"]), "input[0]"),
    ("item-reference", req(input=[{"type": "item_reference", "id": "msg_1"}]), "input[0]"),
    ("hosted-tool-item", req(input=[HI, {"type": "web_search_call", "id": "ws"}]), "input[1].type"),
    ("bad-role", req(input=[{"role": "tool", "content": "x"}]), "input[0].role"),
    ("message-without-content", req(input=[{"role": "user"}]), "input[0].content"),
    (
        "input-file",
        req(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]),
        "input[0].content[0].type",
    ),
    (
        "http-image",
        req(
            input=[
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://x/y.png"}],
                }
            ]
        ),
        "input[0].content[0].image_url",
    ),
    (
        "image-file-id",
        req(input=[{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]),
        "input[0].content[0].image_url",
    ),
    ("call-bad-json", req(input=[HI, {**CALL, "arguments": "{"}]), "input[1].arguments"),
    ("call-args-array", req(input=[HI, {**CALL, "arguments": "[1]"}]), "input[1].arguments"),
    ("call-no-call-id", req(input=[HI, {**CALL, "call_id": None}]), "input[1].call_id"),
    ("call-no-name", req(input=[HI, {**CALL, "name": ""}]), "input[1].name"),
    (
        "output-no-output",
        req(input=[HI, CALL, {"type": "function_call_output", "call_id": "call_1"}]),
        "input[2].output",
    ),
    (
        "output-no-call-id",
        req(input=[HI, {"type": "function_call_output", "output": "x"}]),
        "input[1].call_id",
    ),
    ("hosted-tool", req(tools=[{"type": "web_search"}]), "tools[0].type"),
    (
        "chat-shaped-tool",
        req(tools=[{"type": "function", "function": {"name": "f"}}]),
        "tools[0].name",
    ),
    ("tools-not-list", req(tools={"type": "function"}), "tools"),
    (
        "tool-parameters-not-object",
        req(tools=[{**WEATHER, "parameters": "x"}]),
        "tools[0].parameters",
    ),
    (
        "tool-choice-unknown",
        req(tools=[WEATHER], tool_choice={"type": "function", "name": "x"}),
        "tool_choice",
    ),
    ("tool-choice-hosted", req(tools=[WEATHER], tool_choice={"type": "web_search"}), "tool_choice"),
    ("tool-choice-bogus-string", req(tools=[WEATHER], tool_choice="always"), "tool_choice"),
    (
        "schema-missing",
        req(text={"format": {"type": "json_schema", "name": "a"}}),
        "text.format.schema",
    ),
    (
        "schema-name-missing",
        req(text={"format": {"type": "json_schema", "schema": SCHEMA}}),
        "text.format.name",
    ),
    ("format-type", req(text={"format": {"type": "yaml"}}), "text.format.type"),
    ("text-not-object", req(text="json"), "text"),
    ("effort-bogus", req(reasoning={"effort": "ultra"}), "reasoning.effort"),
    ("temperature-range", req(temperature=3), "temperature"),
    ("top-p-type", req(top_p="high"), "top_p"),
    ("max-output-tokens-zero", req(max_output_tokens=0), "max_output_tokens"),
    ("max-output-tokens-bool", req(max_output_tokens=True), "max_output_tokens"),
    ("stream-not-bool", req(stream="yes"), "stream"),
    ("metadata-values", req(metadata={"k": 1}), "metadata"),
    ("instructions-type", req(instructions=["x"]), "instructions"),
]


@pytest.mark.parametrize(("body", "param"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_request_names_the_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_responses(body)
    assert caught.value.param == param


@pytest.mark.parametrize("param", ["previous_response_id", "store", "conversation"])
def test_stateful_fields_say_the_router_is_stateless(param: str) -> None:
    value = True if param == "store" else "x_1"
    with pytest.raises(BadRequest, match="stateless"):
        parse_responses(req(**{param: value}))


# -- answers ----------------------------------------------------------------------------------
def head(**changes: Any) -> ResponseHead:
    return ResponseHead.of(parse_responses(req(**changes)), RESP_ID, CREATED)


def gathered(name: str) -> dict[str, Any]:
    g = Gathered()
    assert g.feed_all(lines(name))
    return g.chat()


def answer(name: str, **changes: Any) -> Response:
    body, _ = build_response(gathered(name), head(**changes), ids())
    return Response.model_validate_json(body)


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


# name → (status, output item types, output_text, reasoning text, function calls, usage)
Calls = list[tuple[str, dict[str, Any]]]
WEATHER_CALL = ("get_weather", {"city": "Tokyo"})
NATIVE_CALLS = [
    ("get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ("get_time", {"tz": "Asia/Tokyo"}),
]
# fixture → (status, output item types, output_text, reasoning text, function calls, usage)
ANSWERS: dict[str, tuple[str, list[str], str, str, Calls, tuple[int, int]]] = {
    "chat-stream.ndjson": ("completed", ["message"], "The sky is blue.", "", [], (26, 282)),
    "chat-done-content.ndjson": ("completed", ["message"], "Hello there!", "", [], (12, 3)),
    "chat-thinking.ndjson": (
        "completed",
        ["reasoning", "message"],
        "42",
        "Let me think. Six times seven.",
        [],
        (20, 7),
    ),
    "chat-length.ndjson": ("incomplete", ["message"], "Once upon", "", [], (9, 2)),
    "chat-tools-rendered.ndjson": (
        "completed",
        ["function_call"],
        "",
        "",
        [WEATHER_CALL],
        (140, 18),
    ),
    "chat-tools-native.ndjson": (
        "completed",
        ["function_call", "function_call"],
        "",
        "",
        NATIVE_CALLS,
        (151, 41),
    ),
}


@pytest.mark.parametrize("name", sorted(ANSWERS), ids=sorted(ANSWERS))
def test_non_streamed_answer(name: str) -> None:
    status, types, text, thinking, calls, usage = ANSWERS[name]
    response = answer(name)
    assert response.id == RESP_ID
    assert response.object == "response"
    assert response.status == status
    assert [item.type for item in response.output] == types
    assert response.output_text == text
    reasoning = [c.text for i in response.output if i.type == "reasoning" for c in i.content or []]
    assert "".join(reasoning) == thinking
    got = [(i.name, json.loads(i.arguments)) for i in response.output if i.type == "function_call"]
    assert got == calls
    call_ids = [i.call_id for i in response.output if i.type == "function_call"]
    assert len(set(call_ids)) == len(call_ids)
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == usage
    assert response.usage.total_tokens == sum(usage)
    if status == "incomplete":
        assert response.incomplete_details is not None
        assert response.incomplete_details.reason == "max_output_tokens"
        assert response.output[-1].status == "incomplete"


def test_thinking_never_in_text() -> None:
    response = answer("chat-thinking.ndjson")
    assert "think" not in response.output_text
    assert response.output[0].type == "reasoning"
    assert response.output[0].summary == []


def test_answer_repeats_the_request() -> None:
    response = answer(
        "chat-done-content.ndjson",
        instructions="Be terse.",
        tools=[WEATHER],
        tool_choice="required",
        temperature=0.3,
        max_output_tokens=50,
        metadata={"k": "v"},
        user="u1",
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "a", "schema": SCHEMA}},
        reasoning={"effort": "low"},
    )
    assert response.model == "ollama/llama3"
    assert response.created_at == CREATED
    assert response.instructions == "Be terse."
    assert [t.name for t in response.tools] == ["get_weather"]
    assert response.tool_choice == "required"
    assert (response.temperature, response.top_p) == (0.3, 1.0)
    assert response.max_output_tokens == 50
    assert response.metadata == {"k": "v"}
    assert response.user == "u1"
    assert response.parallel_tool_calls is False
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"
    assert response.reasoning is not None
    assert response.reasoning.effort == "low"
    assert response.previous_response_id is None


def test_empty_answer_still_has_a_message() -> None:
    body, _ = build_response(done(), head(), ids())
    response = Response.model_validate_json(body)
    assert [i.type for i in response.output] == ["message"]
    assert response.output_text == ""


def test_ids_come_from_the_injected_generator() -> None:
    body, _ = build_response(gathered("chat-tools-native.ndjson"), head(), ids())
    response = Response.model_validate_json(body)
    assert [(i.id, i.call_id) for i in response.output] == [
        ("fc_0001", "call_0001"),
        ("fc_0002", "call_0002"),
    ]


# -- streams ----------------------------------------------------------------------------------
def encode(stream_lines: list[dict[str, Any]], **changes: Any) -> tuple[bytes, ResponsesStream]:
    encoder = ResponsesStream(head(**changes), ids())
    out = [encoder.start()]
    encoder.feed_all(stream_lines, out)
    tail, _ = encoder.finish(stream_lines[-1])
    return b"".join(out) + tail, encoder


def frames(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """`event: <type>` + `data: <json>` + blank line, and nothing else."""
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


def sdk_events(data: bytes) -> list[Any]:
    with openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0) as client:
        request = httpx2.Request("POST", "http://127.0.0.1:9/v1/responses")
        headers = {"Content-Type": "text/event-stream"}
        response = httpx2.Response(200, headers=headers, content=data, request=request)
        return list(openai.Stream(cast_to=ResponseStreamEvent, response=response, client=client))


def final_response(events: list[Any]) -> Any:
    """What `responses.stream().get_final_response()` returns for these events; for an answer
    cut short, the `response.incomplete` event's response (the helper raises then, as it does
    for OpenAI's own incomplete answers)."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(event)
    if events[-1].type == "response.incomplete":
        assert state._completed_response is None
        return events[-1].response
    assert state._completed_response is not None
    return state._completed_response


STREAMS = sorted(ANSWERS)


@pytest.mark.parametrize("name", STREAMS, ids=STREAMS)
def test_stream_events_are_the_sdk_types(name: str) -> None:
    data, _ = encode(lines(name))
    parsed = frames(data)
    for _, body in parsed:
        EVENTS.validate_python(body, strict=False)
    assert [b["sequence_number"] for _, b in parsed] == list(range(len(parsed)))
    assert [t for t, _ in parsed[:2]] == ["response.created", "response.in_progress"]
    assert parsed[0][1]["response"]["status"] == "in_progress"
    assert parsed[0][1]["response"]["output"] == []
    status = ANSWERS[name][0]
    assert parsed[-1][0] == f"response.{status}"
    assert b"[DONE]" not in data


@pytest.mark.parametrize("name", STREAMS, ids=STREAMS)
def test_stream_read_back_by_the_sdk(name: str) -> None:
    data, _ = encode(lines(name))
    events = sdk_events(data)
    assert len(events) == len(frames(data))
    final = final_response(events)
    status, types, text, thinking, calls, usage = ANSWERS[name]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == text == final.output_text
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert reasoning == thinking
    assert [i.type for i in final.output] == types
    assert final.status == status
    assert (final.usage.input_tokens, final.usage.output_tokens) == usage
    got = [(i.name, json.loads(i.arguments)) for i in final.output if i.type == "function_call"]
    assert got == calls


@pytest.mark.parametrize("name", STREAMS, ids=STREAMS)
def test_stream_ends_with_the_gathered_answer(name: str) -> None:
    data, _ = encode(lines(name))
    completed = frames(data)[-1][1]["response"]
    body, _ = build_response(gathered(name), head(), ids())
    assert completed == json.loads(body)


@pytest.mark.parametrize("name", STREAMS, ids=STREAMS)
def test_every_item_opens_and_closes_in_order(name: str) -> None:
    parsed = frames(encode(lines(name))[0])
    final = parsed[-1][1]["response"]["output"]
    opened: list[int] = []
    current: int | None = None
    for kind, body in parsed[2:-1]:
        if kind == "response.output_item.added":
            assert current is None  # one item at a time
            current = body["output_index"]
            assert current == len(opened)
            opened.append(current)
            assert body["item"]["status"] == "in_progress"
        elif kind == "response.output_item.done":
            assert body["output_index"] == current
            assert body["item"] == final[current]
            current = None
        else:
            assert body["output_index"] == current
    assert current is None
    assert opened == list(range(len(final)))


def test_several_calls_get_distinct_indexes_and_ids() -> None:
    parsed = frames(encode(lines("chat-tools-native.ndjson"))[0])
    added = [b for t, b in parsed if t == "response.output_item.added"]
    assert [a["output_index"] for a in added] == [0, 1]
    assert len({a["item"]["call_id"] for a in added}) == 2
    assert len({a["item"]["id"] for a in added}) == 2
    args = [b for t, b in parsed if t == "response.function_call_arguments.done"]
    assert [a["item_id"] for a in args] == [a["item"]["id"] for a in added]


def test_text_then_calls_then_text_each_item_its_own_index() -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
    stream_lines = [
        said("Checking"),
        said(" now.", tool_calls=[call, call]),
        said("", thinking="hmm"),
        said("Done."),
        done(),
    ]
    data, _ = encode(stream_lines)
    final = final_response(sdk_events(data))
    types = [i.type for i in final.output]
    assert types == ["message", "function_call", "function_call", "reasoning", "message"]
    assert final.output_text == "Checking now.Done."
    assert len({i.id for i in final.output}) == 5


def test_interleaved_thinking_stays_out_of_text() -> None:
    stream_lines = [said("", thinking="a"), said("b"), said("", thinking="c"), said("d"), done()]
    parsed = frames(encode(stream_lines)[0])
    text = "".join(b["delta"] for t, b in parsed if t == "response.output_text.delta")
    thought = "".join(b["delta"] for t, b in parsed if t == "response.reasoning_text.delta")
    assert (text, thought) == ("bd", "ac")


def test_empty_stream_still_has_a_message() -> None:
    data, _ = encode([done()])
    final = final_response(sdk_events(data))
    assert [i.type for i in final.output] == ["message"]
    assert final.output_text == ""


def test_feed_all_matches_line_by_line() -> None:
    """The batched fast path writes the same bytes as one line at a time."""
    for name in STREAMS:
        stream_lines = lines(name)
        batched, _ = encode(stream_lines)
        encoder = ResponsesStream(head(), ids())
        out = [encoder.start()]
        for line in stream_lines:
            encoder.feed(line, out)
        tail, _ = encoder.finish(stream_lines[-1])
        assert b"".join(out) + tail == batched, name


def test_finish_returns_usage() -> None:
    encoder = ResponsesStream(head(), ids())
    _, usage = encoder.finish(done(prompt_eval_count=11, eval_count=4))
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, 4)


def test_sdk_raises_on_the_error_event() -> None:
    encoder = ResponsesStream(head(), ids())
    out = [encoder.start()]
    encoder.feed_all([said("partial")], out)
    data = b"".join(out) + encoder.error("The stream failed: node gpu-a ended early")
    parsed = frames(data)
    EVENTS.validate_python(parsed[-1][1])
    assert parsed[-1][1]["sequence_number"] == len(parsed) - 1
    with pytest.raises(openai.APIError, match="node gpu-a ended early"):
        sdk_events(data)


def test_request_object_is_frozen() -> None:
    request = parse_responses(req())
    assert isinstance(request, ResponsesRequest)
    with pytest.raises(AttributeError):
        request.model = "x"  # type: ignore[misc]


def test_context_overflow_in_openai_words() -> None:
    error = context_overflow(9100, 8192)
    assert (error.param, error.code) == ("input", "context_length_exceeded")
    assert "9100" in error.message
    assert "8192" in error.message
    assert context_overflow().message.startswith("Your input exceeds the context window")


def test_sequence_numbers_stay_consecutive_in_a_long_stream() -> None:
    """Past the numbers the per-token path keeps ready (responses_stream._SEQ_CACHED)."""
    encoder = ResponsesStream(head(), ids())
    out = [encoder.start()]
    for _ in range(10):
        encoder.feed_all([said(" tok")] * 500, out)
    tail, _ = encoder.finish(done())
    parsed = frames(b"".join(out) + tail)
    assert [body["sequence_number"] for _, body in parsed] == list(range(len(parsed)))
    assert len(parsed) > 5000
    assert parsed[-1][1]["response"]["output"][0]["content"][0]["text"] == " tok" * 5000
