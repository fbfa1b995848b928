"""`jarvis-router serve --workers N` as an operator runs it (issue 16, point 5): N processes
on one port sharing slots through Redis, supervised by the parent; refused without Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from router.api.auth import digest, new_key
from router.emulator import EmulatedNode
from tests.conftest import free_port, wait_for_ok
from tests.coordination.conftest import SLOW, RedisServer

pytestmark = pytest.mark.timeout(60)


def _fleet(tmp_path: Path, key: str, nodes: list[EmulatedNode], redis: str | None) -> Path:
    fleet: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": free_port()},
        "api_keys": [{"name": "ops", "sha256": digest(key), "admin": True}],
        "nodes": [{"name": n.name, "url": n.url, "max_concurrency": 2} for n in nodes],
        "logging": {"level": "warning"},
    }
    if redis is not None:
        fleet["coordination"] = {"redis_url": redis}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path


@pytest.fixture
async def nodes() -> AsyncIterator[list[EmulatedNode]]:
    made = [EmulatedNode(SLOW, name=name) for name in ("a", "b")]
    for node in made:
        await node.start()
    try:
        yield made
    finally:
        for node in made:
            await node.stop()


async def _serve(path: Path, *flags: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("JARVIS_API_KEYS_FILE", None)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "router", "serve", "--config", str(path), *flags),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def _pids(http: aiohttp.ClientSession, url: str, key: str, tries: int) -> set[int]:
    """The PIDs that answered `tries` requests, each on a new connection (the kernel spreads
    connections over the workers), stopping once two have answered."""
    pids: set[int] = set()
    for _ in range(tries):
        async with http.get(url + "/admin/nodes", headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.status == 200
            pids.add((await r.json())["replica"]["pid"])
        if len(pids) > 1:
            break
    return pids


async def test_two_workers_serve_one_port_and_share_the_nodes_slots(
    tmp_path: Path, redis_server: RedisServer, nodes: list[EmulatedNode]
) -> None:
    key = new_key()
    path = _fleet(tmp_path, key, nodes, redis_server.url)
    url = f"http://127.0.0.1:{yaml.safe_load(path.read_text())['listen']['port']}"
    proc = await _serve(path, "--workers", "2")
    try:
        await wait_for_ok(url + "/readyz")
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection per request
        async with aiohttp.ClientSession(connector=connector) as http:
            pids: set[int] = set()
            for _ in range(20):  # the second worker may still be starting
                pids |= await _pids(http, url, key, 20)
                if len(pids) > 1:
                    break
                await asyncio.sleep(0.25)
            assert len(pids) == 2 and proc.pid not in pids, pids
            body = {"model": "ollama/llama3", "messages": [{"role": "user", "content": "hi"}]}

            async def chat() -> int:
                auth = {"Authorization": f"Bearer {key}"}
                async with http.post(url + "/v1/chat/completions", json=body, headers=auth) as r:
                    await r.read()
                    return r.status

            statuses = await asyncio.wait_for(asyncio.gather(*(chat() for _ in range(24))), 20)
        assert statuses == [200] * 24
        peaks = [node.stats.max_in_flight for node in nodes]
        assert max(peaks) == 2, peaks  # full, and never over: the workers shared the slots
        proc.send_signal(signal.SIGTERM)  # forwarded to both workers, which drain and exit
        code = await asyncio.wait_for(proc.wait(), 15)
        assert proc.stderr is not None
        assert code == 0, (await proc.stderr.read()).decode()[-3000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_parent_stops_the_set_when_a_worker_dies(
    tmp_path: Path, redis_server: RedisServer, nodes: list[EmulatedNode]
) -> None:
    key = new_key()
    path = _fleet(tmp_path, key, nodes, redis_server.url)
    url = f"http://127.0.0.1:{yaml.safe_load(path.read_text())['listen']['port']}"
    proc = await _serve(path, "--workers", "2")
    try:
        await wait_for_ok(url + "/readyz")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            (pid,) = list(await _pids(http, url, key, 1))
        os.kill(pid, signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 15) == 128 + signal.SIGKILL
        with pytest.raises(aiohttp.ClientConnectionError):  # the other worker is gone too
            async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as r:
                await r.read()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_workers_without_coordination_are_refused(
    tmp_path: Path, nodes: list[EmulatedNode]
) -> None:
    proc = await _serve(_fleet(tmp_path, new_key(), nodes, None), "--workers", "2")
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2
    assert "--workers 2 needs coordination.redis_url" in err.decode()
