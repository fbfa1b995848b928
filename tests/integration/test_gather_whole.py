"""`routing.gather: whole`: a client's non-streamed answer is Ollama's one JSON answer
(`stream: false`), not gathered from a stream; what clients see does not change."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic
import pytest

from router.api.auth import digest, new_key
from router.config import ConfigError, RoutingConfig, load_config
from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory, wait_until
from tests.resilience.helpers import chat, stream, timed

MODEL = "ollama/llama3"
WHOLE = RoutingConfig(gather="whole")
PACED = EmulatorConfig(models=("llama3",), tokens_per_second=100, ttft_ms=150, default_tokens=10)


def _streamed(router: Router) -> list[object]:
    """What each generation the nodes saw asked for `stream`, in order."""
    return [body.get("stream") for n in router.nodes.values() for body in n.stats.bodies]


async def test_chat_answer_is_the_nodes_json_answer(make_router: RouterFactory) -> None:
    whole = await make_router(routing=WHOLE)
    streamed = await make_router()
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "seed": 7}
    a = await whole.client().chat.completions.create(**ask)
    b = await streamed.client().chat.completions.create(**ask)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.choices[0].finish_reason == b.choices[0].finish_reason == "stop"
    assert a.usage is not None and b.usage is not None
    assert (a.usage.prompt_tokens, a.usage.completion_tokens) == (
        b.usage.prompt_tokens,
        b.usage.completion_tokens,
    )
    assert a.usage.completion_tokens > 0
    assert _streamed(whole) == [False]
    assert _streamed(streamed) == [True]


async def test_every_api_answers_whole_and_streams_still_stream(
    make_router: RouterFactory,
) -> None:
    router = await make_router(routing=WHOLE)
    client = router.client()
    text = await client.completions.create(model=MODEL, prompt="Say hi", max_tokens=5)
    assert text.choices[0].text and text.usage is not None and text.usage.completion_tokens == 5
    answer = await client.responses.create(model=MODEL, input="hi")
    assert answer.output_text and answer.usage is not None and answer.usage.output_tokens > 0
    async with anthropic.AsyncAnthropic(base_url=router.url, api_key=router.key) as claude:
        message = await claude.messages.create(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert message.content and message.usage.output_tokens > 0
    assert await stream(client)  # a streamed request still streams from the node
    assert _streamed(router) == [False, False, False, True]


async def test_a_node_killed_mid_answer_costs_no_request(make_router: RouterFactory) -> None:
    router = await make_router({"a": PACED, "b": PACED}, max_concurrency=4, routing=WHOLE)
    client = router.client()
    tasks = [asyncio.create_task(timed(chat(client, seed=i))) for i in range(8)]
    await wait_until(lambda: router.nodes["a"].stats.in_flight > 0)
    await router.nodes["a"].kill()  # its answers had not come: they fail over to b
    results = await asyncio.wait_for(asyncio.gather(*tasks), 15)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]


def test_gather_must_be_stream_or_whole(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    head = (
        "nodes: [{name: a, url: 'http://127.0.0.1:11434'}]\n"
        f"api_keys: [{{name: k, sha256: '{digest(new_key())}'}}]\n"
    )
    fleet.write_text(head + "routing: {gather: lines}\n")
    with pytest.raises(ConfigError, match="gather"):
        load_config(str(fleet))
    fleet.write_text(head + "routing: {gather: whole}\n")
    assert load_config(str(fleet)).routing.gather == "whole"
    fleet.write_text(head)
    assert load_config(str(fleet)).routing.gather == "stream"  # the default
