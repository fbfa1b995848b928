"""`python -m benchmarks.closed_loop [--quick] [--repeats N]`: closed-loop comparisons.

Small fleets of emulated nodes behind a fresh in-process router per run, driven by closed-loop
clients (each sends its next request when its last one answered). These are the timing sides
of behaviour the tests assert without timings (tests/resilience): what the numbers are is this
script's business, and it prints them without judging.

- load: 2 fast nodes (150 tok/s) + 1 slow (50 tok/s), 2 slots each, 15-token replies; every
  node measured first. Light load (3 clients on 6 slots): cost_aware leaves the slow node idle.
  Full load (8 clients on 6 slots, the queue never empty): every node is needed, and because
  the router's admission queue hands each freed slot to the next waiter under any strategy,
  cost_aware and round_robin run every node flat out alike; they tie on throughput.
- affinity: 6 concurrent conversations x 4 streamed turns on 3 nodes with a prompt cache
  (a hit makes the first token 5x faster): the mean time to first token of turns 2+, with
  conversation affinity on and off.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from router.api.app import create_app, make_runner
from router.api.auth import digest, new_key
from router.api.state import STATE, RouterState
from router.config import ApiKeyConfig, FleetConfig, HealthConfig, NodeConfig, RoutingConfig
from router.emulator import EmulatedNode, EmulatorConfig

FAST = EmulatorConfig(models=("llama3",), tokens_per_second=150, default_tokens=15)
SLOW = EmulatorConfig(models=("llama3",), tokens_per_second=50, default_tokens=15)
CACHED = EmulatorConfig(models=("llama3",), ttft_ms=150, prefix_cache=True, default_tokens=4)
MODEL = "ollama/llama3"
CONVERSATIONS, TURNS = 6, 4


@dataclass
class Fleet:
    url: str
    state: RouterState
    nodes: dict[str, EmulatedNode]
    session: aiohttp.ClientSession


@dataclass
class Result:
    label: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    served: dict[str, int] = field(default_factory=dict)


@asynccontextmanager
async def fleet(
    specs: Mapping[str, EmulatorConfig], routing: RoutingConfig, capacity: int
) -> AsyncIterator[Fleet]:
    """Nodes and a router on loopback, every node healthy, until the block ends."""
    nodes = {name: EmulatedNode(spec, name=name) for name, spec in specs.items()}
    runner: web.AppRunner | None = None
    try:
        for node in nodes.values():
            await node.start()
        key = new_key()
        config = FleetConfig(
            nodes=tuple(NodeConfig(n, e.url, capacity) for n, e in nodes.items()),
            api_keys=(ApiKeyConfig("bench", digest(key)),),
            health=HealthConfig(interval_s=0.5, timeout_s=1.0, refresh_min_interval_s=0.0),
            routing=routing,
        )
        app = create_app(config, rng=random.Random(7))
        runner = make_runner(app, shutdown_grace_s=2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        state = app[STATE]
        deadline = time.monotonic() + 5
        while not all(n.healthy for n in state.fleet.nodes.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the router did not see every node healthy in time")
            await asyncio.sleep(0.02)
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
            yield Fleet(url, state, nodes, session)
    finally:
        if runner is not None:
            await runner.cleanup()
        for node in nodes.values():
            await node.stop()


async def chat(f: Fleet, messages: list[Any], stream: bool = False) -> tuple[str, float] | None:
    """One request: (the reply, seconds to its first token), or None if it failed."""
    body = {"model": MODEL, "messages": messages, "stream": stream}
    started, first, parts = time.perf_counter(), 0.0, []
    try:
        async with asyncio.timeout(30), f.session.post(f.url, json=body) as resp:
            if resp.status != 200:
                return None
            if not stream:
                reply = await resp.json(loads=orjson.loads)
                return reply["choices"][0]["message"]["content"], time.perf_counter() - started
            async for raw in resp.content:
                line = raw.strip()
                if not line.startswith(b"data: {"):
                    continue
                for choice in orjson.loads(line[6:]).get("choices", ()):
                    if text := choice.get("delta", {}).get("content"):
                        first = first or time.perf_counter() - started
                        parts.append(text)
    except (aiohttp.ClientError, TimeoutError):
        return None
    return "".join(parts), first


async def _warm(f: Fleet) -> None:
    """Two requests on each node alone (the others drained), so every node is measured."""
    for name in f.nodes:
        for other in f.nodes:
            f.state.fleet.set_draining(other, other != name)
        for _ in range(2):
            await chat(f, [{"role": "user", "content": "warm up"}])
    for other in f.nodes:
        f.state.fleet.set_draining(other, False)
    for node in f.nodes.values():
        node.stats.reset()


async def load(strategy: str, clients: int, per_client: int) -> Result:
    routing = RoutingConfig(strategy=strategy, affinity=False)
    async with fleet({"fast-1": FAST, "fast-2": FAST, "slow": SLOW}, routing, 2) as f:
        await _warm(f)
        out = Result(strategy)

        async def client(n: int) -> None:
            for i in range(per_client):
                started = time.perf_counter()
                messages = [{"role": "user", "content": f"client {n} request {i}"}]
                if await chat(f, messages) is None:
                    out.failed += 1
                else:
                    out.latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        out.seconds = time.perf_counter() - started
        out.served = {name: node.stats.completed for name, node in f.nodes.items()}
    return out


async def affinity(on: bool) -> Result:
    # affinity_balance: the bound on load would move a conversation off a node holding most.
    routing = RoutingConfig(affinity=on, affinity_balance=10.0)
    out = Result("on" if on else "off")
    async with fleet({"a": CACHED, "b": CACHED, "c": CACHED}, routing, CONVERSATIONS) as f:

        async def conversation(n: int) -> None:
            history: list[Any] = [
                {"role": "system", "content": f"You are assistant number {n}."},
                {"role": "user", "content": f"Conversation {n}: hello."},
            ]
            for turn in range(TURNS):
                answer = await chat(f, history, stream=True)
                if answer is None:
                    out.failed += TURNS - turn
                    return
                if turn:
                    out.latencies.append(answer[1])
                history += [
                    {"role": "assistant", "content": answer[0]},
                    {"role": "user", "content": f"Turn {turn + 1}, go on."},
                ]

        await asyncio.gather(*(conversation(n) for n in range(CONVERSATIONS)))
        out.served = {name: node.stats.completed for name, node in f.nodes.items()}
    return out


def _ms(values: Sequence[float]) -> str:
    return f"{statistics.mean(values) * 1000:.0f}" if values else "-"


def load_table(rows: Sequence[tuple[str, Result]]) -> str:
    lines = [
        "### load: 2 fast nodes (150 tok/s) + 1 slow (50 tok/s), 2 slots each, closed loop",
        "",
        "| load | strategy | requests | req/s | mean ms | served fast-1 / fast-2 / slow | failed |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for name, r in rows:
        served = " / ".join(str(r.served.get(n, 0)) for n in ("fast-1", "fast-2", "slow"))
        rate = len(r.latencies) / r.seconds if r.seconds else 0.0
        lines.append(
            f"| {name} | {r.label} | {len(r.latencies) + r.failed} | {rate:.1f} | "
            f"{_ms(r.latencies)} | {served} | {r.failed} |"
        )
    return "\n".join(lines)


def affinity_table(rows: Sequence[Result]) -> str:
    lines = [
        f"### affinity: {CONVERSATIONS} conversations x {TURNS} streamed turns, 3 nodes with "
        "a prompt cache (hit: TTFT 150 -> 30 ms)",
        "",
        "| affinity | turns 2+ | mean TTFT ms | served a / b / c | failed |",
        "|---|---:|---:|---|---:|",
    ]
    for r in rows:
        served = " / ".join(str(r.served.get(n, 0)) for n in ("a", "b", "c"))
        lines.append(
            f"| {r.label} | {len(r.latencies)} | {_ms(r.latencies)} | {served} | {r.failed} |"
        )
    return "\n".join(lines)


async def main(quick: bool, repeats: int) -> None:
    per_client = (2, 2) if quick else (8, 6)  # light, full
    rows: list[tuple[str, Result]] = []
    for _ in range(repeats):
        for strategy in ("cost_aware", "round_robin"):
            rows.append(("light (3 clients)", await load(strategy, 3, per_client[0])))
        for strategy in ("cost_aware", "round_robin"):
            rows.append(("full (8 clients)", await load(strategy, 8, per_client[1])))
    print(load_table(rows) + "\n", flush=True)
    print(affinity_table([await affinity(on) for _ in range(repeats) for on in (True, False)]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.closed_loop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="2 requests per client (smoke)")
    parser.add_argument("--repeats", type=int, default=1, help="run every row N times")
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(main(args.quick, args.repeats))
    print(f"({time.monotonic() - started:.0f} s)")
