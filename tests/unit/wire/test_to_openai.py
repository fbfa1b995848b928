"""Ollama answers → OpenAI answers: usage, finish reasons, non-stream bodies and SSE streams,
each body and chunk also validated against the OpenAI SDK's pydantic types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion

from router.wire import sse
from router.wire.to_openai import (
    ChatStream,
    CompletionStream,
    Usage,
    chat_completion,
    finish_reason,
    text_completion,
    usage_of,
)
from tests.unit.wire.recorded import (
    CHAT_STREAMS,
    COMPLETION_STREAMS,
    CREATED,
    ID,
    OLLAMA,
    USAGE,
    USAGE_IDS,
    body,
    chat_encoder,
    chat_stream,
    chunks,
    completion_stream,
    content_of,
    counting_ids,
    lines,
)


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


def test_tool_calls_without_an_id_get_one_from_the_injected_ids() -> None:
    calls = [{"function": {"name": "f", "arguments": {}}}, {"id": "", "function": {"name": "g"}}]
    data = {"message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": True}
    raw, _ = chat_completion(data, "m", ID, CREATED, ids=counting_ids())
    made = json.loads(raw)["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in made] == ["call_1", "call_2"]


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


def test_every_recorded_stream_has_an_expectation() -> None:
    recorded = sorted(p.name for p in OLLAMA.glob("*.ndjson"))
    assert recorded == sorted([*CHAT_STREAMS, *COMPLETION_STREAMS])


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
        assert call["id"] == id_  # as Ollama sent it, or made by the injected `ids`
    assert len({c["id"] for c in calls}) == len(calls)
    assert parsed[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_call_indexes_continue_across_lines() -> None:
    encoder = chat_encoder()
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
    encoder = chat_encoder()
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
    assert chat_encoder().feed(line) == b""


def test_thinking_and_content_on_one_line_are_two_chunks() -> None:
    line = {"message": {"role": "assistant", "content": "4", "thinking": "six times seven"}}
    fed = chunks(chat_encoder().feed(line) + sse.DONE)
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
    encoder = chat_encoder()
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


@pytest.mark.parametrize("name", sorted([*CHAT_STREAMS, *COMPLETION_STREAMS]))
def test_feed_all_writes_what_feed_writes(name: str) -> None:
    """The relay's batched `feed_all` makes the same bytes as `feed` line by line."""

    def encoder() -> ChatStream | CompletionStream:
        if name.startswith("chat"):
            return chat_encoder(include_usage=True)
        return CompletionStream("m", "cmpl-42", CREATED, True)

    one, batched = encoder(), encoder()
    recorded = lines(name)
    expected = b"".join(one.feed(line) for line in recorded)
    out: list[bytes] = []
    batched.feed_all(recorded[:2], out)  # two reads, as a relay would get them
    batched.feed_all(recorded[2:], out)
    assert all(out)  # lines without text add nothing, not b""
    assert b"".join(out) == expected  # tool call ids too: each encoder counts its own
    assert one.finish(recorded[-1])[1] == batched.finish(recorded[-1])[1]
