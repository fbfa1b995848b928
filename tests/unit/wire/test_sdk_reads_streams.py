"""The OpenAI SDK reads what the encoders write: every stream through its own SSE decoder."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk

from router.wire import sse
from tests.unit.wire.recorded import (
    CHAT_STREAMS,
    COMPLETION_STREAMS,
    USAGE,
    USAGE_IDS,
    chat_encoder,
    chat_stream,
    completion_stream,
    frames,
    sdk_events,
    sdk_stream,
)


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
    encoder = chat_encoder()
    stream = encoder.start() + encoder.feed({"message": {"content": "partial"}})
    stream += sse.error_event("The stream failed: node gpu-a ended the stream early")
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in sdk_events(sdk, ChatCompletionChunk, stream):
            received.append(chunk)
    assert caught.value.message == "The stream failed: node gpu-a ended the stream early"
    assert [c.choices[0].delta.content for c in received] == ["", "partial"]
