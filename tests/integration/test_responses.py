"""The OpenAI Responses API (`POST /v1/responses`) through the official SDK: answers, streamed
events in the SDK's order, function calls, structured output, the stateless refusals, and the
same routing, failover and error path as chat (issue 13)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from router.config import RoutingConfig
from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory, wait_until

MODEL = "ollama/llama3"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
# Text items in the order the SDK types define (api-reference.md 5.1).
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def _chat_bodies(router: Router) -> list[dict[str, Any]]:
    return [b for n in router.nodes.values() for b in n.stats.bodies if "messages" in b]


def _collapse(types: list[str]) -> list[str]:
    """Runs of the same event type as one (the deltas)."""
    return [t for i, t in enumerate(types) if i == 0 or types[i - 1] != t]


@pytest.mark.parametrize("base", ["/v1", ""], ids=["v1-prefix", "root"])
async def test_create_answers_a_completed_response(router: Router, base: str) -> None:
    resp = await router.client(base=base).responses.create(
        model=MODEL, input="Tell me about the sky.", instructions="You are terse.", temperature=0.2
    )
    assert resp.object == "response" and resp.id.startswith("resp_")
    assert resp.status == "completed" and resp.error is None and resp.model == MODEL
    assert resp.instructions == "You are terse." and resp.temperature == 0.2
    [item] = resp.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert resp.output_text and item.content[0].type == "output_text"
    assert resp.usage is not None and resp.usage.input_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    [sent] = _chat_bodies(router)
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Tell me about the sky."},
    ]
    assert sent["options"]["temperature"] == 0.2


async def test_stream_events_come_in_the_sdk_order_and_deltas_join_to_the_text(
    router: Router,
) -> None:
    client = router.client()
    whole = await client.responses.create(model=MODEL, input="Tell me about the sky.")
    stream = await client.responses.create(model=MODEL, input="Tell me about the sky.", stream=True)
    events = [event async for event in stream]
    assert _collapse([e.type for e in events]) == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas == final.output_text == whole.output_text
    assert final.status == "completed" and final.usage is not None
    assert final.usage.output_tokens == whole.usage.output_tokens
    heads = {"response.created", "response.in_progress", "response.completed"}
    assert {e.response.id for e in events if e.type in heads} == {final.id}


async def test_stream_helper_gets_the_final_response(router: Router) -> None:
    async with router.client().responses.stream(model=MODEL, input="Hello there") as stream:
        texts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(texts) == final.output_text and final.output_text


@pytest.mark.parametrize("stream", [False, True], ids=["gathered", "streamed"])
async def test_function_call_round_trip_through_function_call_output(
    router: Router, stream: bool
) -> None:
    client = router.client()
    question: Any = {"role": "user", "content": "Use get_weather for Tokyo."}
    if stream:
        events = [
            e
            async for e in await client.responses.create(
                model=MODEL, input=[question], tools=[WEATHER], stream=True
            )
        ]
        assert _collapse([e.type for e in events]) == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
        output = events[-1].response.output
    else:
        output = (
            await client.responses.create(model=MODEL, input=[question], tools=[WEATHER])
        ).output
    [call] = output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.call_id and set(json.loads(call.arguments)) == {"city"}
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}
    replay = [question, call.model_dump(exclude_none=True), result]
    answer = await client.responses.create(model=MODEL, input=replay, tools=[WEATHER])
    assert [item.type for item in answer.output] == ["message"] and answer.output_text
    sent = _chat_bodies(router)[-1]["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2]["role"] == "tool" and sent[2]["content"] == "Sunny, 21 C"


async def test_text_format_json_schema_reaches_the_node_as_format(router: Router) -> None:
    resp = await router.client().responses.create(
        model=MODEL,
        input="Name a city.",
        text={"format": {"type": "json_schema", "name": "city", "schema": CITY_SCHEMA}},
    )
    assert _chat_bodies(router)[-1]["format"] == CITY_SCHEMA
    answer = json.loads(resp.output_text)
    assert isinstance(answer["city"], str) and isinstance(answer["population"], int)
    assert resp.text is not None and resp.text.format.type == "json_schema"


@pytest.mark.parametrize(
    ("field", "value"),
    [("previous_response_id", "resp_123"), ("store", True)],
    ids=["previous_response_id", "store"],
)
async def test_stateful_fields_are_a_400_that_says_the_router_is_stateless(
    router: Router, field: str, value: object
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await router.client().responses.create(model=MODEL, input="hi", **{field: value})
    assert info.value.param == field and "stateless" in info.value.message
    assert not _chat_bodies(router)  # refused before any node was asked


async def test_store_false_is_fine(router: Router) -> None:
    resp = await router.client().responses.create(model=MODEL, input="hi", store=False)
    assert resp.status == "completed"


async def test_unknown_model_is_not_found(router: Router) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await router.client().responses.create(model="ollama/nope", input="hi")
    assert info.value.code == "model_not_found"


async def test_a_busy_node_fails_over_like_chat(router: Router) -> None:
    router.nodes["node-a"].faults.mode = "busy"
    for _ in range(4):  # whichever node is chosen first, every request is answered
        assert (await router.client().responses.create(model=MODEL, input="hi")).output_text
    assert router.nodes["node-b"].stats.requests["/api/chat"] == 4


async def test_a_stream_that_dies_mid_way_raises_api_error(router: Router) -> None:
    for node in router.nodes.values():
        node.faults.die_after_tokens = 2
    stream = await router.client().responses.create(model=MODEL, input="hi", stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        async for event in stream:
            seen.append(event.type)
    assert "failed" in info.value.message
    assert "response.output_text.delta" in seen and "response.completed" not in seen


async def test_max_output_tokens_makes_an_incomplete_response(
    make_router: RouterFactory,
) -> None:
    router = await make_router({"node-a": EmulatorConfig(models=("llama3",))})
    resp = await router.client().responses.create(model=MODEL, input="hi", max_output_tokens=3)
    assert resp.status == "incomplete" and resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert resp.usage is not None and resp.usage.output_tokens == 3
    assert _chat_bodies(router)[-1]["options"]["num_predict"] == 3


async def test_requests_are_counted_with_the_responses_api_label(router: Router) -> None:
    client = router.client()
    await client.responses.create(model=MODEL, input="hi")
    _ = [e async for e in await client.responses.create(model=MODEL, input="hi", stream=True)]
    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    registry = router.state.metrics.registry

    def count(endpoint: str, api: str) -> float | None:
        labels = {"endpoint": endpoint, "api": api, "model": MODEL, "status_code": "200"}
        return registry.get_sample_value("jarvis_requests_total", labels)

    await wait_until(lambda: count("/chat/completions", "chat") == 1)
    assert count("/responses", "responses") == 2
    duration = {"endpoint": "/responses", "api": "responses", "model": MODEL}
    assert registry.get_sample_value("jarvis_request_duration_seconds_count", duration) == 2


async def test_turns_of_one_conversation_stay_on_one_node_with_affinity(
    make_router: RouterFactory,
) -> None:
    node = EmulatorConfig(models=("llama3",))
    router = await make_router(
        {"a": node, "b": node, "c": node},
        # Round robin would spread the turns; only affinity keeps them together.
        routing=RoutingConfig(strategy="round_robin", affinity=True),
    )
    client = router.client()
    for n in range(3):
        history: list[Any] = [{"role": "user", "content": f"Conversation {n}: hello."}]
        for turn in range(3):
            resp = await client.responses.create(
                model=MODEL, input=history, instructions=f"You are assistant {n}."
            )
            history += [
                {"role": "assistant", "content": resp.output_text},
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


IMAGE = "iVBORw0KGgo="  # base64, as Ollama takes images


async def test_input_items_become_native_messages(router: Router) -> None:
    items: Any = [
        {"role": "developer", "content": "Be brief."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in"},
                {"type": "input_text", "text": "this picture?"},
                {"type": "input_image", "image_url": f"data:image/png;base64,{IMAGE}"},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": [
            {"type": "reasoning_text", "text": "A small image."}
        ]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "A dot."}]},
        {"role": "user", "content": "And now?"},
    ]  # fmt: skip
    await router.client().responses.create(model=MODEL, input=items)
    assert _chat_bodies(router)[-1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is in\nthis picture?", "images": [IMAGE]},
        {"role": "assistant", "content": "A dot.", "thinking": "A small image."},
        {"role": "user", "content": "And now?"},
    ]


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": "https://x/y.png"}],
                    }
                ]
            },
            "input[0].content[0].image_url",
        ),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tool_choice": {"type": "function", "name": "nope"}, "tools": [WEATHER]}, "tool_choice"),
        ({"temperature": 3}, "temperature"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ],
    ids=[
        "conversation",
        "background",
        "item_reference",
        "input_file",
        "image-url-not-data",
        "hosted-tool",
        "tool_choice-unknown-function",
        "temperature-range",
        "json_schema-without-schema",
    ],
)
async def test_what_the_router_cannot_do_is_a_400_naming_the_field(
    router: Router, changes: dict[str, Any], param: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "input": "hi", **changes}
    with pytest.raises(openai.BadRequestError) as info:
        await router.client().responses.create(**body)
    assert info.value.param == param
    assert not _chat_bodies(router)


SEARCH: Any = {**WEATHER, "name": "search_web", "description": "Search."}


@pytest.mark.parametrize(
    ("choice", "offered"),
    [
        ("auto", ["get_weather", "search_web"]),
        ("required", ["get_weather", "search_web"]),
        ("none", []),
        ({"type": "function", "name": "search_web"}, ["search_web"]),
        (
            {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "get_weather"}],
            },
            ["get_weather"],
        ),
    ],
    ids=["auto", "required", "none", "named", "allowed_tools"],
)
async def test_tool_choice_narrows_the_tools_the_node_is_offered(
    router: Router, choice: Any, offered: list[str]
) -> None:
    resp = await router.client().responses.create(
        model=MODEL, input="What now?", tools=[WEATHER, SEARCH], tool_choice=choice
    )
    sent = _chat_bodies(router)[-1]
    assert [t["function"]["name"] for t in sent.get("tools", [])] == offered
    kinds = [item.type for item in resp.output]
    assert kinds == (["message"] if not offered else ["function_call"])
    assert resp.tool_choice == choice or resp.tool_choice.model_dump(exclude_none=True) == choice


async def test_text_format_json_object_asks_the_node_for_json(router: Router) -> None:
    resp = await router.client().responses.create(
        model=MODEL, input="Answer in JSON.", text={"format": {"type": "json_object"}}
    )
    assert _chat_bodies(router)[-1]["format"] == "json"
    assert isinstance(json.loads(resp.output_text), dict)


async def test_request_fields_are_repeated_in_the_response(router: Router) -> None:
    resp = await router.client().responses.create(
        model=MODEL,
        input="hi",
        metadata={"team": "search"},
        top_p=0.5,
        parallel_tool_calls=False,
        tools=[WEATHER],
        tool_choice="none",
        truncation="disabled",
        user="alice",
        include=[],
        max_output_tokens=50,
    )
    assert resp.metadata == {"team": "search"} and resp.top_p == 0.5
    assert resp.parallel_tool_calls is False and resp.tool_choice == "none"
    assert [t.name for t in resp.tools] == ["get_weather"]
    assert resp.truncation == "disabled" and resp.user == "alice"
    assert resp.max_output_tokens == 50 and resp.previous_response_id is None
    assert resp.temperature == 1.0  # OpenAI's default, sent to the node (not the Modelfile's)
    assert _chat_bodies(router)[-1]["options"] == {
        "temperature": 1.0,
        "top_p": 0.5,
        "num_predict": 50,
    }


THINKER = {"node-a": EmulatorConfig(models=("qwen3",))}


@pytest.mark.parametrize(("effort", "think"), [("high", "high"), ("none", False), ("low", "low")])
async def test_reasoning_effort_becomes_think(
    make_router: RouterFactory, effort: Any, think: object
) -> None:
    router = await make_router(THINKER)
    resp = await router.client().responses.create(
        model="ollama/qwen3", input="Why is the sky blue?", reasoning={"effort": effort}
    )
    assert _chat_bodies(router)[-1]["think"] == think
    kinds = [item.type for item in resp.output]
    assert kinds == (["message"] if think is False else ["reasoning", "message"])
    assert resp.reasoning is not None and resp.reasoning.effort == effort


async def test_thinking_is_a_reasoning_item_never_text(make_router: RouterFactory) -> None:
    router = await make_router(THINKER)
    client = router.client()
    whole = await client.responses.create(model="ollama/qwen3", input="Why is the sky blue?")
    reasoning, message = whole.output
    assert reasoning.type == "reasoning" and message.type == "message"
    thought = reasoning.content[0].text  # type: ignore[index]
    assert thought and thought not in whole.output_text
    events = [
        e
        async for e in await client.responses.create(
            model="ollama/qwen3", input="Why is the sky blue?", stream=True
        )
    ]
    types = _collapse([e.type for e in events])
    assert types[2:6] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
    ]
    streamed = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert streamed == thought
    assert [i.type for i in events[-1].response.output] == ["reasoning", "message"]


async def test_user_keeps_a_user_on_one_node(make_router: RouterFactory) -> None:
    node = EmulatorConfig(models=("llama3",))
    router = await make_router(
        {"a": node, "b": node, "c": node},
        # Round robin would spread the requests; only affinity keeps them together.
        routing=RoutingConfig(strategy="round_robin", affinity=True),
    )
    client = router.client()
    for n in range(4):
        await client.responses.create(model=MODEL, input=f"Question {n}", user="alice")
    assert sorted(len(n.stats.bodies) for n in router.nodes.values()) == [0, 0, 4]


async def test_fields_without_a_local_meaning_are_accepted_and_not_sent(router: Router) -> None:
    resp = await router.client().responses.create(
        model=MODEL,
        input="hi",
        include=["reasoning.encrypted_content"],
        service_tier="auto",
        prompt_cache_key="k",
        safety_identifier="s",
        stream_options={"include_obfuscation": False},
        truncation="auto",
    )
    assert resp.status == "completed" and resp.truncation == "auto"
    assert set(_chat_bodies(router)[-1]) == {"model", "messages", "stream", "options", "truncate"}


async def test_reasoning_asked_of_a_model_that_cannot_think_is_the_nodes_400(
    router: Router,
) -> None:
    # Before any node said what the model can do, `think` is passed on and the node refuses.
    with pytest.raises(openai.BadRequestError) as info:
        await router.client().responses.create(
            model=MODEL, input="hi", reasoning={"effort": "high"}
        )
    assert "does not support thinking" in info.value.message


async def test_reasoning_is_not_sent_to_a_model_its_node_says_cannot_think(
    router: Router,
) -> None:
    client = router.client()
    listed = {m.id: m for m in (await client.models.list()).data}  # /api/show asked, cached
    assert "thinking" not in (listed[MODEL].model_extra or {}).get("capabilities", ["thinking"])
    resp = await client.responses.create(model=MODEL, input="hi", reasoning={"effort": "high"})
    assert resp.status == "completed"
    assert "think" not in _chat_bodies(router)[-1]
