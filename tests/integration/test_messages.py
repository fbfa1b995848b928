"""The Anthropic Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) through the
official `anthropic` SDK: answers, streams, tool use, both ways of sending the key, and errors
in Anthropic's envelope as the SDK's own exception classes (issue 13)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic import AsyncAnthropic

from router.api.auth import digest, new_key
from router.config import ApiKeyConfig, RoutingConfig
from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory, wait_until

MODEL = "ollama/llama3"
QUESTION = [{"role": "user", "content": "Tell me about the sky."}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def _client(router: Router, **kw: Any) -> AsyncAnthropic:
    if "api_key" not in kw and "auth_token" not in kw:
        kw["api_key"] = router.key
    return AsyncAnthropic(base_url=router.url, max_retries=0, **kw)


def _chat_bodies(router: Router) -> list[dict[str, Any]]:
    return [b for n in router.nodes.values() for b in n.stats.bodies if "messages" in b]


@pytest.fixture
async def claude(router: Router) -> Any:
    async with _client(router) as client:
        yield client


async def test_create_with_a_system_prompt(router: Router, claude: AsyncAnthropic) -> None:
    # This SDK (2.17) has no sampling parameters any more; older ones and raw clients send them.
    msg = await claude.messages.create(
        model=MODEL,
        max_tokens=64,
        system="You are terse.",
        messages=QUESTION,
        stop_sequences=["zebra"],
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 20},
    )
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert msg.model == MODEL and msg.stop_reason == "end_turn" and msg.stop_sequence is None
    [block] = msg.content
    assert block.type == "text" and block.text
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert msg.usage.cache_read_input_tokens == msg.usage.cache_creation_input_tokens == 0
    [sent] = _chat_bodies(router)
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["options"] == {
        "num_predict": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 20,
        "stop": ["zebra"],
    }


async def test_max_tokens_stops_with_max_tokens(claude: AsyncAnthropic) -> None:
    msg = await claude.messages.create(model=MODEL, max_tokens=3, messages=QUESTION)
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 3


async def test_stream_text_joined_equals_the_final_message(claude: AsyncAnthropic) -> None:
    whole = await claude.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    async with claude.messages.stream(model=MODEL, max_tokens=64, messages=QUESTION) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    [block] = final.content
    assert block.type == "text" and text == block.text == whole.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens


@pytest.mark.parametrize("path", ["/v1/messages", "/messages"], ids=["v1", "root"])
async def test_raw_stream_has_event_lines_in_anthropic_order(
    router: Router, http: aiohttp.ClientSession, path: str
) -> None:
    body = {"model": MODEL, "max_tokens": 16, "messages": QUESTION, "stream": True}
    headers = {"x-api-key": router.key, "anthropic-version": "2023-06-01"}
    async with http.post(router.url + path, json=body, headers=headers) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        raw = (await resp.read()).decode()
    names = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    collapsed = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
    assert collapsed == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "[DONE]" not in raw


@pytest.mark.parametrize("stream", [False, True], ids=["gathered", "streamed"])
async def test_tool_use_then_tool_result_round_trip(
    router: Router, claude: AsyncAnthropic, stream: bool
) -> None:
    first: Any
    ask: list[Any] = [{"role": "user", "content": "Use get_weather for Tokyo."}]
    if stream:
        async with claude.messages.stream(
            model=MODEL, max_tokens=64, messages=ask, tools=[WEATHER]
        ) as s:
            first = await s.get_final_message()
    else:
        first = await claude.messages.create(
            model=MODEL, max_tokens=64, messages=ask, tools=[WEATHER]
        )
    assert first.stop_reason == "tool_use"
    [use] = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and set(use.input) == {"city"}
    turns = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}],
        },
    ]
    answer = await claude.messages.create(
        model=MODEL, max_tokens=64, messages=turns, tools=[WEATHER]
    )
    assert answer.stop_reason == "end_turn" and [b.type for b in answer.content] == ["text"]
    sent = _chat_bodies(router)[-1]["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {
        "role": "tool",
        "content": "Sunny",
        "tool_call_id": use.id,
        "tool_name": "get_weather",
    }


async def test_bearer_auth_token_works(router: Router) -> None:
    async with _client(router, auth_token=router.key) as client:
        msg = await client.messages.create(model=MODEL, max_tokens=8, messages=QUESTION)
    assert msg.content


async def test_x_api_key_header_works(router: Router, http: aiohttp.ClientSession) -> None:
    body = {"model": MODEL, "max_tokens": 8, "messages": QUESTION}
    headers = {"x-api-key": router.key, "anthropic-version": "2023-06-01"}
    async with http.post(router.url + "/v1/messages", json=body, headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["type"] == "message"
    # The SDK with only an x-api-key header (as the repo's SDK and Claude-style clients send).
    async with AsyncAnthropic(
        base_url=router.url, api_key=None, default_headers={"X-Api-Key": router.key}
    ) as client:
        assert (await client.messages.create(model=MODEL, max_tokens=8, messages=QUESTION)).id


@pytest.mark.parametrize("how", ["api_key", "auth_token"])
async def test_a_bad_key_is_an_authentication_error(router: Router, how: str) -> None:
    async with _client(router, **{how: new_key()}) as client:
        with pytest.raises(anthropic.AuthenticationError) as info:
            await client.messages.create(model=MODEL, max_tokens=8, messages=QUESTION)
    assert info.value.status_code == 401
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


async def test_unknown_model_is_not_found(claude: AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        await claude.messages.create(model="ollama/nope", max_tokens=8, messages=QUESTION)
    body = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "ollama/nope" in body["error"]["message"]  # type: ignore[index]


async def test_a_bad_request_is_a_bad_request_error(claude: AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await claude.messages.create(model=MODEL, max_tokens=0, messages=QUESTION)
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


async def test_every_node_busy_is_a_503_the_sdk_knows(
    router: Router, claude: AsyncAnthropic
) -> None:
    for node in router.nodes.values():
        node.faults.mode = "busy"
    with pytest.raises(anthropic.InternalServerError) as info:
        await claude.messages.create(model=MODEL, max_tokens=8, messages=QUESTION)
    assert info.value.status_code == 503
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_a_stream_that_dies_mid_way_raises(router: Router, claude: AsyncAnthropic) -> None:
    for node in router.nodes.values():
        node.faults.die_after_tokens = 2
    with pytest.raises(anthropic.APIStatusError) as info:
        async with claude.messages.stream(model=MODEL, max_tokens=64, messages=QUESTION) as s:
            _ = [t async for t in s.text_stream]
    assert "failed" in str(info.value.message)


async def test_count_tokens_is_the_nodes_own_count(router: Router, claude: AsyncAnthropic) -> None:
    counted = await claude.messages.count_tokens(
        model=MODEL, system="You are terse.", messages=QUESTION
    )
    msg = await claude.messages.create(
        model=MODEL, max_tokens=8, system="You are terse.", messages=QUESTION
    )
    assert counted.input_tokens == msg.usage.input_tokens > 0
    assert _chat_bodies(router)[0]["options"]["num_predict"] == 1


async def test_a_wrong_x_api_key_is_a_401_in_anthropics_envelope(
    router: Router, http: aiohttp.ClientSession
) -> None:
    body = {"model": MODEL, "max_tokens": 8, "messages": QUESTION}
    async with http.post(
        router.url + "/v1/messages", json=body, headers={"x-api-key": new_key()}
    ) as resp:
        assert resp.status == 401
        error = await resp.json()
    assert error["type"] == "error" and error["error"]["type"] == "authentication_error"


async def test_a_key_over_its_rate_limit_is_a_rate_limit_error(
    make_router: RouterFactory,
) -> None:
    key = new_key()
    router = await make_router(extra_keys=[ApiKeyConfig("one-a-minute", digest(key), rpm=1)])
    async with _client(router, api_key=key) as client:
        assert (await client.messages.create(model=MODEL, max_tokens=8, messages=QUESTION)).id
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(model=MODEL, max_tokens=8, messages=QUESTION)
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert info.value.response.headers["Retry-After"]


async def test_a_key_without_the_model_in_its_allowlist_gets_not_found(
    make_router: RouterFactory,
) -> None:
    key = new_key()
    entry = ApiKeyConfig("mistral-only", digest(key), models=("ollama/mistral",))
    router = await make_router(extra_keys=[entry])
    async with _client(router, api_key=key) as client:
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.create(model=MODEL, max_tokens=8, messages=QUESTION)
    assert not _chat_bodies(router)


async def test_requests_are_counted_with_the_messages_api_label(
    router: Router, claude: AsyncAnthropic
) -> None:
    await claude.messages.create(model=MODEL, max_tokens=8, messages=QUESTION)
    await claude.messages.count_tokens(model=MODEL, messages=QUESTION)
    with pytest.raises(anthropic.NotFoundError):
        await claude.messages.create(model="ollama/nope", max_tokens=8, messages=QUESTION)
    registry = router.state.metrics.registry

    def count(endpoint: str, model: str, status: str) -> float | None:
        labels = {"endpoint": endpoint, "api": "messages", "model": model, "status_code": status}
        return registry.get_sample_value("jarvis_requests_total", labels)

    await wait_until(lambda: count("/messages", "unknown", "404") == 1)
    assert count("/messages", MODEL, "200") == 1
    assert count("/messages/count_tokens", MODEL, "200") == 1


async def test_turns_of_one_conversation_stay_on_one_node_with_affinity(
    make_router: RouterFactory,
) -> None:
    node = EmulatorConfig(models=("llama3",))
    router = await make_router(
        {"a": node, "b": node, "c": node},
        # Round robin would spread the turns; only affinity keeps them together.
        routing=RoutingConfig(strategy="round_robin", affinity=True),
    )
    async with _client(router) as client:
        for n in range(3):
            history: list[Any] = [{"role": "user", "content": f"Conversation {n}: hello."}]
            for turn in range(3):
                msg = await client.messages.create(
                    model=MODEL, max_tokens=8, system=f"You are assistant {n}.", messages=history
                )
                history += [
                    {"role": "assistant", "content": msg.content},
                    {"role": "user", "content": f"Turn {turn}, go on."},
                ]
    for n in range(3):
        served = {
            name
            for name, emulated in router.nodes.items()
            for body in emulated.stats.bodies
            if body.get("messages", [{}])[0].get("content") == f"You are assistant {n}."
        }
        assert len(served) == 1, (n, served)


IMAGE = "iVBORw0KGgo="


async def test_content_blocks_become_native_messages(
    router: Router, claude: AsyncAnthropic
) -> None:
    turns: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is"},
                {"type": "text", "text": "this?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": IMAGE},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Look first.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "no such city"}
                ], "is_error": True},
                {"type": "text", "text": "Try again."},
            ],
        },
    ]  # fmt: skip
    await claude.messages.create(
        model=MODEL,
        max_tokens=8,
        system=[{"type": "text", "text": "Be brief."}],
        messages=turns,
        tools=[WEATHER],
    )
    assert _chat_bodies(router)[-1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is\nthis?", "images": [IMAGE]},
        {
            "role": "assistant",
            "content": "Let me look.",
            "thinking": "Look first.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
                }
            ],
        },
        {
            "role": "tool",
            "content": "Error: no such city",
            "tool_call_id": "toolu_1",
            "tool_name": "get_weather",
        },
        {"role": "user", "content": "Try again."},
    ]


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"messages": []}, "messages"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
                        ],
                    }
                ]
            },
            "messages.0.content.0.source",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "document", "source": {"type": "text", "data": "x"}}],
                    }
                ]
            },
            "messages.0.content.0.type",
        ),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
        ({"tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
    ],
    ids=[
        "no-max_tokens",
        "no-messages",
        "image-url",
        "document",
        "server-tool",
        "tool_choice-unknown-tool",
        "thinking-type",
    ],
)
async def test_what_the_router_cannot_do_is_a_400_naming_the_field(
    router: Router, http: aiohttp.ClientSession, changes: dict[str, Any], where: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 8, "messages": QUESTION, **changes}
    body = {k: v for k, v in body.items() if v is not None}
    headers = {"x-api-key": router.key}
    async with http.post(router.url + "/v1/messages", json=body, headers=headers) as resp:
        assert resp.status == 400
        error = await resp.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(f"{where}:")
    assert not _chat_bodies(router)


SEARCH: Any = {**WEATHER, "name": "search_web", "description": "Search."}


@pytest.mark.parametrize(
    ("choice", "offered"),
    [
        ({"type": "auto"}, ["get_weather", "search_web"]),
        ({"type": "any"}, ["get_weather", "search_web"]),
        ({"type": "none"}, []),
        ({"type": "tool", "name": "search_web"}, ["search_web"]),
    ],
    ids=["auto", "any", "none", "tool"],
)
async def test_tool_choice_narrows_the_tools_the_node_is_offered(
    router: Router, claude: AsyncAnthropic, choice: Any, offered: list[str]
) -> None:
    msg = await claude.messages.create(
        model=MODEL,
        max_tokens=32,
        messages=[{"role": "user", "content": "What now?"}],
        tools=[WEATHER, SEARCH],
        tool_choice=choice,
    )
    sent = _chat_bodies(router)[-1]
    assert [t["function"]["name"] for t in sent.get("tools", [])] == offered
    assert msg.stop_reason == ("tool_use" if offered else "end_turn")


THINKER = {"node-a": EmulatorConfig(models=("qwen3",))}


@pytest.mark.parametrize(
    ("extra", "think"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, True),
        ({"thinking": {"type": "disabled"}}, False),
        ({"thinking": {"type": "adaptive"}}, None),
        ({"output_config": {"effort": "low"}}, "low"),
    ],
    ids=["enabled", "disabled", "adaptive", "effort"],
)
async def test_thinking_settings_become_think(
    make_router: RouterFactory, extra: dict[str, Any], think: object
) -> None:
    router = await make_router(THINKER)
    async with _client(router) as client:
        msg = await client.messages.create(
            model="ollama/qwen3", max_tokens=64, messages=QUESTION, extra_body=extra
        )
    assert _chat_bodies(router)[-1].get("think") == think
    kinds = [b.type for b in msg.content]
    # A thinking model thinks unless told not to (Ollama's default when `think` is absent).
    assert kinds == (["text"] if think is False else ["thinking", "text"])


async def test_thinking_streams_as_thinking_deltas_before_the_text(
    make_router: RouterFactory,
) -> None:
    router = await make_router(THINKER)
    async with _client(router) as client:
        whole = await client.messages.create(model="ollama/qwen3", max_tokens=64, messages=QUESTION)
        async with client.messages.stream(
            model="ollama/qwen3", max_tokens=64, messages=QUESTION
        ) as stream:
            deltas = [e.delta.type async for e in stream if e.type == "content_block_delta"]
            final = await stream.get_final_message()
    assert deltas[0] == "thinking_delta" and deltas[-1] == "text_delta"
    thinking, text = final.content
    assert thinking.type == "thinking" and text.type == "text"
    assert thinking.thinking == whole.content[0].thinking
    assert thinking.signature == ""  # Ollama's thinking is not signed
    assert thinking.thinking not in text.text


async def test_output_config_format_reaches_the_node_as_format(
    router: Router, claude: AsyncAnthropic
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    msg = await claude.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=QUESTION,
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}},
    )
    assert _chat_bodies(router)[-1]["format"] == schema
    assert set(json.loads(msg.content[0].text)) == {"city"}


async def test_metadata_user_id_keeps_a_user_on_one_node(make_router: RouterFactory) -> None:
    node = EmulatorConfig(models=("llama3",))
    router = await make_router(
        {"a": node, "b": node, "c": node},
        # Round robin would spread the requests; only affinity keeps them together.
        routing=RoutingConfig(strategy="round_robin", affinity=True),
    )
    async with _client(router) as client:
        for n in range(4):
            await client.messages.create(
                model=MODEL,
                max_tokens=8,
                messages=[{"role": "user", "content": f"Question {n}"}],
                metadata={"user_id": "alice"},
            )
    assert sorted(len(n.stats.bodies) for n in router.nodes.values()) == [0, 0, 4]


async def test_thinking_asked_of_a_model_that_cannot_think_is_the_nodes_400(
    claude: AsyncAnthropic,
) -> None:
    # The router does not read model capabilities yet, so it passes `think` on (README).
    with pytest.raises(anthropic.BadRequestError) as info:
        await claude.messages.create(
            model=MODEL,
            max_tokens=8,
            messages=QUESTION,
            extra_body={"thinking": {"type": "enabled", "budget_tokens": 1024}},
        )
    assert "does not support thinking" in info.value.body["error"]["message"]  # type: ignore[index]
