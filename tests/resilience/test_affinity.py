"""Conversation affinity keeps a chat on the node whose prompt cache holds it (issue 7)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import openai

from router.config import RoutingConfig
from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory
from tests.resilience.helpers import MODEL, REQUEST_BOUND_S

# A prefix-cache hit makes the emulator's first token 5x faster (150 ms → 30 ms).
NODE = EmulatorConfig(models=("llama3",), ttft_ms=150, prefix_cache=True, default_tokens=4)
CONVERSATIONS, TURNS = 6, 4


async def _turn(client: openai.AsyncOpenAI, history: list[Any]) -> tuple[str, float]:
    """One streamed turn: (the reply, its time to first token measured by the client)."""
    start = time.perf_counter()
    ttft, parts = 0.0, []
    chunks = await client.chat.completions.create(model=MODEL, messages=history, stream=True)
    async for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            ttft = ttft or time.perf_counter() - start
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts), ttft


async def _conversations(make_router: RouterFactory, affinity: bool) -> tuple[float, Router]:
    """Mean TTFT of turns 2+ over concurrent conversations; each sticks or not."""
    router = await make_router(
        {"a": NODE, "b": NODE, "c": NODE},
        max_concurrency=CONVERSATIONS,
        # The bound on load would move a conversation off a node holding most of them.
        routing=RoutingConfig(affinity=affinity, affinity_balance=10.0),
    )
    later: list[float] = []

    async def conversation(n: int) -> None:
        client = router.client()
        history: list[Any] = [
            {"role": "system", "content": f"You are assistant number {n}."},
            {"role": "user", "content": f"Conversation {n}: hello."},
        ]
        for turn in range(TURNS):
            reply, ttft = await asyncio.wait_for(_turn(client, history), REQUEST_BOUND_S)
            if turn:
                later.append(ttft)
            history += [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": f"Turn {turn + 1}, go on."},
            ]

    await asyncio.gather(*(conversation(n) for n in range(CONVERSATIONS)))
    return statistics.mean(later), router


def _nodes_per_conversation(router: Router) -> dict[int, set[str]]:
    seen: dict[int, set[str]] = {}
    for name, node in router.nodes.items():
        for body in node.stats.bodies:
            system = body["messages"][0]["content"]
            n = int(system.removeprefix("You are assistant number ").rstrip("."))
            seen.setdefault(n, set()).add(name)
    return seen


async def test_conversation_sticks_to_its_node(make_router: RouterFactory) -> None:
    sticky_ttft, sticky = await _conversations(make_router, affinity=True)
    spread_ttft, spread = await _conversations(make_router, affinity=False)
    placement = _nodes_per_conversation(sticky)
    assert len(placement) == CONVERSATIONS
    assert all(len(nodes) == 1 for nodes in placement.values()), placement
    assert len(set().union(*placement.values())) >= 2  # conversations still spread out
    assert any(len(nodes) > 1 for nodes in _nodes_per_conversation(spread).values())
    assert sticky_ttft < 0.7 * spread_ttft, (sticky_ttft, spread_ttft)
