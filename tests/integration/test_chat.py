"""Chat completions through the official SDK, streamed and not, against emulated nodes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Tell me about the sky."},
]


@pytest.mark.parametrize("base", ["/v1", ""], ids=["v1-prefix", "root"])
async def test_non_stream_completion_has_every_field(router: Router, base: str) -> None:
    resp = await router.client(base=base).chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, seed=1
    )
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "ollama/llama3"
    assert isinstance(resp.created, int)
    choice = resp.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp._request_id  # x-request-id is on every response


async def test_stream_joined_equals_non_stream_and_usage_agrees(router: Router) -> None:
    client = router.client()
    whole = await client.chat.completions.create(model="ollama/llama3", messages=MESSAGES, seed=42)
    stream = await client.chat.completions.create(
        model="ollama/llama3",
        messages=MESSAGES,
        seed=42,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert {c.created for c in chunks} == {chunks[0].created}
    assert {c.model for c in chunks} == {"ollama/llama3"}
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None and whole.usage is not None
    assert usage_chunk.usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_include_usage_has_no_usage_chunk(router: Router) -> None:
    stream = await router.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


async def test_raw_stream_is_sse_ending_with_done(router: Router, http) -> None:
    body = {"model": "ollama/llama3", "messages": MESSAGES, "stream": True}
    async with http.post(
        router.url + "/v1/chat/completions", json=body, headers=router.headers()
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["X-Request-ID"]
        raw = await resp.read()
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    for event in events[:-2]:
        assert event.startswith(b"data: ")
        assert "choices" in orjson.loads(event[6:])


async def test_max_tokens_gives_length_and_exact_count(router: Router) -> None:
    client = router.client()
    for param in ("max_tokens", "max_completion_tokens"):
        resp = await client.chat.completions.create(
            model="ollama/llama3", messages=MESSAGES, **{param: 3}
        )
        assert resp.choices[0].finish_reason == "length"
        assert resp.usage is not None and resp.usage.completion_tokens == 3


async def test_router_sends_native_request_with_explicit_stream(router: Router) -> None:
    client = router.client()
    await client.chat.completions.create(
        model="ollama/mistral",
        seed=5,
        temperature=0.5,
        top_p=0.9,
        stop="END",
        max_completion_tokens=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        response_format={"type": "json_object"},
        user="u1",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
        ],
    )
    sent = router.nodes["node-a"].stats.bodies[-1]
    assert sent["model"] == "mistral:latest"
    assert sent["stream"] is True  # always streamed upstream, stated explicitly
    assert sent["format"] == "json"
    assert sent["options"] == {
        "temperature": 0.5,
        "top_p": 0.9,
        "num_predict": 7,
        "stop": ["END"],
        "seed": 5,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
    }
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a\nb"},
    ]
    stream = await client.chat.completions.create(
        model="ollama/mistral", messages=MESSAGES, stream=True
    )
    _ = [c async for c in stream]
    assert router.nodes["node-a"].stats.bodies[-1]["stream"] is True


async def test_json_schema_is_sent_as_format(router: Router) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    await router.client().chat.completions.create(
        model="ollama/phi3",
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    assert router.nodes["node-b"].stats.bodies[-1]["format"] == schema


async def test_usage_equals_the_nodes_own_counts(make_router: RouterFactory, http) -> None:
    router = await make_router({"solo": EmulatorConfig(models=("llama3",))})
    resp = await router.client().chat.completions.create(model="llama3", messages=MESSAGES, seed=9)
    sent = router.nodes["solo"].stats.bodies[-1]
    async with http.post(
        router.nodes["solo"].url + "/api/chat", json={**sent, "stream": False}
    ) as direct:
        native = await direct.json()
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == native["prompt_eval_count"]
    assert resp.usage.completion_tokens == native["eval_count"]
    assert resp.choices[0].message.content == native["message"]["content"]
    assert resp.model == "llama3"  # echoed as the client asked


async def test_request_id_is_taken_from_client_and_passed_to_node(router: Router, http) -> None:
    body = {"model": "ollama/mistral", "messages": MESSAGES}
    headers = {**router.headers(), "X-Request-ID": "trace-123"}
    async with http.post(router.url + "/v1/chat/completions", json=body, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["X-Request-ID"] == "trace-123"
        assert "upstream;dur=" in resp.headers["Server-Timing"]
    assert router.nodes["node-a"].stats.headers[-1].get("X-Request-ID") == "trace-123"
