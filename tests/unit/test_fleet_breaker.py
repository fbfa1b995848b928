"""A node ejected by its breaker comes back with one slot: one probe, not a burst."""

from __future__ import annotations

import asyncio
import random
import time

from router.config import NodeConfig
from router.fleet.breaker import BreakerPolicy
from router.fleet.registry import Fleet


async def _readmitted(fleet: Fleet) -> None:
    """Wait for the back-off to end: the fleet says so through its capacity hook."""
    back = asyncio.Event()
    fleet.watch_capacity(back.set)
    async with asyncio.timeout(2):
        await back.wait()


async def test_readmitted_node_has_one_slot_until_a_probe_succeeds() -> None:
    policy = BreakerPolicy(failure_threshold=2, base_backoff_s=0.05, max_backoff_s=0.05, jitter=0)
    fleet = Fleet(
        [NodeConfig("a", "http://a:1", 4)],
        clock=time.monotonic,
        breaker=policy,
        rng=random.Random(1),
    )
    fleet.mark_healthy("a", {"llama3:latest": 0}, 0.0)
    node = fleet.nodes["a"]
    fleet.record_failure(node)
    assert fleet.candidates("llama3:latest") == (node,)  # one failure is not enough
    fleet.record_failure(node)
    assert fleet.candidates("llama3:latest") == ()  # ejected
    await _readmitted(fleet)
    assert node.capacity == 1  # half-open: room for the probe only
    fleet.record_success(node)
    assert node.capacity == 4


async def test_a_failed_probe_ejects_again_with_one_slot_kept() -> None:
    policy = BreakerPolicy(failure_threshold=1, base_backoff_s=0.05, max_backoff_s=1, jitter=0)
    fleet = Fleet(
        [NodeConfig("a", "http://a:1", 4)],
        clock=time.monotonic,
        breaker=policy,
        rng=random.Random(1),
    )
    fleet.mark_healthy("a", {"m:latest": 0}, 0.0)
    node = fleet.nodes["a"]
    fleet.record_failure(node)
    await _readmitted(fleet)
    fleet.record_failure(node)  # the probe failed
    assert fleet.candidates("m:latest") == ()
    assert node.capacity == 1
    assert node.breaker is not None and node.breaker.ejections == 2
