"""The model catalog measured (issue #15): `python -m benchmarks.catalog` (~30 s, bounded).

1. **Warm pool.** The first-token time of the first request for a model with `min_loaded: 1`
   (the router loaded it at start, before any request) against the same model cold (no
   `min_loaded`: the first request waits for the load). The emulated node takes `--load-ms`
   to load a model, as a real node takes seconds to minutes.
2. **Spill.** `ollama/llama3` = `[llama3:70b, llama3:8b]`; the 70b node has 2 slots and is
   slow, the 8b node 4 slots. Closed-loop clients up to the fleet's 6 slots: the 70b node
   stays saturated, the rest spill to the 8b node, and no request is refused (429) while the
   8b node has a free slot. With more clients than slots, the extra ones wait in the
   admission queue (still no 429 within `queue_timeout_s`).

Everything runs in this process on 127.0.0.1: emulated nodes and the router through
production's runner (`router.api.app.make_runner`), driven with the official `openai` SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import openai
from aiohttp import web
from openai import AsyncOpenAI

from router.api.app import create_app, make_runner
from router.api.auth import digest, new_key
from router.config import (
    ApiKeyConfig,
    FleetConfig,
    HealthConfig,
    ModelConfig,
    NodeConfig,
    RoutingConfig,
)
from router.emulator import EmulatedNode, EmulatorConfig

HI = [{"role": "user", "content": "Say hello."}]


@dataclass
class Router:
    url: str
    key: str
    nodes: dict[str, EmulatedNode]


@contextlib.asynccontextmanager
async def fleet(
    specs: Mapping[str, tuple[EmulatorConfig, int]], models: tuple[ModelConfig, ...]
) -> AsyncIterator[Router]:
    """Emulated nodes (config, the router's max_concurrency) and a router in front."""
    nodes = {name: EmulatedNode(spec, name=name) for name, (spec, _) in specs.items()}
    for node in nodes.values():
        await node.start()
    key = new_key()
    config = FleetConfig(
        nodes=tuple(NodeConfig(n, nodes[n].url, cap) for n, (_, cap) in specs.items()),
        api_keys=(ApiKeyConfig("bench", digest(key)),),
        health=HealthConfig(interval_s=0.5, timeout_s=1.0, refresh_min_interval_s=0.0),
        routing=RoutingConfig(request_timeout_s=60.0, queue_timeout_s=30.0),
        models=models,
    )
    runner = make_runner(create_app(config, rng=random.Random(1)), shutdown_grace_s=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Router(f"http://127.0.0.1:{runner.addresses[0][1]}", key, nodes)
    finally:
        await runner.cleanup()
        for node in nodes.values():
            await node.stop()


async def first_token_s(client: AsyncOpenAI, model: str) -> float:
    start = time.perf_counter()
    stream = await client.chat.completions.create(model=model, messages=HI, stream=True)
    first = None
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - start
    assert first is not None, "no token"
    return first


async def warm_vs_cold(load_ms: float, repeats: int) -> list[tuple[str, list[float]]]:
    node = EmulatorConfig(models=("mistral",), preloaded=False, load_ms=load_ms, ttft_ms=20)
    rows: list[tuple[str, list[float]]] = []
    for label, floor in (("min_loaded: 1 (warm pool)", 1), ("cold (no min_loaded)", 0)):
        times = []
        for _ in range(repeats):
            entry = ModelConfig("mistral", ("mistral",), num_ctx=4096, min_loaded=floor)
            async with fleet({"a": (node, 4)}, (entry,)) as router:
                if floor:  # the load the router sent at start is done before any request
                    await asyncio.sleep(load_ms / 1000 + 0.5)
                client = AsyncOpenAI(base_url=router.url + "/v1", api_key=router.key)
                async with client:
                    times.append(await first_token_s(client, "ollama/mistral"))
        rows.append((label, times))
    return rows


@dataclass
class SpillRun:
    clients: int
    ok: int = 0
    refused: int = 0
    served: Counter[str] | None = None
    latencies: list[float] | None = None


async def spill(clients: int, duration_s: float) -> SpillRun:
    big = EmulatorConfig(models=("llama3:70b",), tokens_per_second=40, default_tokens=20)
    small = EmulatorConfig(models=("llama3:8b",), tokens_per_second=200, default_tokens=20)
    entry = ModelConfig("llama3", ("llama3:70b", "llama3:8b"), num_ctx=8192, keep_alive="30m")
    run = SpillRun(clients, served=Counter(), latencies=[])
    async with fleet({"big": (big, 2), "small": (small, 4)}, (entry,)) as router:
        client = AsyncOpenAI(base_url=router.url + "/v1", api_key=router.key, max_retries=0)
        end = time.perf_counter() + duration_s

        async def one_client() -> None:
            while time.perf_counter() < end:
                start = time.perf_counter()
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model="ollama/llama3", messages=HI
                    )
                except openai.RateLimitError:
                    run.refused += 1
                    continue
                assert run.served is not None and run.latencies is not None
                run.served[raw.headers.get("x-jarvis-served-model", "?")] += 1
                run.latencies.append(time.perf_counter() - start)
                run.ok += 1

        async with client:
            await asyncio.gather(*(one_client() for _ in range(clients)))
    return run


def _ms(values: list[float]) -> str:
    return f"{1000 * statistics.median(values):.0f}"


async def main(args: argparse.Namespace) -> None:
    print(f"## Warm pool: first-token time of the first request (load takes {args.load_ms:.0f} ms)")
    print()
    print("| model | runs | first token, median (ms) | min (ms) | max (ms) |")
    print("|---|---|---|---|---|")
    for label, times in await warm_vs_cold(args.load_ms, args.repeats):
        print(
            f"| {label} | {len(times)} | {_ms(times)} | {1000 * min(times):.0f} | "
            f"{1000 * max(times):.0f} |"
        )
    print()
    print(
        f"## Spill: ollama/llama3 = [llama3:70b (2 slots, slow), llama3:8b (4 slots)], "
        f"{args.duration:.0f} s each"
    )
    print()
    print("| clients | answered | on 70b | on 8b | 429 | latency median (ms) |")
    print("|---|---|---|---|---|---|")
    for clients in (2, 4, 6, 9):
        run = await spill(clients, args.duration)
        served = run.served or Counter()
        print(
            f"| {clients} | {run.ok} | {served['llama3:70b']} | {served['llama3:8b']} | "
            f"{run.refused} | {_ms(run.latencies or [0.0])} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load-ms", type=float, default=1500.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per spill run")
    asyncio.run(main(parser.parse_args()))
