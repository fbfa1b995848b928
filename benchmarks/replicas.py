"""`python -m benchmarks.replicas`: many router replicas, one fleet: do nodes stay in capacity?

For 1, 2 and 4 in-process routers in front of the same emulated nodes, without and with Redis
coordination, prints the peak concurrency each node saw (the emulator's own count) against its
max_concurrency, and the p50/p99 latency. Bounded load: as many clients as the fleet has slots,
each sending one non-streamed chat after another to a random router (a load balancer in
front). "with Redis" needs redis-server on the PATH; it runs on a free loopback port.

Then, with Redis, a fleet with one node 3x slower (benchmarks/replicas_slow.py): the slow node's
share at light and at full load for 1, 2 and 4 replicas, p99 against round-robin in the same
run, and failed requests. Every row runs for `--window` seconds (after a short warm-up in the
second table); the whole command takes about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from benchmarks import replicas_slow as slow_node
from benchmarks.replicas_slow import drive, routers
from benchmarks.stats import pct
from router.config import RoutingConfig
from router.emulator import EmulatorConfig

NODES = 3
CAPACITY = 4
REPLICAS = (1, 2, 4)
# ~100 ms per request: 15 tokens at 200/s after a 25 ms first token.
NODE = EmulatorConfig(
    models=("llama3",), tokens_per_second=200, default_tokens=15, ttft_ms=25, max_parallel=CAPACITY
)


@dataclass(slots=True)
class Result:
    replicas: int
    redis: bool
    requests: int
    failed: int
    peaks: dict[str, int]
    p50_ms: float | None
    p99_ms: float | None


@asynccontextmanager
async def redis_server() -> AsyncIterator[str]:
    binary = shutil.which("redis-server")
    assert binary is not None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        args = ("--port", str(port), "--bind", "127.0.0.1", "--dir", folder)
        proc = await asyncio.create_subprocess_exec(
            binary,
            *args,
            *("--save", "", "--appendonly", "no", "--loglevel", "warning"),
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            for _ in range(500):
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.01)
                    continue
                writer.close()
                await writer.wait_closed()
                break
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.kill()
            await proc.wait()


async def run_one(replicas: int, redis_url: str | None, window_s: float, seed: int) -> Result:
    prefix = f"bench-{replicas}-{seed}"
    nodes_config = (NODE,) * NODES
    async with routers(nodes_config, replicas, redis_url, RoutingConfig(), seed, prefix) as (
        nodes,
        urls,
        key,
    ):
        for node in nodes:  # counters from zero
            node.stats.reset()
        latencies, failed = await drive(urls, key, NODES * CAPACITY, window_s, random.Random(seed))
        peaks = {n.name: n.stats.max_in_flight for n in nodes}
    return Result(
        replicas,
        redis_url is not None,
        len(latencies),
        failed,
        peaks,
        _ms(pct(latencies, 50)),
        _ms(pct(latencies, 99)),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def table(results: list[Result]) -> str:
    lines = [
        f"{NODES} emulated nodes x max_concurrency {CAPACITY}; {NODES * CAPACITY} clients "
        "(one per slot), ~100 ms requests, each to a random router",
        "",
        "| replicas | Redis | requests | failed | peak in flight per node (capacity "
        f"{CAPACITY}) | over capacity | p50 ms | p99 ms |",
        "|---:|:---:|---:|---:|:---|:---:|---:|---:|",
    ]
    for r in results:
        peaks = " ".join(f"{p}/{CAPACITY}" for p in r.peaks.values())
        over = "yes" if max(r.peaks.values()) > CAPACITY else "no"
        lines.append(
            f"| {r.replicas} | {'yes' if r.redis else 'no'} | {r.requests} | {r.failed} | "
            f"{peaks} | {over} | {r.p50_ms or 0:.0f} | {r.p99_ms or 0:.0f} |"
        )
    return "\n".join(lines)


async def main(window_s: float, seed: int) -> str:
    results = [await run_one(n, None, window_s, seed) for n in REPLICAS]
    if shutil.which("redis-server") is None:
        return table(results) + "\n\n(with Redis: skipped, redis-server is not installed)"
    async with redis_server() as url:
        results += [await run_one(n, url, window_s, seed) for n in REPLICAS]
        slow = await slow_node.run_all(url, REPLICAS, window_s, seed)
    return table(results) + "\n\n" + slow_node.table(slow)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replicas", description=__doc__)
    parser.add_argument("--window", type=float, default=1.5, help="seconds of load per row")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(asyncio.run(main(args.window, args.seed)))
