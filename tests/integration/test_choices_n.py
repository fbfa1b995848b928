"""`n` > 1 for chat and completions, streamed and not: one generation per choice.

A choice's text is checked against the same request with n = 1 and the choice's own seed (the
router gives choice i seed + i), so every choice is the generation it claims to be.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import openai
import pytest

from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory

pytestmark = pytest.mark.timeout(30)

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about the sky."}]


def generations(router: Router, path: str) -> dict[str, int]:
    return {name: node.stats.requests[path] for name, node in router.nodes.items()}


async def test_chat_n3_returns_three_choices(router: Router) -> None:
    client = router.client()
    resp = await client.chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, n=3, seed=5, max_tokens=12
    )
    assert [c.index for c in resp.choices] == [0, 1, 2]
    singles = [
        await client.chat.completions.create(
            model="ollama/llama3", messages=MESSAGES, seed=5 + i, max_tokens=12
        )
        for i in range(3)
    ]
    assert [c.message.content for c in resp.choices] == [
        s.choices[0].message.content for s in singles
    ]
    assert len({c.message.content for c in resp.choices}) == 3  # seed + i: three samples
    assert all(c.finish_reason in ("stop", "length") for c in resp.choices)
    usages = [s.usage for s in singles if s.usage is not None]
    assert resp.usage is not None and len(usages) == 3
    # The prompt counts once, completion tokens are summed over the choices.
    assert resp.usage.prompt_tokens == usages[0].prompt_tokens
    completion_tokens: list[int] = [u.completion_tokens for u in usages]
    assert resp.usage.completion_tokens == sum(completion_tokens)
    # Three generations for the one request (plus the three singles).
    assert sum(generations(router, "/api/chat").values()) == 6


async def test_chat_n3_streamed(router: Router) -> None:
    client = router.client()
    stream = await client.chat.completions.create(
        model="ollama/llama3",
        messages=MESSAGES,
        n=3,
        seed=5,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts: dict[int, str] = defaultdict(str)
    finish: dict[int, str | None] = {}
    usage = None
    ids = set()
    async for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert len(ids) == 1
    assert sorted(finish) == [0, 1, 2]
    whole = await client.chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, n=3, seed=5, max_tokens=12
    )
    assert [texts[i] for i in range(3)] == [c.message.content for c in whole.choices]
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


async def test_completions_n3_streamed_and_not(router: Router) -> None:
    client = router.client()
    whole = await client.completions.create(
        model="ollama/llama3", prompt="Once upon a time", n=3, seed=9, max_tokens=10
    )
    assert whole.object == "text_completion"
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert all(c.text for c in whole.choices)
    stream = await client.completions.create(
        model="ollama/llama3", prompt="Once upon a time", n=3, seed=9, max_tokens=10, stream=True
    )
    texts: dict[int, str] = defaultdict(str)
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    assert [texts[i] for i in range(3)] == [c.text for c in whole.choices]


async def test_choices_spread_over_nodes(make_router: RouterFactory) -> None:
    spec = EmulatorConfig(models=("llama3",))
    router = await make_router({"node-a": spec, "node-b": spec}, max_concurrency=2)
    resp = await router.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, n=4, max_tokens=5
    )
    assert len(resp.choices) == 4
    # Two slots per node: four choices at once need both nodes.
    assert generations(router, "/api/chat") == {"node-a": 2, "node-b": 2}


async def test_best_of_must_equal_n(router: Router) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await router.client().completions.create(model="ollama/llama3", prompt="x", n=2, best_of=3)
    assert caught.value.param == "best_of"


async def test_n_out_of_range(router: Router) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await router.client().chat.completions.create(
            model="ollama/llama3", messages=MESSAGES, n=129
        )
    assert caught.value.param == "n"


async def test_a_choice_failing_before_the_commit_fails_over(make_router: RouterFactory) -> None:
    spec = EmulatorConfig(models=("llama3",))
    router = await make_router({"node-a": spec, "node-b": spec})
    router.nodes["node-a"].faults.mode = "error"
    resp = await router.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, n=2, max_tokens=5, stream=False
    )
    assert len(resp.choices) == 2 and all(c.message.content for c in resp.choices)


async def test_a_choice_failing_mid_stream_ends_the_answer(make_router: RouterFactory) -> None:
    spec = EmulatorConfig(models=("llama3",), default_tokens=20)
    router = await make_router({"node-a": spec, "node-b": spec})
    for node in router.nodes.values():
        node.faults.die_after_tokens = 3
    stream = await router.client().chat.completions.create(
        model="ollama/llama3", messages=MESSAGES, n=2, stream=True
    )
    with pytest.raises(openai.APIError, match="The stream failed"):
        async for _ in stream:
            pass
    # The other choice's generation was closed: every slot comes back (the autouse check).
