"""`jarvis-router serve` as a user runs it: SIGHUP reloads the fleet file; `drain` and
`undrain` from the shell."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from router.api.auth import digest, new_key
from router.emulator import EmulatedNode
from tests.conftest import free_port, wait_for_ok
from tests.reload.conftest import MODEL, PACED

pytestmark = pytest.mark.timeout(30)
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def node() -> AsyncIterator[EmulatedNode]:
    async with EmulatedNode(PACED, name="gpu-a") as n:
        yield n


@pytest.fixture
async def served(
    tmp_path: Path, node: EmulatedNode
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, Path, dict[str, object], str]]:
    admin = new_key()
    port = free_port()
    fleet: dict[str, object] = {
        "listen": {"host": "127.0.0.1", "port": port},
        "server": {"shutdown_grace_s": 5, "reload_poll_s": 0},  # only SIGHUP reloads
        "api_keys": [{"name": "ops", "sha256": digest(admin), "admin": True}],
        "nodes": [{"name": "gpu-a", "url": node.url, "max_concurrency": 2}],
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("JARVIS_API_KEYS_FILE", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "serve", "--config", str(path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for_ok(url + "/readyz")
        yield proc, url, path, fleet, admin
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def _chat(url: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "/v1/chat/completions", json=BODY, headers=headers) as resp,
    ):
        await resp.read()
        return resp.status


async def test_sighup_reloads_the_fleet_file(served) -> None:
    proc, url, path, fleet, _ = served
    key = new_key()
    assert await _chat(url, key) == 401
    fleet["api_keys"].append({"name": "late", "sha256": digest(key)})
    path.write_text(yaml.safe_dump(fleet))
    proc.send_signal(signal.SIGHUP)
    for _ in range(100):  # the signal is handled asynchronously: up to 5 s
        if await _chat(url, key) == 200:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the key added before SIGHUP never worked")


async def test_drain_and_undrain_from_the_shell(served, node: EmulatedNode) -> None:
    _, url, _, _, admin = served

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "router", *args, "--url", url, "--key", admin,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await cli("drain", "gpu-a")
    assert code == 0, err
    assert out.startswith("gpu-a is draining")
    assert await _chat(url, admin) == 503  # the only node is out of rotation
    code, out, _ = await cli("status")
    assert "draining" in out.splitlines()[1]
    code, _, err = await cli("drain", "gpu-z")
    assert code == 1 and "404" in err and "no node named 'gpu-z'" in err
    code, out, err = await cli("undrain", "gpu-a")
    assert code == 0 and "back in rotation" in out, err
    assert await _chat(url, admin) == 200
