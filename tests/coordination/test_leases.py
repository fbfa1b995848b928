"""The Lua scripts against a real redis-server: acquire, release, renew, expiry, failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from router.routing.redis_leases import CALL_TIMEOUT_S
from router.routing.redis_link import RedisDown
from tests.coordination.conftest import RedisServer

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
async def leases(redis_server: RedisServer) -> AsyncIterator[object]:
    from router.routing.redis_leases import RedisLeases

    store = RedisLeases(redis_server.url, prefix="test", ttl_s=0.4)
    try:
        yield store
    finally:
        await store.aclose()


async def test_acquire_up_to_capacity_then_full_with_the_count(leases) -> None:
    assert await leases.acquire("a", 2, "r1:1") == (True, 1)
    assert await leases.acquire("a", 2, "r2:1") == (True, 2)
    assert await leases.acquire("a", 2, "r1:2") == (False, 2)
    assert await leases.acquire("b", 2, "r1:3") == (True, 1)  # nodes are counted apart
    assert await leases.sync(["a", "b", "c"], {}) == {"a": 2, "b": 1, "c": 0}


async def test_release_frees_slots_on_several_nodes_in_one_call(leases) -> None:
    for i in range(2):
        await leases.acquire("a", 2, f"r:{i}")
        await leases.acquire("b", 2, f"r:b{i}")
    await leases.release([("a", "r:0"), ("b", "r:b0"), ("b", "r:b1"), ("a", "gone:9")])
    assert await leases.sync(["a", "b"], {}) == {"a": 1, "b": 0}
    assert await leases.acquire("a", 2, "r:2") == (True, 2)


async def test_a_lease_never_given_back_expires_by_itself(leases) -> None:
    assert await leases.acquire("a", 1, "dead:1") == (True, 1)
    assert await leases.acquire("a", 1, "live:1") == (False, 1)
    await asyncio.sleep(0.5)  # past the 0.4 s ttl: the replica that held it is gone
    assert await leases.sync(["a"], {}) == {"a": 0}
    assert await leases.acquire("a", 1, "live:1") == (True, 1)


async def test_renewal_keeps_a_lease_alive_and_restores_one_redis_lost(leases) -> None:
    await leases.acquire("a", 2, "r:1")
    for _ in range(3):  # 0.6 s in all, past the ttl, renewed every 0.2 s
        await asyncio.sleep(0.2)
        assert await leases.sync(["a"], {"a": ["r:1"]}) == {"a": 1}
    # A restarted Redis lost everything: the next renewal puts the running request back.
    assert await leases.sync(["a"], {"a": ["r:1", "r:2"]}) == {"a": 2}


async def test_a_stopped_redis_fails_fast(redis_server: RedisServer, leases) -> None:
    await redis_server.kill()
    started = time.monotonic()
    with pytest.raises(RedisDown):
        await leases.acquire("a", 1, "r:1")
    with pytest.raises(RedisDown):
        await leases.release([("a", "r:1")])
    assert time.monotonic() - started < 1.0


async def test_a_hung_redis_times_out_quickly(redis_server: RedisServer, leases) -> None:
    await leases.acquire("a", 1, "r:1")  # a pooled connection that will now hang
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(RedisDown):
            await leases.acquire("a", 1, "r:2")
        # bounded by the call's own limit: a router never hangs on its coordinator
        assert time.monotonic() - started < 2 * CALL_TIMEOUT_S + 0.5
    finally:
        redis_server.resume()


async def test_a_session_header_that_is_not_utf8_still_names_its_conversation(leases) -> None:
    """aiohttp hands a header's non-UTF-8 bytes over as surrogates; the conversation's key
    is a digest of them, not an error (a 500 on every such request before)."""
    session = "session:\udcfc\udcff"
    taken, _ = await leases.acquire("gpu-a", 4, "lease-1", session=session)
    assert taken
    assert await leases.last_node(session) == "gpu-a"
    assert await leases.last_node("session:other") is None
