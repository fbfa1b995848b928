"""Draining a node under load: no new requests reach it, its in-flight ones finish, none fail;
undrained, it takes traffic again. Admin keys only."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import wait_until
from tests.reload.conftest import LiveFactory, Load, chats, run_load

pytestmark = pytest.mark.timeout(20)


async def test_drain_and_undrain_under_load(
    live_router: LiveFactory, http: aiohttp.ClientSession
) -> None:
    live = await live_router(("a", "b"))
    router = live.router
    a, b = router.nodes["a"], router.nodes["b"]
    admin = router.headers(live.admin_key)
    stop, load = asyncio.Event(), Load()
    traffic = asyncio.create_task(run_load(router, stop, load))
    async with asyncio.timeout(15):
        await wait_until(lambda: a.stats.in_flight > 0 and chats(b) > 2)
        async with http.post(router.url + "/admin/nodes/a/drain", headers=admin) as resp:
            assert resp.status == 200
            view = await resp.json()
        assert view["name"] == "a" and view["draining"] is True and view["in_flight"] > 0
        await wait_until(lambda: a.stats.in_flight == 0)  # what it had finishes
        seen, seen_b = chats(a), chats(b)
        await asyncio.sleep(0.4)
        assert chats(a) == seen  # and nothing new arrives
        assert chats(b) > seen_b
        async with http.get(router.url + "/metrics") as resp:
            assert 'jarvis_node_draining{node="a"} 1.0' in await resp.text()

        async with http.post(router.url + "/admin/nodes/a/undrain", headers=admin) as resp:
            assert resp.status == 200
            assert (await resp.json())["draining"] is False
        await wait_until(lambda: chats(a) > seen + 2)
        stop.set()
        await traffic
    assert load.failures == []


async def test_drain_needs_an_admin_key_and_a_known_node(
    live_router: LiveFactory, http: aiohttp.ClientSession
) -> None:
    live = await live_router(("a",))
    router = live.router
    async with http.post(router.url + "/admin/nodes/a/drain", headers=router.headers()) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "permission_denied"
    async with http.post(router.url + "/admin/nodes/a/drain") as resp:
        assert resp.status == 401
    headers = router.headers(live.admin_key)
    async with http.post(router.url + "/admin/nodes/zz/drain", headers=headers) as resp:
        assert resp.status == 404
        assert await resp.json() == {
            "error": {
                "message": "The fleet has no node named 'zz'.",
                "type": "invalid_request_error",
                "param": None,
                "code": "node_not_found",
            }
        }
    assert not router.state.fleet.nodes["a"].draining


async def test_a_drained_node_stays_drained_across_a_reload(live_router: LiveFactory) -> None:
    live = await live_router(("a", "b"))
    live.router.state.fleet.set_draining("a", True)
    live.fleet.node("a")["max_concurrency"] = 2
    live.fleet.write()
    assert await live.reloader.reload()
    node = live.router.state.fleet.nodes["a"]
    assert node.draining and not node.in_rotation and node.capacity == 2
