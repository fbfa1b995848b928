"""Health checks keep the model map current; an unknown model triggers one refresh first."""

from __future__ import annotations

from dataclasses import replace

import openai
import pytest

from router.config import HealthConfig
from router.emulator import EmulatorConfig
from tests.conftest import RouterFactory, wait_until


async def test_new_model_is_served_without_waiting_for_the_poller(
    make_router: RouterFactory,
) -> None:
    # The poller runs only every 60 s: only the on-demand refresh can find the new model.
    router = await make_router(
        {"a": EmulatorConfig(models=("llama3",)), "b": EmulatorConfig(models=("gemma2",))},
        health=HealthConfig(interval_s=60, timeout_s=1, refresh_min_interval_s=0.0),
        down=["b"],
    )
    assert not router.state.fleet.knows("gemma2:latest")
    await router.nodes["b"].restart()  # "the model was pulled a second ago"
    resp = await router.client().chat.completions.create(
        model="ollama/gemma2", messages=[{"role": "user", "content": "hi"}]
    )
    assert resp.choices[0].message.content
    assert router.nodes["b"].stats.bodies[-1]["model"] == "gemma2:latest"


async def test_refresh_is_rate_limited(make_router: RouterFactory) -> None:
    router = await make_router(
        health=replace(HealthConfig(), interval_s=60, timeout_s=1, refresh_min_interval_s=30)
    )
    client = router.client()
    tags_before = router.nodes["node-a"].stats.requests["/api/tags"]
    for _ in range(5):
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("ollama/none")
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="ollama/none", messages=[{"role": "user", "content": "x"}]
            )
    # Startup ran one round just now, so no extra round is allowed within 30 s.
    assert router.nodes["node-a"].stats.requests["/api/tags"] == tags_before


async def test_failed_health_check_takes_node_out_and_back(make_router: RouterFactory) -> None:
    router = await make_router({"a": EmulatorConfig(), "b": EmulatorConfig()})
    router.nodes["a"].faults.tags_fail = True
    await wait_until(lambda: not router.state.fleet.nodes["a"].healthy)
    assert router.state.fleet.nodes["a"].last_error
    client = router.client()
    for _ in range(4):
        await client.chat.completions.create(
            model="ollama/llama3", messages=[{"role": "user", "content": "x"}]
        )
    assert router.nodes["a"].stats.bodies == []
    router.nodes["a"].faults.tags_fail = False
    await wait_until(lambda: router.state.fleet.nodes["a"].healthy)


async def test_a_model_pulled_on_a_healthy_node_is_routed_at_its_next_check(
    make_router: RouterFactory,
) -> None:
    # The poller waits 60 s: each round below is one explicit check of node "a".
    router = await make_router(
        {"a": EmulatorConfig(models=("llama3",))},
        health=HealthConfig(interval_s=60, timeout_s=1, refresh_min_interval_s=30),
    )
    fleet, health, emulated = router.state.fleet, router.state.health, router.nodes["a"]
    node = fleet.nodes["a"]
    await health.check(node)
    models = node.models
    await health.check(node)  # the same answer: nothing to parse, the same model map
    assert node.models is models and fleet.candidates("gemma2:latest") == ()
    await emulated.stop()
    emulated.config = replace(emulated.config, models=("llama3", "gemma2"))
    await emulated.start()
    await health.check(node)  # healthy before and after; the answer changed
    assert node.healthy and set(node.models) == {"llama3:latest", "gemma2:latest"}
    assert fleet.candidates("gemma2:latest") == (node,)
    resp = await router.client().chat.completions.create(
        model="ollama/gemma2", messages=[{"role": "user", "content": "hi"}]
    )
    assert resp.choices[0].message.content


async def test_a_model_forgotten_after_a_miss_comes_back_with_the_same_answer(
    make_router: RouterFactory,
) -> None:
    """A request found the model gone (a 404 from the node); the next check, answering the same
    bytes as before, still lists it: it is routed again."""
    router = await make_router(
        {"a": EmulatorConfig(models=("llama3",))},
        health=HealthConfig(interval_s=60, timeout_s=1, refresh_min_interval_s=30),
    )
    fleet, node = router.state.fleet, router.state.fleet.nodes["a"]
    fleet.forget_model("a", "llama3:latest")
    assert fleet.candidates("llama3:latest") == ()
    await router.state.health.check(node)
    assert fleet.candidates("llama3:latest") == (node,)


async def test_loaded_models_follow_api_ps(make_router: RouterFactory) -> None:
    router = await make_router(
        {"a": EmulatorConfig(models=("llama3", "gemma2"), preloaded=False)},
        health=HealthConfig(interval_s=60, timeout_s=1, refresh_min_interval_s=30),
    )
    node = router.state.fleet.nodes["a"]
    assert node.loaded == frozenset()
    for _ in range(2):  # the second answer differs from the first in `expires_at` only
        await router.client().chat.completions.create(
            model="ollama/gemma2", messages=[{"role": "user", "content": "hi"}]
        )
        node.loaded = None  # forget dispatch's own note: only /api/ps may say it now
        await router.state.health.check(node)
        assert node.loaded == {"gemma2:latest"}
