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
