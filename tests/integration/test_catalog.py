"""The model catalog (issue #15): one public name over node models in order of preference,
the options every request for it carries, no silent truncation, and the warm pool.

Two nodes: `big` has llama3:70b, `small` has llama3:8b; `ollama/llama3` prefers the 70b.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from router.api.auth import digest, new_key
from router.config import ApiKeyConfig, ModelConfig, RoutingConfig
from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory, wait_until

LLAMA3 = ModelConfig(
    "llama3", ("llama3:70b", "llama3:8b"), num_ctx=8192, keep_alive="30m", hide_raw=False
)
HI = [{"role": "user", "content": "hi"}]


async def _two_nodes(make_router: RouterFactory, **kw: Any) -> Router:
    nodes = {
        "big": EmulatorConfig(models=("llama3:70b",), tokens_per_second=kw.pop("tps", 0.0)),
        "small": EmulatorConfig(models=("llama3:8b",)),
    }
    return await make_router(nodes, models=(LLAMA3,), **kw)


def _chats(router: Router, node: str) -> list[dict[str, Any]]:
    return [b for b in router.nodes[node].stats.bodies if "messages" in b]


async def test_alias_lands_on_the_preferred_target_with_its_options(
    make_router: RouterFactory,
) -> None:
    router = await _two_nodes(make_router)
    raw = await router.client().chat.completions.with_raw_response.create(
        model="ollama/llama3", messages=HI
    )
    reply = raw.parse()
    assert reply.model == "ollama/llama3"  # what the client sent
    assert raw.headers["x-jarvis-served-model"] == "llama3:70b"
    [body] = _chats(router, "big")
    assert body["model"] == "llama3:70b"
    assert body["options"]["num_ctx"] == 8192
    assert body["keep_alive"] == "30m"
    assert body["truncate"] is False
    assert _chats(router, "small") == []


async def test_alias_spills_to_the_next_target_when_the_preferred_is_full(
    make_router: RouterFactory,
) -> None:
    router = await _two_nodes(make_router, max_concurrency=1, tps=20.0)
    client = router.client()
    # A long answer holds the 70b node's only slot.
    hold = asyncio.create_task(
        client.chat.completions.create(model="ollama/llama3", messages=HI, max_tokens=40)
    )
    await wait_until(lambda: router.state.fleet.nodes["big"].in_flight == 1)
    raw = await client.chat.completions.with_raw_response.create(
        model="ollama/llama3", messages=HI, max_tokens=2
    )
    assert raw.headers["x-jarvis-served-model"] == "llama3:8b"
    [body] = _chats(router, "small")
    assert body["model"] == "llama3:8b"
    assert body["options"]["num_ctx"] == 8192  # the entry's options on every target
    await hold


async def test_alias_spills_when_the_preferred_node_is_down(make_router: RouterFactory) -> None:
    router = await _two_nodes(make_router)
    await router.nodes["big"].kill()
    await wait_until(lambda: not router.state.fleet.nodes["big"].healthy)
    raw = await router.client().chat.completions.with_raw_response.create(
        model="ollama/llama3", messages=HI
    )
    assert raw.parse().model == "ollama/llama3"
    assert raw.headers["x-jarvis-served-model"] == "llama3:8b"


async def test_an_over_long_prompt_is_context_length_exceeded(
    make_router: RouterFactory,
) -> None:
    small = ModelConfig("tiny", ("llama3:70b", "llama3:8b"), num_ctx=64)
    router = await make_router(
        {
            "big": EmulatorConfig(models=("llama3:70b",)),
            "small": EmulatorConfig(models=("llama3:8b",)),
        },
        models=(small,),
    )
    long = [{"role": "user", "content": "word " * 500}]
    with pytest.raises(openai.BadRequestError) as info:
        await router.client().chat.completions.create(model="ollama/tiny", messages=long)
    assert info.value.code == "context_length_exceeded"
    assert "64 tokens" in info.value.message
    assert info.value.param == "messages"
    # No failover: one node saw it, and its slot is back.
    assert len(_chats(router, "big")) == 1 and _chats(router, "small") == []
    assert router.router_in_flight() == {"big": 0, "small": 0}
    assert router.state.fleet.nodes["big"].healthy
    breaker = router.state.fleet.nodes["big"].breaker
    assert breaker is not None and breaker.consecutive_failures == 0


async def test_min_loaded_keeps_the_model_loaded_without_requests(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    cold = EmulatorConfig(models=("mistral",), preloaded=False)
    router = await make_router(
        {"a": cold, "b": cold},
        models=(ModelConfig("mistral", ("mistral",), num_ctx=2048, min_loaded=2),),
    )

    async def loaded(node: str) -> dict[str, int]:
        async with http.get(router.nodes[node].url + "/api/ps") as resp:
            body = orjson.loads(await resp.read())
        return {m["name"]: m["context_length"] for m in body["models"]}

    async def until_loaded(node: str) -> None:
        deadline = asyncio.get_running_loop().time() + 8
        while await loaded(node) != {"mistral:latest": 2048}:
            assert asyncio.get_running_loop().time() < deadline, f"{node}: not loaded"
            await asyncio.sleep(0.05)

    await until_loaded("a")
    await until_loaded("b")
    assert not any("messages" in b for n in router.nodes.values() for b in n.stats.bodies)
    # A restarted node comes back empty; the next rounds load it there again.
    await router.nodes["b"].restart()
    await wait_until(lambda: router.state.fleet.nodes["b"].healthy, timeout_s=5)
    await until_loaded("b")


async def test_pull_through_the_admin_api_makes_a_model_routable(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    admin = new_key()
    router = await make_router(
        {"a": EmulatorConfig(models=("llama3",))},
        extra_keys=(ApiKeyConfig("ops", digest(admin), admin=True),),
    )
    client = router.client()
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="ollama/qwen2.5:0.5b", messages=HI)
    async with http.post(
        router.url + "/admin/models/pull",
        json={"node": "a", "model": "qwen2.5:0.5b"},
        headers=router.headers(admin),
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/x-ndjson"
        lines = [orjson.loads(line) for line in (await resp.read()).splitlines()]
    assert lines[0]["status"] == "pulling manifest"
    assert {"status": "success"} in lines
    assert lines[-1] == {"status": "routable", "model": "ollama/qwen2.5:0.5b"}
    reply = await client.chat.completions.create(model="ollama/qwen2.5:0.5b", messages=HI)
    assert reply.model == "ollama/qwen2.5:0.5b"


async def test_admin_load_and_unload(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    admin = new_key()
    router = await make_router(
        {"big": EmulatorConfig(models=("llama3:70b",), preloaded=False)},
        models=(LLAMA3,),
        extra_keys=(ApiKeyConfig("ops", digest(admin), admin=True),),
    )
    base = router.url + "/admin/models/ollama/llama3"
    async with http.post(base + "/load?node=big", headers=router.headers(admin)) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["node_model"] == "llama3:70b"
    assert router.nodes["big"].stats.bodies[-1]["options"] == {"num_ctx": 8192}
    async with http.get(router.nodes["big"].url + "/api/ps") as resp:
        assert [m["context_length"] for m in (await resp.json())["models"]] == [8192]
    async with http.get(router.url + "/admin/models", headers=router.headers(admin)) as resp:
        [row] = [r for r in (await resp.json())["data"] if r["id"] == "ollama/llama3"]
    assert row["installed"] == ["big:llama3:70b"]
    assert row["loaded"] == [{"node": "big", "model": "llama3:70b", "context_length": 8192}]
    async with http.post(base + "/unload?node=big", headers=router.headers(admin)) as resp:
        assert resp.status == 200
    assert router.nodes["big"].stats.bodies[-1]["keep_alive"] == 0
    async with http.get(router.nodes["big"].url + "/api/ps") as resp:
        assert (await resp.json())["models"] == []
    async with http.post(base + "/load?node=nope", headers=router.headers(admin)) as resp:
        assert resp.status == 404
    async with http.post(base + "/load?node=big", headers=router.headers()) as resp:
        assert resp.status == 403  # not an admin key


async def test_models_list_public_names_and_facts(make_router: RouterFactory) -> None:
    router = await _two_nodes(make_router)
    models = {m.id: m for m in (await router.client().models.list()).data}
    assert set(models) == {"ollama/llama3", "ollama/llama3:70b", "ollama/llama3:8b"}
    llama3 = await router.client().models.retrieve("ollama/llama3")
    extra = llama3.model_extra or {}
    assert extra["context_length"] == 8192
    assert "completion" in extra["capabilities"]
    assert extra["targets"] == ["ollama/llama3:70b", "ollama/llama3:8b"]


async def test_hide_raw_lists_only_the_public_name(make_router: RouterFactory) -> None:
    hidden = ModelConfig("llama3", ("llama3:70b", "llama3:8b"), num_ctx=8192, hide_raw=True)
    router = await make_router({"big": EmulatorConfig(models=("llama3:70b",))}, models=(hidden,))
    ids = [m.id for m in (await router.client().models.list()).data]
    assert ids == ["ollama/llama3"]
    # Hidden from the list only: a request for the raw tag still runs.
    reply = await router.client().chat.completions.create(model="ollama/llama3:70b", messages=HI)
    assert reply.model == "ollama/llama3:70b"


async def test_status_page_shows_models(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    router = await _two_nodes(make_router)
    await router.client().chat.completions.create(model="ollama/llama3", messages=HI)
    async with http.get(router.url + "/status") as resp:
        page = await resp.text()
    row = page[page.index('<tr data-model="ollama/llama3">') :].split("</tr>", 1)[0]
    assert "big:llama3:70b, small:llama3:8b" in row  # installed
    assert "big:llama3:70b (8192)" in row  # loaded, at the catalog's context


async def test_a_long_queue_warms_the_model_on_another_node(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """Cost-aware routing waits for the warm node rather than pay a cold load on the other;
    once 4 wait, the warm pool loads the model there, and the queue drains onto both."""
    slow = EmulatorConfig(models=("llama3",), tokens_per_second=40, default_tokens=20)
    cold = EmulatorConfig(models=("llama3",), preloaded=False, tokens_per_second=40)
    router = await make_router(
        {"warm": slow, "cold": cold},
        max_concurrency=1,
        models=(ModelConfig("llama3", ("llama3",), num_ctx=4096),),
        routing=RoutingConfig(cold_load_s=600.0, request_timeout_s=20.0, queue_timeout_s=20.0),
    )
    client = router.client()
    await asyncio.gather(
        *(client.chat.completions.create(model="ollama/llama3", messages=HI) for _ in range(8))
    )
    loads = [b for b in router.nodes["cold"].stats.bodies if b.get("prompt") == ""]
    assert len(loads) == 1 and loads[0]["options"] == {"num_ctx": 4096}
    assert _chats(router, "cold"), "the queue did not drain onto the warmed node"
    async with http.get(router.nodes["cold"].url + "/api/ps") as resp:
        assert [m["name"] for m in (await resp.json())["models"]] == ["llama3:latest"]


@pytest.mark.parametrize("stream", [False, True], ids=["gathered", "streamed"])
async def test_over_long_prompts_on_completions(make_router: RouterFactory, stream: bool) -> None:
    router = await make_router(
        {"a": EmulatorConfig(models=("llama3",))},
        models=(ModelConfig("llama3", ("llama3",), num_ctx=32),),
    )
    with pytest.raises(openai.BadRequestError) as info:
        await router.client().completions.create(
            model="ollama/llama3", prompt="word " * 200, stream=stream
        )
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "prompt"
    assert "32 tokens" in info.value.message
    assert router.nodes["a"].stats.requests["/api/generate"] == 1  # no failover


async def test_a_model_loaded_at_another_context_is_scored_cold(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    router = await make_router(
        {
            "right": EmulatorConfig(models=("llama3",), preloaded=False),
            "other": EmulatorConfig(models=("llama3",)),  # loaded at the node's default context
        },
        models=(ModelConfig("llama3", ("llama3",), num_ctx=8192),),
    )
    # Loaded at the catalog's context on `right`, behind the router's back.
    load = {"model": "llama3", "prompt": "", "stream": False, "options": {"num_ctx": 8192}}
    async with http.post(router.nodes["right"].url + "/api/generate", json=load) as resp:
        assert resp.status == 200
    fleet = router.state.fleet
    await wait_until(lambda: fleet.nodes["right"].contexts.get("llama3:latest") == 8192)
    assert fleet.nodes["other"].contexts["llama3:latest"] != 8192
    client = router.client()
    for _ in range(6):  # one at a time: both nodes free each time, only the context differs
        await client.chat.completions.create(model="ollama/llama3", messages=HI)
    assert len(_chats(router, "right")) == 6 and _chats(router, "other") == []
