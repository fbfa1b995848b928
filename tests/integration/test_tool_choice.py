"""`tool_choice`, `parallel_tool_calls` and streamed tool-call indexes through the router.

Ollama has no `tool_choice`; what the router sends instead is read from the emulator's own
record of the request (`stats.bodies`). The emulated model calls every tool the user's message
names, else the first tool.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from router.emulator import EmulatorConfig
from router.wire.toolchoice import REQUIRED
from tests.conftest import Router, RouterFactory

pytestmark = pytest.mark.timeout(30)


def tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }


TOOLS: list[Any] = [tool("get_weather"), tool("get_time")]
BOTH: list[Any] = [{"role": "user", "content": "Use get_weather and get_time for Tokyo."}]
PLAIN: list[Any] = [{"role": "user", "content": "What about Tokyo?"}]


def sent(router: Router) -> dict[str, Any]:
    (body,) = [b for n in router.nodes.values() for b in n.stats.bodies]
    return body


async def test_named_function_sends_only_that_tool(router: Router) -> None:
    resp = await router.client().chat.completions.create(
        model="ollama/llama3",
        messages=PLAIN,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = resp.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_time"]
    assert resp.choices[0].finish_reason == "tool_calls"
    body = sent(router)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_time"]
    assert body["messages"][0]["role"] == "system"
    assert "`get_time`" in body["messages"][0]["content"]


async def test_required_keeps_all_tools_and_instructs(router: Router) -> None:
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, *PLAIN]
    await router.client().chat.completions.create(
        model="ollama/llama3", messages=messages, tools=TOOLS, tool_choice="required"
    )
    body = sent(router)
    assert len(body["tools"]) == 2
    assert body["messages"][0] == {"role": "system", "content": f"Be brief.\n\n{REQUIRED}"}


async def test_none_sends_no_tools(router: Router) -> None:
    resp = await router.client().chat.completions.create(
        model="ollama/llama3", messages=BOTH, tools=TOOLS, tool_choice="none"
    )
    assert resp.choices[0].message.tool_calls is None
    assert "tools" not in sent(router)


async def test_auto_sends_tools_without_instruction(router: Router) -> None:
    await router.client().chat.completions.create(
        model="ollama/llama3", messages=PLAIN, tools=TOOLS, tool_choice="auto"
    )
    body = sent(router)
    assert len(body["tools"]) == 2 and body["messages"] == [
        {"role": "user", "content": PLAIN[0]["content"]}
    ]


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "function", "function": {"name": "nope"}},
        "sometimes",
    ],
    ids=["unknown-name", "bad-value"],
)
async def test_bad_tool_choice_is_a_400(router: Router, choice: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await router.client().chat.completions.create(
            model="ollama/llama3", messages=PLAIN, tools=TOOLS, tool_choice=choice
        )
    assert caught.value.param == "tool_choice"


async def test_required_without_tools_is_a_400(router: Router) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await router.client().chat.completions.create(
            model="ollama/llama3", messages=PLAIN, tool_choice="required"
        )
    assert caught.value.param == "tool_choice"


@pytest.mark.parametrize("path", ["rendered", "native"])
async def test_streamed_calls_carry_their_index(make_router: RouterFactory, path: str) -> None:
    router = await make_router({"node-a": EmulatorConfig(tool_call_path=path)})
    stream = await router.client().chat.completions.create(
        model="ollama/llama3", messages=BOTH, tools=TOOLS, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
                assert call.function is not None
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert all(isinstance(json.loads(c["arguments"]), dict) for c in calls.values())
    assert finish == "tool_calls"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_no_parallel_calls_keeps_the_first(router: Router, stream: bool) -> None:
    client = router.client()
    kwargs: dict[str, Any] = {
        "model": "ollama/llama3",
        "messages": BOTH,
        "tools": TOOLS,
        "parallel_tool_calls": False,
    }
    if not stream:
        resp = await client.chat.completions.create(**kwargs)
        calls = resp.choices[0].message.tool_calls or []
        names = [c.function.name for c in calls]
    else:
        names = []
        async for chunk in await client.chat.completions.create(**kwargs, stream=True):
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    assert call.index == 0 and call.function is not None
                    names.append(call.function.name or "")
    assert names == ["get_weather"]
    assert len(sent(router)["tools"]) == 2  # the tools are all sent; the answer keeps one call
