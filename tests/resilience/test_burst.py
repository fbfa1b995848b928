"""A burst beyond the fleet's capacity: the queue holds it fairly, or says 429 when full."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable

import openai

from router.api.auth import digest, new_key
from router.config import ApiKeyConfig, RoutingConfig
from router.emulator import EmulatorConfig
from tests.conftest import RouterFactory
from tests.resilience.helpers import assert_envelope, chat, stream, timed

# 10 tokens at 100/s: ~100 ms a request; 2 nodes x 2 slots = a capacity of 4.
NODE = EmulatorConfig(models=("llama3",), tokens_per_second=100, default_tokens=10)
CAPACITY = 4


async def test_burst_queues_fairly_across_keys(make_router: RouterFactory) -> None:
    other = new_key()
    router = await make_router(
        {"a": NODE, "b": NODE},
        max_concurrency=2,
        extra_keys=[ApiKeyConfig("other", digest(other))],
        routing=RoutingConfig(max_queue=100, queue_timeout_s=20.0),
    )
    a, b = router.client(), router.client(key=other)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def finished_at(call: Awaitable[object]) -> float:
        result = await timed(call)
        assert result.ok, result.error
        return loop.time() - start

    burst_a = [
        asyncio.create_task(finished_at(chat(a) if i % 2 else stream(a)))
        for i in range(5 * CAPACITY + 10)
    ]
    await asyncio.sleep(0.03)  # A's burst is queued before B arrives
    burst_b = [asyncio.create_task(finished_at(chat(b))) for _ in range(5)]
    done_a = await asyncio.wait_for(asyncio.gather(*burst_a), 20)
    done_b = await asyncio.wait_for(asyncio.gather(*burst_b), 20)
    # Keys take turns: B's five go between A's, not after all thirty of them.
    assert max(done_b) < statistics.median(done_a), (max(done_b), statistics.median(done_a))
    assert max(done_b) < 0.6 * max(done_a)
    assert max(n.stats.max_in_flight for n in router.nodes.values()) <= 2  # strict capacity


async def test_full_queue_answers_429(make_router: RouterFactory) -> None:
    router = await make_router(
        {"a": NODE, "b": NODE},
        max_concurrency=2,
        routing=RoutingConfig(max_queue=2, queue_timeout_s=20.0),
    )
    client = router.client()
    calls = [chat(client) for _ in range(5 * CAPACITY // 2)]
    calls += [stream(client) for _ in range(5 * CAPACITY // 2)]
    results = await asyncio.wait_for(asyncio.gather(*(timed(c) for c in calls)), 10)
    served = [r for r in results if r.ok]
    rejected = [r for r in results if not r.ok]
    assert len(served) == CAPACITY + 2  # the running ones and the queue's two
    for r in rejected:
        assert isinstance(r.error, openai.RateLimitError)
        assert_envelope(r.error, 429, retry_after=True)
    # Refused at once, not after waiting out the queue (20 s): a bound that holds on a busy host.
    assert max(r.seconds for r in rejected) < 5.0
