"""A catalog name across replicas sharing slots through Redis (issue #15): requests go to the
preferred target's node while it has a slot fleet-wide, and spill to the next target's."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from router.config import ModelConfig
from router.emulator import EmulatorConfig
from tests.conftest import Router
from tests.coordination.conftest import RedisServer, ReplicaFactory, wait_sharing

pytestmark = pytest.mark.timeout(20)
LLAMA3 = ModelConfig("llama3", ("llama3:70b", "llama3:8b"), num_ctx=8192)
PACED = {"tokens_per_second": 100.0, "default_tokens": 20}


async def _served(router: Router) -> str:
    client = router.clients[0] if router.clients else router.client()
    raw = await client.chat.completions.with_raw_response.create(
        model="ollama/llama3", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().model == "ollama/llama3"
    return raw.headers["x-jarvis-served-model"]


async def test_two_replicas_fill_the_preferred_target_then_spill(
    redis_server: RedisServer, make_replicas: ReplicaFactory
) -> None:
    specs = {
        "big": EmulatorConfig(models=("llama3:70b",), **PACED),
        "small": EmulatorConfig(models=("llama3:8b",), **PACED),
    }
    routers = await make_replicas(
        2, specs, max_concurrency=2, redis_url=redis_server.url, models=(LLAMA3,)
    )
    for r in routers:
        await wait_sharing(r)
    # Four at once over two replicas: the 70b node's two slots fleet-wide, then the 8b's two.
    served = Counter(await asyncio.gather(*(_served(routers[i % 2]) for i in range(4))))
    assert served == {"llama3:70b": 2, "llama3:8b": 2}
    assert routers[0].nodes["big"].stats.max_in_flight == 2
    bodies = routers[0].nodes["small"].stats.bodies
    assert {b["model"] for b in bodies} == {"llama3:8b"}
    assert all(b["options"]["num_ctx"] == 8192 for b in bodies)
