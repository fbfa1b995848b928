"""One view of the fleet (issue 16, point 4): with coordination, every replica's
`/admin/nodes`, `/status`, `jarvis-router status` and `jarvis_node_in_flight` count the
requests other replicas run too, and say which replica answered."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from typing import Any

import aiohttp
import pytest

from router.emulator import EmulatorConfig
from tests.conftest import Router, wait_until, wait_until_async
from tests.coordination.conftest import RedisServer, ReplicaFactory, sample

pytestmark = pytest.mark.timeout(30)
LONG = EmulatorConfig(models=("llama3",), tokens_per_second=20, default_tokens=40)


async def _view(http: aiohttp.ClientSession, router: Router) -> tuple[dict[str, Any], str]:
    async with http.get(router.url + "/admin/nodes", headers=router.headers()) as resp:
        assert resp.status == 200
        return await resp.json(), resp.headers["X-Jarvis-Replica"]


async def test_every_replica_shows_fleet_wide_counts_and_says_who_answered(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    busy, other = await make_replicas(2, {"a": LONG}, max_concurrency=2, redis_url=redis_server.url)
    client = busy.client()
    held = asyncio.create_task(
        client.chat.completions.create(
            model="ollama/llama3", messages=[{"role": "user", "content": "hi"}]
        )
    )
    await wait_until(lambda: busy.router_in_flight() == {"a": 1})

    # The other replica learns of it at its next refresh.
    async def other_sees_it() -> bool:
        return await sample(other, "jarvis_node_in_flight", node="a") == 1

    await wait_until_async(other_sees_it)
    assert await sample(other, "jarvis_node_local_in_flight", node="a") == 0
    assert await sample(busy, "jarvis_node_local_in_flight", node="a") == 1
    async with aiohttp.ClientSession() as http:
        view, header = await _view(http, other)
        (node,) = view["data"]
        assert (node["in_flight"], node["local_in_flight"], node["capacity"]) == (1, 0, 2)
        replica = view["replica"]
        assert replica["id"] == other.state.replica != busy.state.replica
        assert replica["hostname"] == socket.gethostname()
        assert replica["fleet_wide"] is True
        assert header == f"{replica['id']} {replica['hostname']} {os.getpid()}"
        view, _ = await _view(http, busy)
        assert (view["data"][0]["in_flight"], view["data"][0]["local_in_flight"]) == (1, 1)
        async with http.get(other.url + "/status") as resp:
            page = await resp.text()
            assert resp.headers["X-Jarvis-Replica"] == header
        assert f"Replica {other.state.replica} on" in page
        assert "1 / 2" in page
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "router", "status", "--url", other.url),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "JARVIS_API_KEY": other.key},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0
    table = out.decode()
    assert "1/2" in table.splitlines()[1]
    assert f"from replica {other.state.replica}" in table
    assert "fleet-wide in-flight counts" in table
    assert (await held).choices[0].message.content


async def test_without_coordination_the_view_is_the_replicas_own(
    make_replicas: ReplicaFactory,
) -> None:
    (router,) = await make_replicas(1, {"a": LONG}, max_concurrency=2, redis_url=None)
    async with aiohttp.ClientSession() as http:
        view, header = await _view(http, router)
    assert view["replica"]["fleet_wide"] is False
    assert view["replica"]["id"] == router.state.replica
    assert header.startswith(router.state.replica)
    assert view["data"][0]["local_in_flight"] == view["data"][0]["in_flight"] == 0
