"""`jarvis-router models load|unload|pull`, the models table of `jarvis-router status`, and
`check-config` refusing a bad `models:` entry (issue #15), as an operator runs them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from router.api.auth import digest, new_key
from router.cli import main
from router.config import ApiKeyConfig, ModelConfig
from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory

PULLABLE = ("phi3",)  # what the emulated registry has
LLAMA3 = ModelConfig("llama3", ("llama3:70b", "llama3:8b"), num_ctx=8192, keep_alive="30m")


async def _router(make_router: RouterFactory) -> tuple[Router, str]:
    key = new_key()
    router = await make_router(
        {
            "big": EmulatorConfig(models=("llama3:70b",), preloaded=False, pullable=PULLABLE),
            "small": EmulatorConfig(models=("llama3:8b",), preloaded=False, pullable=PULLABLE),
        },
        models=(LLAMA3,),
        extra_keys=(ApiKeyConfig("ops", digest(key), admin=True),),
    )
    return router, key


async def _cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _ps(http: aiohttp.ClientSession, router: Router, node: str) -> dict[str, int]:
    async with http.get(router.nodes[node].url + "/api/ps") as resp:
        return {m["name"]: m["context_length"] for m in (await resp.json())["models"]}


async def test_models_load_and_unload(
    make_router: RouterFactory, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    router, key = await _router(make_router)
    flags = ("--url", router.url, "--key", key)
    assert await _cli("models", "load", "ollama/llama3", "--node", "small", *flags) == 0
    assert capsys.readouterr().out.strip() == "llama3:8b loaded on small at context 8192"
    assert await _ps(http, router, "small") == {"llama3:8b": 8192}
    assert await _cli("models", "unload", "ollama/llama3", "--node", "small", *flags) == 0
    assert "llama3:8b unloaded on small" in capsys.readouterr().out
    assert await _ps(http, router, "small") == {}
    # A node without any of the model's targets: said, and a failing exit code.
    code = await _cli("models", "load", "ollama/mistral", "--node", "small", *flags)
    assert code == 1
    assert "answered 404" in capsys.readouterr().err


async def test_models_pull_shows_progress_then_status_lists_it(
    make_router: RouterFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    router, key = await _router(make_router)
    flags = ("--url", router.url, "--key", key)
    assert await _cli("models", "pull", "phi3", "--node", "big", *flags) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "pulling manifest"
    assert any("% of " in line for line in out)  # the download's progress
    assert "success" in out and out[-1] == "routable"
    assert await _cli("status", *flags) == 0
    table = capsys.readouterr().out
    models = table[table.index("\nMODEL ") + 1 :].splitlines()
    assert models[0].split() == ["MODEL", "INSTALLED", "LOADED", "IN", "USE", "QUEUED"]
    rows = {line.split()[0]: line.split() for line in models[1:]}
    assert rows["ollama/llama3"][1:3] == ["big:llama3:70b,", "small:llama3:8b"]
    assert rows["ollama/phi3"][1] == "big"


async def test_a_failed_pull_exits_non_zero(
    make_router: RouterFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    router, key = await _router(make_router)
    flags = ("--url", router.url, "--key", key)
    code = await _cli("models", "pull", "no-such-model", "--node", "big", *flags)
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.splitlines() == ["pulling manifest"]
    assert "pull model manifest: file does not exist" in captured.err
    assert "no-such-model:latest" not in router.state.fleet.nodes["big"].models


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{name: llama3, targets: []}", "models[0].targets"),
        ("{name: llama3, num_ctx: -5}", "models[0].num_ctx"),
        ("{name: llama3, keep_alive: '300'}", "models[0].keep_alive"),
        ("{targets: [llama3:8b]}", "models[0].name"),
    ],
    ids=["empty-targets", "negative-num-ctx", "unitless-keep-alive", "no-name"],
)
def test_check_config_refuses_a_bad_models_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, expected: str
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "nodes: [{name: a, url: 'http://127.0.0.1:1'}]\n"
        f"api_keys: [{{name: k, sha256: {'a' * 64}}}]\nmodels:\n  - {entry}\n"
    )
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert expected in err and str(path) in err
