"""Several routers, one fleet: with Redis no node ever runs more than its max_concurrency.

The emulator's own `stats.max_in_flight` is the ground truth. Requests are SDK calls (chat,
half of them streamed) split across the routers; each node is paced so that they overlap.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

import openai
import pytest

from router.emulator import EmulatorConfig
from router.routing.local import QueuedSlots
from router.routing.redis_link import RedisDown
from router.routing.redis_slots import RedisSlots
from tests.conftest import Router, wait_until
from tests.coordination.conftest import SLOW, RedisServer, ReplicaFactory, sample

pytestmark = pytest.mark.timeout(20)
MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = "/api/chat"


async def _chat(router: Router, i: int) -> str:
    client = router.clients[0] if router.clients else router.client()
    if i % 2:
        stream = await client.chat.completions.create(
            model="ollama/llama3", messages=MESSAGES, stream=True, seed=i
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        return "".join(parts)
    reply = await client.chat.completions.create(model="ollama/llama3", messages=MESSAGES, seed=i)
    return reply.choices[0].message.content or ""


async def _load(routers: list[Router], requests: int) -> list[str]:
    """`requests` at once, dealt round-robin over the routers; every one must succeed."""
    spread = itertools.cycle(routers)
    return await asyncio.gather(*(_chat(next(spread), i) for i in range(requests)))


def _sharing(router: Router) -> Callable[[], bool]:
    return lambda: sample(router, "jarvis_coordination_up") == 1


def _peaks(router: Router) -> dict[str, int]:
    return {name: node.stats.max_in_flight for name, node in router.nodes.items()}


async def test_two_routers_never_exceed_a_nodes_capacity(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    routers = await make_replicas(
        2, {"a": SLOW, "b": SLOW}, max_concurrency=2, redis_url=redis_server.url
    )
    replies = await _load(routers, 40)
    assert all(replies)
    assert max(_peaks(routers[0]).values()) == 2  # never over, and the load did fill nodes
    for router in routers:
        assert sample(router, "jarvis_coordination_up") == 1
        assert sample(router, "jarvis_coordination_errors_total", operation="acquire") == 0


async def test_without_redis_the_same_routers_overrun_the_nodes(
    make_replicas: ReplicaFactory,
) -> None:
    # The control: 4 requests per router fit each router's own view of 2 + 2 slots, so alone
    # each stays within capacity; together, not knowing of each other, they double it.
    routers = await make_replicas(2, {"a": SLOW, "b": SLOW}, max_concurrency=2, redis_url=None)
    assert all(await _load(routers, 8))
    assert max(_peaks(routers[0]).values()) > 2
    assert routers[0].state.metrics.registry.get_sample_value("jarvis_coordination_up") is None
    assert isinstance(routers[0].state.dispatcher.slots, QueuedSlots)


async def test_with_redis_the_control_load_stays_within_capacity(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    routers = await make_replicas(
        2, {"a": SLOW, "b": SLOW}, max_concurrency=2, redis_url=redis_server.url
    )
    assert all(await _load(routers, 8))
    assert max(_peaks(routers[0]).values()) <= 2


async def test_every_node_full_past_the_wait_is_429_with_retry_after(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    long = EmulatorConfig(models=("llama3",), tokens_per_second=40, default_tokens=30)
    (router,) = await make_replicas(
        1, {"a": long}, max_concurrency=1, redis_url=redis_server.url, wait_timeout_s=0.3
    )
    holder = asyncio.create_task(_chat(router, 0))
    await wait_until(lambda: router.router_in_flight() == {"a": 1})
    started = time.monotonic()
    # As the local admission queue does: 429 + Retry-After, which the SDKs retry themselves.
    with pytest.raises(openai.RateLimitError) as info:
        await _chat(router, 2)
    assert info.value.status_code == 429
    assert info.value.response.headers["Retry-After"] == "1"
    assert info.value.code == "rate_limit_exceeded"
    assert 0.25 < time.monotonic() - started < 1.5
    assert await holder


async def test_waiters_are_served_first_come_first_served(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=1, redis_url=redis_server.url)
    slots, node = router.state.dispatcher.slots, router.nodes["a"]
    assert isinstance(slots, RedisSlots)

    def seen(n: int) -> Callable[[], bool]:  # n requests queued at the router or sent on
        return lambda: sample(router, "jarvis_queue_depth") + node.stats.requests[CHAT] >= n

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(_chat(router, 2 * i)))
        await wait_until(seen(i + 1))  # each arrives after the one before
    await asyncio.gather(*tasks)
    assert [body["options"]["seed"] for body in node.stats.bodies] == [0, 2, 4, 6, 8]
    assert node.stats.max_in_flight == 1


async def test_a_client_that_leaves_while_waiting_holds_nothing(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=1, redis_url=redis_server.url)
    slots = router.state.dispatcher.slots
    assert isinstance(slots, RedisSlots)
    holder = asyncio.create_task(_chat(router, 0))
    await wait_until(lambda: router.router_in_flight() == {"a": 1})
    waiter = asyncio.create_task(_chat(router, 2))
    await wait_until(lambda: sample(router, "jarvis_queue_depth") == 1)
    waiter.cancel()  # the SDK closes the connection; the router cancels the handler
    await asyncio.gather(waiter, return_exceptions=True)
    await wait_until(lambda: sample(router, "jarvis_queue_depth") == 0)
    assert await holder
    assert router.nodes["a"].stats.requests["/api/chat"] == 1  # the waiter never reached it


async def test_a_dead_replicas_slots_come_back_after_their_ttl(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    from router.routing.redis_leases import RedisLeases

    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=2, redis_url=redis_server.url)
    dead = RedisLeases(redis_server.url, prefix="jarvis", ttl_s=0.6)
    try:  # a replica takes both slots, then dies without giving them back
        assert await dead.acquire("a", 2, "dead:1") == (True, 1)
        assert await dead.acquire("a", 2, "dead:2") == (True, 2)
    finally:
        await dead.aclose()
    started = time.monotonic()
    assert await _chat(router, 0)
    assert time.monotonic() - started > 0.4  # it waited for the leases to expire
    assert router.nodes["a"].stats.max_in_flight == 1


@pytest.mark.parametrize("outage", ["killed", "hung"])
async def test_redis_gone_mid_load_fails_no_request_and_comes_back(
    redis_server: RedisServer,
    make_replicas: ReplicaFactory,
    caplog: pytest.LogCaptureFixture,
    outage: str,
) -> None:
    routers = await make_replicas(
        2, {"a": SLOW, "b": SLOW}, max_concurrency=2, redis_url=redis_server.url
    )
    load = asyncio.create_task(_load(routers, 60))  # ~1.5 s at 4 slots: many are waiting
    await asyncio.sleep(0.25)
    if outage == "killed":
        await redis_server.kill()
    else:
        redis_server.pause()
    assert all(await load)  # not one failed
    for router in routers:
        assert sample(router, "jarvis_coordination_up") == 0
        assert sum(
            sample(router, "jarvis_coordination_errors_total", operation=op)
            for op in ("acquire", "release", "refresh", "probe")
        )
    down = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(down) == 2  # once per router, not once per request
    # Redis returns (after a crash, empty): every router shares slots again.
    if outage == "killed":
        await redis_server.start()
    else:
        redis_server.resume()
    for router in routers:
        await wait_until(_sharing(router), 3.0)
    await wait_until(lambda: not any(n.stats.in_flight for n in routers[0].nodes.values()))
    for node in routers[0].nodes.values():
        node.stats.reset()
    assert all(await _load(routers, 16))
    assert max(_peaks(routers[0]).values()) <= 2


async def test_one_failed_call_that_redis_then_answers_keeps_the_cap(
    redis_server: RedisServer, make_replicas: ReplicaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=1, redis_url=redis_server.url)
    slots = router.state.dispatcher.slots
    assert isinstance(slots, RedisSlots)
    acquire, calls = slots._redis.acquire, []

    async def blip(*args, **kw):  # one answer lost (a stalled event loop looks the same)
        calls.append(args)
        if len(calls) == 1:
            raise RedisDown("TimeoutError: Timeout reading from 127.0.0.1")
        return await acquire(*args, **kw)

    monkeypatch.setattr(slots._redis, "acquire", blip)
    assert all(await _load([router], 3))
    assert router.nodes["a"].stats.max_in_flight == 1  # still capped
    assert slots.link.up
    assert sample(router, "jarvis_coordination_errors_total", operation="acquire") == 1


async def test_acquires_failing_while_redis_answers_pings_drop_to_local_counts(
    redis_server: RedisServer, make_replicas: ReplicaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=1, redis_url=redis_server.url)
    slots = router.state.dispatcher.slots
    assert isinstance(slots, RedisSlots)

    async def refused(*args, **kw):  # e.g. a Redis out of memory refusing scripts: no spinning
        raise RedisDown("ResponseError: OOM command not allowed")

    monkeypatch.setattr(slots._redis, "acquire", refused)
    assert await _chat(router, 0)
    assert sample(router, "jarvis_coordination_up") == 0
    assert sample(router, "jarvis_coordination_errors_total", operation="acquire") == 2


async def test_a_router_starts_without_redis_and_joins_when_it_appears(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    await redis_server.kill()
    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=1, redis_url=redis_server.url)
    assert sample(router, "jarvis_coordination_up") == 0
    assert sample(router, "jarvis_coordination_errors_total", operation="connect") == 1
    assert all(await _load([router], 3))  # local counts: no cap, no wait
    assert router.nodes["a"].stats.max_in_flight == 3
    await redis_server.start()
    await wait_until(_sharing(router), 3.0)
    router.nodes["a"].stats.reset()
    assert all(await _load([router], 3))
    assert router.nodes["a"].stats.max_in_flight == 1


async def test_every_lease_is_given_back_to_redis(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    from router.routing.redis_leases import RedisLeases

    routers = await make_replicas(
        2, {"a": SLOW, "b": SLOW}, max_concurrency=2, redis_url=redis_server.url
    )
    assert all(await _load(routers, 12))
    probe = RedisLeases(redis_server.url, prefix="jarvis", ttl_s=30)
    try:
        counts: dict[str, int] = {}

        async def empty() -> bool:
            counts.update(await probe.sync(["a", "b"], {}))
            return not any(counts.values())

        deadline = time.monotonic() + 2
        while not await empty():
            assert time.monotonic() < deadline, counts
            await asyncio.sleep(0.02)
    finally:
        await probe.aclose()
