"""Several routers, one fleet: with Redis no node ever runs more than its max_concurrency.

The emulator's own `stats.max_in_flight` is the ground truth. Requests are SDK calls (chat,
half of them streamed) split across the routers; each node is paced so that they overlap.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import openai
import pytest
from redis.asyncio import Redis

from router.emulator import EmulatorConfig
from router.routing.local import QueuedSlots
from router.routing.redis_leases import ACQUIRE
from router.routing.redis_slots import RedisSlots
from tests.conftest import Router, free_port, scrape, wait_until, wait_until_async
from tests.coordination.conftest import (
    SLOW,
    RedisServer,
    ReplicaFactory,
    sample,
    wait_sharing,
)
from tests.coordination.proxy import LossyProxy

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
        assert await sample(router, "jarvis_coordination_up") == 1
        assert await sample(router, "jarvis_coordination_errors_total", operation="acquire") == 0


async def test_without_redis_the_same_routers_overrun_the_nodes(
    make_replicas: ReplicaFactory,
) -> None:
    # The control: 4 requests per router fit each router's own view of 2 + 2 slots, so alone
    # each stays within capacity; together, not knowing of each other, they double it.
    routers = await make_replicas(2, {"a": SLOW, "b": SLOW}, max_concurrency=2, redis_url=None)
    assert all(await _load(routers, 8))
    assert max(_peaks(routers[0]).values()) > 2
    async with aiohttp.ClientSession() as http:  # not configured: no coordination metrics
        assert "jarvis_coordination_up" not in (await scrape(http, routers[0].url)).names
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
    assert time.monotonic() - started > 0.25  # it waited (wait_timeout_s) before saying so
    assert await holder


async def test_waiters_are_served_first_come_first_served(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=1, redis_url=redis_server.url)
    slots, node = router.state.dispatcher.slots, router.nodes["a"]
    assert isinstance(slots, RedisSlots)

    def seen(n: int) -> Callable[[], Awaitable[bool]]:  # n queued at the router or sent on
        async def check() -> bool:
            return await sample(router, "jarvis_queue_depth") + node.stats.requests[CHAT] >= n

        return check

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(_chat(router, 2 * i)))
        await wait_until_async(seen(i + 1))  # each arrives after the one before
    await asyncio.gather(*tasks)
    assert [body["options"]["seed"] for body in node.stats.bodies] == [0, 2, 4, 6, 8]
    assert node.stats.max_in_flight == 1


async def _depth_is(router: Router, depth: int) -> bool:
    return await sample(router, "jarvis_queue_depth") == depth


async def test_a_client_that_leaves_while_waiting_holds_nothing(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=1, redis_url=redis_server.url)
    slots = router.state.dispatcher.slots
    assert isinstance(slots, RedisSlots)
    holder = asyncio.create_task(_chat(router, 0))
    await wait_until(lambda: router.router_in_flight() == {"a": 1})
    waiter = asyncio.create_task(_chat(router, 2))
    await wait_until_async(lambda: _depth_is(router, 1))
    waiter.cancel()  # the SDK closes the connection; the router cancels the handler
    await asyncio.gather(waiter, return_exceptions=True)
    await wait_until_async(lambda: _depth_is(router, 0))
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
        assert await sample(router, "jarvis_coordination_up") == 0
        errors = [
            await sample(router, "jarvis_coordination_errors_total", operation=op)
            for op in ("acquire", "release", "refresh", "probe")
        ]
        assert sum(errors)
    down = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(down) == 2  # once per router, not once per request
    # Redis returns (after a crash, empty): every router shares slots again.
    if outage == "killed":
        await redis_server.start()
    else:
        redis_server.resume()
    for router in routers:
        await wait_sharing(router)
    await wait_until(lambda: not any(n.stats.in_flight for n in routers[0].nodes.values()))
    for node in routers[0].nodes.values():
        node.stats.reset()
    assert all(await _load(routers, 16))
    assert max(_peaks(routers[0]).values()) <= 2


async def _no_leases_in_redis(redis_cli: Redis, *nodes: str) -> None:
    """Within 2 s, Redis's own keys (a sorted set of lease ids per node) hold no lease."""
    counts: dict[str, int] = {}
    for _ in range(100):
        counts = {node: await redis_cli.zcard(f"jarvis:slots:{node}") for node in nodes}
        if not any(counts.values()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"leases left in Redis: {counts}")


@pytest.fixture
async def lossy(redis_server: RedisServer) -> AsyncIterator[LossyProxy]:
    proxy = LossyProxy(redis_server.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
async def redis_cli(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client of the same redis-server: to read Redis's own keys or set it up."""
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_one_lost_answer_while_redis_answers_keeps_the_cap(
    lossy: LossyProxy, redis_cli: Redis, make_replicas: ReplicaFactory
) -> None:
    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=1, redis_url=lossy.url)
    # The acquire script runs in Redis, but its answer is lost (a stalled event loop that
    # reads it too late looks the same): the slot it took must be given back, not leaked.
    sha = await redis_cli.script_load(ACQUIRE)
    lossy.lose_answer_to(sha.encode() if isinstance(sha, str) else sha)
    assert all(await _load([router], 3))
    assert lossy.lost == 1
    assert router.nodes["a"].stats.max_in_flight == 1  # still capped
    assert await sample(router, "jarvis_coordination_up") == 1  # Redis answered the check after it
    assert await sample(router, "jarvis_coordination_errors_total", operation="acquire") == 1
    await _no_leases_in_redis(redis_cli, "a")  # the lost one's slot too


async def test_acquires_refused_while_redis_answers_pings_drop_to_local_counts(
    redis_server: RedisServer,
    redis_cli: Redis,
    make_replicas: ReplicaFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=1, redis_url=redis_server.url)
    await wait_sharing(router)
    # After a failover gone wrong the address now leads to a read-only replica: it refuses
    # every write (READONLY, the acquire script's first command) but answers PING. The router
    # must not spin between "suspect" and "it answers": it drops to local counts.
    await redis_cli.replicaof("127.0.0.1", free_port())  # a primary that is not there
    assert await _chat(router, 0)
    # Down once, on a refusal after Redis answered the check: the second acquire's, or the
    # release of the first one's lease, whichever comes first. (Not the gauge: the background
    # probe, a read the replica answers, may have brought the link back up by now.)
    down = [r.getMessage() for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(down) == 1 and "read only replica" in down[0], down
    acquires = await sample(router, "jarvis_coordination_errors_total", operation="acquire")
    assert 1 <= acquires <= 2  # no spinning between "refused" and "it answers"


async def test_a_router_starts_without_redis_and_joins_when_it_appears(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    await redis_server.kill()
    (router,) = await make_replicas(1, {"a": SLOW}, max_concurrency=1, redis_url=redis_server.url)
    assert await sample(router, "jarvis_coordination_up") == 0
    assert await sample(router, "jarvis_coordination_errors_total", operation="connect") == 1
    assert all(await _load([router], 3))  # local counts: no cap, no wait
    assert router.nodes["a"].stats.max_in_flight == 3
    await redis_server.start()
    await wait_sharing(router)
    router.nodes["a"].stats.reset()
    assert all(await _load([router], 3))
    assert router.nodes["a"].stats.max_in_flight == 1


async def test_every_lease_is_given_back_to_redis(
    redis_server: RedisServer, redis_cli: Redis, make_replicas: ReplicaFactory
) -> None:
    routers = await make_replicas(
        2, {"a": SLOW, "b": SLOW}, max_concurrency=2, redis_url=redis_server.url
    )
    assert all(await _load(routers, 12))
    await _no_leases_in_redis(redis_cli, "a", "b")
