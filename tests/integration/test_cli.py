"""The `jarvis-router` command as a user runs it: real subprocesses, real signals."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from router.api.auth import digest, new_key
from router.emulator import EmulatedNode, EmulatorConfig
from tests.conftest import free_port, wait_for_ok

PY = sys.executable


async def _run(*args: str, limit_s: float = 20) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        PY, "-m", "router", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_keys_new_prints_key_once_and_its_digest() -> None:
    code, out, _ = await _run("keys", "new", "team-a")
    assert code == 0
    keys = re.findall(r"jrv_[A-Za-z0-9_-]{32,}", out)
    assert len(keys) == 1
    entry = yaml.safe_load(textwrap.dedent(out[out.index("  - name:") :]))
    assert entry == [{"name": "team-a", "sha256": hashlib.sha256(keys[0].encode()).hexdigest()}]


async def test_check_config_summarises_a_good_file() -> None:
    code, out, err = await _run("check-config", "config/fleet.example.yaml")
    assert code == 0, err
    assert "OK" in out and "gpu-a" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nodes: []\n", "nodes must list at least one"),
        (
            "nodes: [{name: a, url: 'http://x:1'}]\napi_keys: [{name: k, sha256: "
            + "a" * 64
            + "}]\nrouting: {max_attempts: 0}\n",
            "routing.max_attempts must be >= 1",
        ),
        ("nodes: [{name: a, url: 'http://x:1', colour: red}]\n", "nodes[0].colour"),
        ("nodes: [{name: a, url: 'ftp://x'}]\n", "nodes[0].url"),
    ],
    ids=["no-nodes", "max-attempts", "unknown-key", "bad-url"],
)
async def test_check_config_names_the_bad_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    code, _, err = await _run("check-config", str(path))
    assert code == 1
    assert expected in err
    assert str(path) in err
    assert "Traceback" not in err


@pytest.fixture
async def node() -> AsyncIterator[EmulatedNode]:
    async with EmulatedNode(
        EmulatorConfig(models=("llama3",), tokens_per_second=20, default_tokens=30), name="gpu-a"
    ) as n:
        yield n


async def _start_serve(
    tmp_path: Path, node: EmulatedNode, key: str, grace_s: float = 10
) -> tuple[asyncio.subprocess.Process, str]:
    fleet = {
        "listen": {"host": "127.0.0.1", "port": free_port()},
        "server": {"shutdown_grace_s": grace_s},
        "api_keys": [{"name": "t", "sha256": digest(key)}],
        "nodes": [{"name": "gpu-a", "url": node.url, "max_concurrency": 2}],
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("JARVIS_API_KEYS_FILE", None)
    proc = await asyncio.create_subprocess_exec(
        PY,
        "-m",
        "router",
        "serve",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{fleet['listen']['port']}"  # type: ignore[index]
    await wait_for_ok(url + "/readyz")
    return proc, url


async def test_serve_drains_streams_on_sigterm_and_exits_0(
    tmp_path: Path, node: EmulatedNode
) -> None:
    key = new_key()
    proc, url = await _start_serve(tmp_path, node, key)
    body = {
        "model": "ollama/llama3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        assert resp.status == 200
        await resp.content.readuntil(b"\n\n")
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        with pytest.raises(aiohttp.ClientConnectionError):  # no new requests are taken
            async with http.get(url + "/healthz") as r:
                await r.read()
        rest = await asyncio.wait_for(resp.read(), 10)  # the open stream runs to its end
        resp.release()
        assert rest.endswith(b"data: [DONE]\n\n")
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert proc.stdout is not None
    logs = (await proc.stdout.read()).decode()
    assert key not in logs  # the key never reaches the logs


async def test_serve_cuts_streams_after_the_grace_period(
    tmp_path: Path, node: EmulatedNode
) -> None:
    key = new_key()
    proc, url = await _start_serve(tmp_path, node, key, grace_s=0.3)
    body = {
        "model": "ollama/llama3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        await resp.content.readuntil(b"\n\n")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        resp.close()
    await asyncio.sleep(0.1)
    assert node.stats.in_flight == 0


async def test_demo_prints_a_curl_line_that_works_as_pasted() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        PY,
        "-m",
        "router",
        "demo",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        curl = ""
        async with asyncio.timeout(15):
            while not curl:
                line = (await proc.stdout.readline()).decode()
                assert line, "demo exited before printing the curl line"
                if line.strip().startswith("curl "):
                    curl = line.strip()
        shell = await asyncio.create_subprocess_shell(curl, stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(shell.communicate(), 15)
        assert shell.returncode == 0
        import orjson

        answer = orjson.loads(out)
        assert answer["object"] == "chat.completion"
        assert answer["choices"][0]["message"]["content"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def _emulate(*flags: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        PY,
        "-m",
        "router",
        "emulate",
        "--port",
        str(port),
        *flags,
        stdout=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    await wait_for_ok(url + "/", timeout_s=10)
    return proc, url


async def test_emulate_serves_ollama_api_and_stops_on_sigterm() -> None:
    proc, url = await _emulate("--models", "llama3,mistral")
    try:
        async with aiohttp.ClientSession() as http, http.get(url + "/api/tags") as resp:
            names = [m["name"] for m in (await resp.json())["models"]]
        assert sorted(names) == ["llama3:latest", "mistral:latest"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_emulate_fault_flags() -> None:
    proc, url = await _emulate("--fault", "busy")
    body = {"model": "llama3", "prompt": "hi", "stream": False}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url + "/api/generate", json=body) as resp:
                assert resp.status == 503
                assert "server busy" in (await resp.json())["error"]
            async with http.get(url + "/api/tags") as resp:
                assert resp.status == 200  # faults hit generations, not health checks
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
