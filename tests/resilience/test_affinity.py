"""Conversation affinity keeps a chat on the node whose prompt cache holds it (issue 7).

Where each turn ran is read from the emulated nodes' own request log. What sticking saves (the
time to first token of later turns) is measured by `python -m benchmarks.closed_loop`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai

from router.config import RoutingConfig
from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory
from tests.resilience.helpers import MODEL, REQUEST_BOUND_S

# A prefix-cache hit makes the emulator's first token 5x faster (150 ms → 30 ms).
NODE = EmulatorConfig(models=("llama3",), ttft_ms=150, prefix_cache=True, default_tokens=4)
CONVERSATIONS, TURNS = 6, 4


async def _turn(client: openai.AsyncOpenAI, history: list[Any]) -> str:
    """One streamed turn: the reply."""
    chunks = await client.chat.completions.create(model=MODEL, messages=history, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


async def _conversations(make_router: RouterFactory, affinity: bool) -> Router:
    """Concurrent conversations of TURNS turns each, every turn with the replies so far."""
    router = await make_router(
        {"a": NODE, "b": NODE, "c": NODE},
        max_concurrency=CONVERSATIONS,
        # The bound on load would move a conversation off a node holding most of them.
        routing=RoutingConfig(affinity=affinity, affinity_balance=10.0),
    )

    async def conversation(n: int) -> None:
        client = router.client()
        history: list[Any] = [
            {"role": "system", "content": f"You are assistant number {n}."},
            {"role": "user", "content": f"Conversation {n}: hello."},
        ]
        for turn in range(TURNS):
            reply = await asyncio.wait_for(_turn(client, history), REQUEST_BOUND_S)
            assert reply
            history += [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": f"Turn {turn + 1}, go on."},
            ]

    await asyncio.gather(*(conversation(n) for n in range(CONVERSATIONS)))
    return router


def _nodes_per_conversation(router: Router) -> dict[int, set[str]]:
    seen: dict[int, set[str]] = {}
    for name, node in router.nodes.items():
        for body in node.stats.bodies:
            system = body["messages"][0]["content"]
            n = int(system.removeprefix("You are assistant number ").rstrip("."))
            seen.setdefault(n, set()).add(name)
    return seen


async def test_conversation_sticks_to_its_node(make_router: RouterFactory) -> None:
    sticky = await _conversations(make_router, affinity=True)
    placement = _nodes_per_conversation(sticky)
    assert len(placement) == CONVERSATIONS
    assert all(len(nodes) == 1 for nodes in placement.values()), placement
    assert len(set().union(*placement.values())) >= 2  # conversations still spread out
    served = sum(len(node.stats.bodies) for node in sticky.nodes.values())
    assert served == CONVERSATIONS * TURNS  # every turn ran once: none failed over


async def test_without_affinity_turns_move(make_router: RouterFactory) -> None:
    # The control: the same conversations, spread by load alone, do not stay together.
    spread = await _conversations(make_router, affinity=False)
    assert any(len(nodes) > 1 for nodes in _nodes_per_conversation(spread).values())
