"""The official OpenAI Node SDK (`openai` from npm, pinned in tests/node) against the router.

`tests/node/sdk_check.mjs` runs its checks (models, chat streamed and not, a tool call,
embeddings as base64 and float) and prints one JSON line per check. Node and npm are system
dependencies (`make system-deps`): without them this test fails rather than skips, so a
machine that cannot run it says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from router.emulator import EmulatorConfig
from tests.conftest import RouterFactory

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
CHECKS = ["models", "chat", "chat_stream", "tool_call", "embeddings"]

pytestmark = pytest.mark.timeout(240)


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "node and npm are needed to test the Node SDK; install them with "
            "`make system-deps` (Node 20 or newer)."
        )
    return node, npm


def _install(npm: str) -> None:
    """`npm ci` once: the pinned SDK from package-lock.json into tests/node/node_modules."""
    if (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
        return
    done = subprocess.run(
        [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci in {NODE_DIR} failed:\n{done.stdout}\n{done.stderr}")


async def test_node_sdk_against_the_router(make_router: RouterFactory) -> None:
    node, npm = _tools()
    await asyncio.to_thread(_install, npm)
    spec = EmulatorConfig(models=("llama3", "nomic-embed-text"))
    router = await make_router({"node-a": spec, "node-b": spec})
    env = {
        **os.environ,
        "JARVIS_BASE_URL": router.url + "/v1",
        "JARVIS_API_KEY": router.key,
        "JARVIS_MODEL": "ollama/llama3",
        "JARVIS_EMBED_MODEL": "ollama/nomic-embed-text",
        "JARVIS_TIMEOUT_MS": "20000",
    }
    proc = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "sdk_check.mjs"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    results: dict[str, dict[str, Any]] = {r["check"]: r for r in lines}
    failed = {name: r for name, r in results.items() if not r["ok"]}
    assert not failed, f"{failed}\nstderr: {err.decode()}"
    assert list(results) == CHECKS
    assert proc.returncode == 0
    assert {"ollama/llama3", "ollama/nomic-embed-text"} <= set(results["models"]["ids"])
    assert results["chat"]["content"] and results["chat"]["finish_reason"] in ("stop", "length")
    assert results["chat_stream"]["total_tokens"] > 0
    assert results["tool_call"]["name"] == "get_weather"
    assert set(results["tool_call"]["arguments"]) == {"city"}  # the schema's one field
    assert results["embeddings"] == {
        "check": "embeddings",
        "ok": True,
        "count": 2,
        "dimensions": 768,
    }
