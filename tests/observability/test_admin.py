"""`GET /admin/nodes` for admin keys, `jarvis-router status`, and who may read what."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from router.api.auth import digest, new_key
from router.cli import main
from router.config import MetricsConfig
from router.emulator import EmulatedNode, EmulatorConfig
from tests.conftest import Router, RouterFactory, free_port, wait_for_ok, wait_until
from tests.observability.conftest import MESSAGES, MODEL, PACED, SHORT, admin_key

TWO = {"node-a": PACED, "node-b": EmulatorConfig(models=("llama3", "phi3"))}


async def _get(
    http: aiohttp.ClientSession, url: str, key: str | None = None
) -> tuple[int, Any, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with http.get(url, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else {}
        return resp.status, body, await resp.text()


async def _fleet_with_a_dead_node(make_router: RouterFactory) -> tuple[Router, str]:
    key, entry = admin_key()
    router = await make_router(TWO, extra_keys=[entry], max_concurrency={"node-a": 3, "node-b": 5})
    await router.nodes["node-b"].kill()
    await wait_until(lambda: not router.state.fleet.nodes["node-b"].healthy)
    # node-a alone serves llama3 now: it shows tokens per second.
    await router.client().chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=SHORT)
    return router, key


async def test_admin_nodes_describes_each_node(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    router, key = await _fleet_with_a_dead_node(make_router)
    status, body, _ = await _get(http, router.url + "/admin/nodes", key)
    assert status == 200
    assert body["object"] == "list" and body["healthy_nodes"] == 1
    a, b = body["data"]
    assert a["name"] == "node-a" and a["status"] == "up" and a["healthy"] is True
    assert a["url"] == router.nodes["node-a"].url
    assert (a["in_flight"], a["capacity"]) == (0, 3)
    assert a["models"] == [MODEL]
    assert a["tokens_per_s"] > 0
    assert a["last_check"]["age_s"] < 5 and a["last_check"]["at"].endswith("Z")
    assert a["check_latency_ms"] >= 0
    assert a["last_error"] is None and a["recent_errors"] == []
    assert b["status"] == "down" and b["healthy"] is False and b["capacity"] == 5
    assert b["models"] == [MODEL, "ollama/phi3"]  # its last known models
    assert "node-b" in b["last_error"]["message"]
    assert b["last_error"]["count"] >= 1 and b["recent_errors"][0] == b["last_error"]


async def test_admin_nodes_is_for_admin_keys_only(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    key, entry = admin_key()
    router = await make_router(TWO, extra_keys=[entry])
    status, body, _ = await _get(http, router.url + "/admin/nodes", router.key)
    assert status == 403
    assert body == {
        "error": {
            "message": "This endpoint needs an API key with `admin: true` in the fleet file.",
            "type": "invalid_request_error",
            "param": None,
            "code": "permission_denied",
        }
    }
    status, body, _ = await _get(http, router.url + "/admin/nodes")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert (await _get(http, router.url + "/admin/nodes", key))[0] == 200


async def test_status_command_prints_the_fleet_as_a_table(
    make_router: RouterFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    router, key = await _fleet_with_a_dead_node(make_router)
    code = await asyncio.to_thread(main, ["status", "--url", router.url, "--key", key])
    out = capsys.readouterr().out
    assert code == 0, out
    header, row_a, row_b, _, summary = out.splitlines()[:5]  # then the models table
    assert header.split() == [
        "NODE", "STATUS", "IN-FLIGHT", "TOK/S", "CHECKED", "LATENCY", "MODELS", "LAST", "ERROR"
    ]  # fmt: skip
    assert row_a.split()[:3] == ["node-a", "up", "0/3"]
    assert row_b.split()[:3] == ["node-b", "down", "0/5"]
    assert "node-b" in row_b.split("ollama/phi3", 1)[1]  # the last error follows the models
    assert summary.startswith("1 of 2 nodes healthy at ")


async def test_status_command_explains_failures(
    router: Router, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JARVIS_API_KEY", raising=False)
    code = await asyncio.to_thread(main, ["status", "--url", router.url, "--key", router.key])
    err = capsys.readouterr().err
    assert code == 1 and "answered 403" in err and "admin: true" in err
    assert router.key not in err
    assert await asyncio.to_thread(main, ["status", "--url", router.url]) == 2
    assert "JARVIS_API_KEY" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("JARVIS_API_KEY", router.key)
    assert await asyncio.to_thread(main, ["status", "--url", closed, "--timeout", "2"]) == 1
    assert "cannot reach" in capsys.readouterr().err


async def test_metrics_and_status_are_open_by_default(
    router: Router, http: aiohttp.ClientSession
) -> None:
    for path in ("/metrics", "/status"):
        assert (await _get(http, router.url + path))[0] == 200


async def test_require_key_closes_metrics_and_keeps_status_for_admins(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    key, entry = admin_key()
    router = await make_router(TWO, extra_keys=[entry], metrics=MetricsConfig(require_key=True))
    metrics, status = router.url + "/metrics", router.url + "/status"
    assert [(await _get(http, metrics, k))[0] for k in (None, router.key, key)] == [401, 200, 200]
    assert [(await _get(http, status, k))[0] for k in (None, router.key, key)] == [401, 403, 200]


async def test_metrics_port_serves_metrics_and_status_apart_from_the_api(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """`metrics.port` through the real `jarvis-router serve`: scrape and status page on their
    own port, gone from the API port."""
    api_port, metrics_port = free_port(), free_port()
    key = new_key()
    async with EmulatedNode(EmulatorConfig(models=("llama3",)), name="gpu-a") as node:
        fleet = {
            "listen": {"host": "127.0.0.1", "port": api_port},
            "metrics": {"port": metrics_port},
            "api_keys": [{"name": "t", "sha256": digest(key)}],
            "nodes": [{"name": "gpu-a", "url": node.url}],
        }
        path = tmp_path / "fleet.yaml"
        path.write_text(yaml.safe_dump(fleet))
        env = {k: v for k, v in os.environ.items() if k != "JARVIS_API_KEYS_FILE"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "router", "serve", "--config", str(path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
        )  # fmt: skip
        api, side = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"
        try:
            await wait_for_ok(side + "/metrics")
            status, _, text = await _get(http, side + "/status")
            assert status == 200 and "gpu-a" in text
            assert (await _get(http, api + "/metrics"))[0] == 404
            assert (await _get(http, api + "/status"))[0] == 404
            assert (await _get(http, api + "/v1/models", key))[0] == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 10) == 0
