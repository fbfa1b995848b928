"""`python -m benchmarks.replicas`, second table: replicas sharing slots through Redis in front of
a fleet with one slow node. Does the slow node get only its share, and what does that do to p99?

Fleet: 3 nodes at ~100 ms a request (15 tokens at 200/s after 25 ms) and 1 node 3x slower
(~300 ms), `max_concurrency` 4 each (16 slots). 1, 2 and 4 in-process replicas with
`coordination` on one redis-server, each request to a random replica (a load balancer in front),
every request a new single-turn chat. Each row runs the shipped strategy (`cost_aware`) and
`routing.strategy: round_robin` in the same run, on fresh nodes and routers.

Light load: 4 clients, a quarter of the slots: the fast nodes can take all of it, so a router
that knows speeds sends the slow node nothing (round-robin sends it a quarter). Full load: 16
clients, one per slot: every slot stays busy, so the slow node's share is its speed's
(4/0.3 of 3x4/0.1 + 4/0.3 req/s, 10 %). A warm-up (not counted) lets each replica learn node
speeds first. Reported: the slow node's share of requests, p50 and p99, p99 against
round-robin's, and failed requests, which must be 0 (printed, not asserted).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import aiohttp
from aiohttp import web

from benchmarks.stats import pct
from router.api.app import create_app, make_runner
from router.api.auth import digest, new_key
from router.config import (
    ApiKeyConfig,
    CoordinationConfig,
    FleetConfig,
    HealthConfig,
    NodeConfig,
    RoutingConfig,
)
from router.emulator import EmulatedNode, EmulatorConfig

CAPACITY = 4
FAST = EmulatorConfig(
    models=("llama3",), tokens_per_second=200, default_tokens=15, ttft_ms=25, max_parallel=CAPACITY
)
SLOW = replace(FAST, tokens_per_second=200 / 3, ttft_ms=75)
NODES = (FAST, FAST, FAST, SLOW)
SLOTS = CAPACITY * len(NODES)
LOADS = (("light", SLOTS // 4), ("full", SLOTS))
SPEED_SHARE = {"light": 0.0, "full": (CAPACITY / 0.3) / (3 * CAPACITY / 0.1 + CAPACITY / 0.3)}
STRATEGIES = ("cost_aware", "round_robin")


@dataclass(slots=True)
class Row:
    replicas: int
    strategy: str
    load: str
    clients: int
    requests: int
    slow_share: float | None
    p50_ms: float | None
    p99_ms: float | None
    failed: int


@asynccontextmanager
async def routers(
    configs: Sequence[EmulatorConfig], replicas: int, redis_url: str | None, routing: RoutingConfig,
    seed: int, prefix: str,
) -> AsyncIterator[tuple[list[EmulatedNode], list[str], str]]:  # fmt: skip
    """Fresh emulated nodes and `replicas` routers in front of them: (nodes, chat URLs, key)."""
    nodes = [EmulatedNode(c, name=f"node-{i}") for i, c in enumerate(configs)]
    runners: list[web.AppRunner] = []
    try:
        for node in nodes:
            node.stats.record_bodies = False
            await node.start()
        key = new_key()
        pairs = zip(nodes, configs, strict=True)
        config = FleetConfig(
            nodes=tuple(NodeConfig(n.name, n.url, c.max_parallel) for n, c in pairs),
            api_keys=(ApiKeyConfig("bench", digest(key)),),
            health=HealthConfig(interval_s=1.0, timeout_s=1.0),
            routing=routing,
        )
        if redis_url is not None:  # a prefix per run: no leftovers from the one before
            config = replace(config, coordination=CoordinationConfig(redis_url, key_prefix=prefix))
        urls = []
        for i in range(replicas):
            app = create_app(config, rng=random.Random(seed + i))
            runner = make_runner(app, shutdown_grace_s=5)
            runners.append(runner)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions")
        yield nodes, urls, key
    finally:
        for runner in runners:
            await runner.cleanup()
        for node in nodes:
            await node.stop()


async def drive(
    urls: list[str], key: str, clients: int, window_s: float, rng: random.Random
) -> tuple[list[float], int]:
    """`clients` closed-loop clients, each request to a random router: (latencies s, failed)."""
    latencies: list[float] = []
    failed = 0
    deadline = time.monotonic() + window_s
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def client(index: int) -> None:
            nonlocal failed
            n = 0
            while time.monotonic() < deadline:
                n += 1  # a new conversation every time: no affinity between requests
                body = {"model": "ollama/llama3",
                        "messages": [{"role": "user", "content": f"hi {index} {n}"}]}  # fmt: skip
                started = time.monotonic()
                try:
                    async with session.post(rng.choice(urls), json=body) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                failed += not ok
                latencies.append(time.monotonic() - started)

        await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, failed


async def run_row(
    replicas: int, strategy: str, load: str, redis_url: str, window_s: float, seed: int
) -> Row:
    clients = dict(LOADS)[load]
    routing = RoutingConfig(strategy=strategy)
    prefix = f"slow-{replicas}-{strategy}-{load}-{seed}"
    rng = random.Random(seed)
    async with routers(NODES, replicas, redis_url, routing, seed, prefix) as (nodes, urls, key):
        await drive(urls, key, clients, min(1.0, window_s / 2), rng)  # warm-up: speeds learned
        for node in nodes:
            node.stats.reset()
        latencies, failed = await drive(urls, key, clients, window_s, rng)
        served = [n.stats.requests["/api/chat"] for n in nodes]
    total = sum(served)
    return Row(
        replicas,
        strategy,
        load,
        clients,
        len(latencies),
        served[-1] / total if total else None,
        _ms(pct(latencies, 50)),
        _ms(pct(latencies, 99)),
        failed,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


async def run_all(
    redis_url: str, replica_counts: Sequence[int], window_s: float, seed: int
) -> list[Row]:
    rows = []
    for replicas in replica_counts:
        for load, _clients in LOADS:
            for strategy in STRATEGIES:
                rows.append(await run_row(replicas, strategy, load, redis_url, window_s, seed))
    return rows


def table(rows: list[Row]) -> str:
    rr = {(r.replicas, r.load): r.p99_ms for r in rows if r.strategy == "round_robin"}
    lines = [
        f"With Redis: 3 nodes at ~100 ms + 1 node 3x slower (~300 ms), max_concurrency "
        f"{CAPACITY} each ({SLOTS} slots); light = {dict(LOADS)['light']} clients, full = "
        f"{SLOTS} (one per slot); share expected from speed: light 0 %, full "
        f"{SPEED_SHARE['full']:.0%}",
        "",
        "| replicas | strategy | load | clients | requests | slow node's share | expected | "
        "p50 ms | p99 ms | p99 / round-robin's | failed |",
        "|---:|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = rr.get((r.replicas, r.load))
        vs = f"{r.p99_ms / base:.2f}x" if r.p99_ms and base else "-"
        share = "-" if r.slow_share is None else f"{r.slow_share:.1%}"
        lines.append(
            f"| {r.replicas} | {r.strategy} | {r.load} | {r.clients} | {r.requests} | {share} | "
            f"{SPEED_SHARE[r.load]:.0%} | {r.p50_ms or 0:.0f} | {r.p99_ms or 0:.0f} | {vs} | "
            f"{r.failed} |"
        )
    failed = sum(r.failed for r in rows)
    lines += [
        "",
        f"Failed requests in all rows: {failed} (target 0: {'met' if not failed else 'not met'}).",
    ]
    return "\n".join(lines)
