"""Helpers for the observability checks: real scrapes over HTTP, a known mix of traffic with
a ledger of what the emulated nodes saw, Ollama's own token counts, and external tools.

Tools (promtool, chromium) come from `make system-deps`; without one a test fails or skips with
the line that says what to run (tests/tools.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from router.api.auth import digest, new_key
from router.config import ApiKeyConfig
from router.emulator import EmulatorConfig
from tests import tools
from tests.conftest import Router

ROOT = Path(__file__).resolve().parents[2]
MODEL = "ollama/llama3"
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about the sea."}]
# Short answers (max_tokens) finish in ~25 ms; a request without max_tokens streams for a second,
# long enough to hang up in the middle.
PACED = EmulatorConfig(models=("llama3",), tokens_per_second=200, default_tokens=200)
SHORT = 5


require_tool = tools.require


def admin_key() -> tuple[str, ApiKeyConfig]:
    key = new_key()
    return key, ApiKeyConfig("ops", digest(key), admin=True)


@dataclass
class Served:
    endpoint: str
    node: str
    body: dict[str, Any]


@dataclass
class Traffic:
    """What a known mix of requests did, from the nodes' side."""

    served: list[Served] = field(default_factory=list)  # answered in full, in order
    failovers: int = 0  # requests that node-a failed and node-b answered
    stream_node: str = ""
    disconnect_node: str = ""


class Ledger:
    """The bodies each emulated node received since the last call."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.seen = dict.fromkeys(router.nodes, 0)

    def new(self) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for name, node in self.router.nodes.items():
            bodies = node.stats.bodies
            out += [(name, body) for body in bodies[self.seen[name] :]]
            self.seen[name] = len(bodies)
        return out

    def one(self) -> tuple[str, dict[str, Any]]:
        (hit,) = self.new()
        return hit


async def mixed_traffic(router: Router, http: aiohttp.ClientSession) -> Traffic:
    """On nodes `node-a` and `node-b` (both PACED, llama3): a chat, a streamed chat, a
    completion, chats until one fails over, an unknown model, and a stream whose client hangs
    up mid-way."""
    client, ledger, traffic = router.client(), Ledger(router), Traffic()
    await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=SHORT)
    traffic.served.append(Served("/chat/completions", *ledger.one()))

    stream = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=SHORT, stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    traffic.served.append(Served("/chat/completions", *ledger.one()))
    traffic.stream_node = traffic.served[-1].node

    await client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=SHORT)
    traffic.served.append(Served("/completions", *ledger.one()))

    # node-a answers 500: each request that tries it first moves to node-b (one failover).
    router.nodes["node-a"].faults.mode = "error"
    for seed in range(30):
        # A new conversation each time: the same one would stick to one node (affinity).
        await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"question {seed}"}],
            max_tokens=SHORT,
            seed=seed,
        )
        hits = ledger.new()
        traffic.served.append(Served("/chat/completions", *hits[-1]))
        if len(hits) == 2:
            assert [name for name, _ in hits] == ["node-a", "node-b"]
            traffic.failovers += 1
            break
    router.nodes["node-a"].faults.reset()
    assert traffic.failovers == 1

    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="ollama/no-such-model", messages=MESSAGES)
    assert ledger.new() == []

    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    resp = await http.post(router.url + "/v1/chat/completions", json=body, headers=router.headers())
    assert resp.status == 200
    await resp.content.readuntil(b"\n\n")  # the role chunk
    await resp.content.readuntil(b"\n\n")  # a token
    resp.close()  # the client hangs up mid-stream
    traffic.disconnect_node = ledger.one()[0]
    return traffic


async def ollama_counts(router: Router, served: Served) -> tuple[int, int]:
    """(prompt_eval_count, eval_count) from the node itself, replaying the router's body."""
    path = "/api/generate" if "prompt" in served.body else "/api/chat"
    url = router.nodes[served.node].url + path
    async with aiohttp.ClientSession() as http, http.post(url, json=served.body) as resp:
        assert resp.status == 200
        lines = (await resp.read()).splitlines()
    done = orjson.loads(lines[-1])
    assert done["done"] is True
    return int(done["prompt_eval_count"]), int(done["eval_count"])
