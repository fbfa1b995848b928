"""The OpenAI Agents SDK through the router's Responses API: an agent with one function tool
calls it and runs to a final answer (issue 13). Tracing is off: it would post to OpenAI."""

from __future__ import annotations

from typing import Any

import agents
import pytest
from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool
from openai import AsyncOpenAI

from tests.conftest import Router

calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    calls.append(city)
    return f"Sunny in {city}, 21 C"


@pytest.fixture(autouse=True)
def _no_tracing() -> None:
    agents.set_tracing_disabled(True)
    calls.clear()


def _chat_bodies(router: Router) -> list[dict[str, Any]]:
    return [b for n in router.nodes.values() for b in n.stats.bodies if "messages" in b]


async def test_an_agent_with_one_tool_runs_to_a_final_answer(router: Router) -> None:
    client = AsyncOpenAI(base_url=router.url + "/v1", api_key=router.key, max_retries=0)
    router.clients.append(client)
    agent = Agent(
        name="weather",
        instructions="Answer questions about the weather.",
        model=OpenAIResponsesModel(model="ollama/llama3", openai_client=client),
        tools=[get_weather],
    )
    result = await Runner.run(agent, "Use get_weather: what is the weather in Tokyo?")
    assert len(calls) == 1 and calls[0]  # the model called the tool, the SDK ran it
    assert isinstance(result.final_output, str) and result.final_output
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    first, second = _chat_bodies(router)
    assert first["messages"][0] == {
        "role": "system",
        "content": "Answer questions about the weather.",
    }
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["content"] == f"Sunny in {calls[0]}, 21 C"


async def test_a_streamed_agent_run_ends_with_the_same_kind_of_answer(router: Router) -> None:
    client = AsyncOpenAI(base_url=router.url + "/v1", api_key=router.key, max_retries=0)
    router.clients.append(client)
    agent = Agent(
        name="weather",
        instructions="Answer questions about the weather.",
        model=OpenAIResponsesModel(model="ollama/llama3", openai_client=client),
        model_settings=ModelSettings(max_tokens=32),
        tools=[get_weather],
    )
    result = Runner.run_streamed(agent, "Use get_weather: what is the weather in Oslo?")
    events = [event.type async for event in result.stream_events()]
    assert "raw_response_event" in events and len(calls) == 1
    assert isinstance(result.final_output, str) and result.final_output
