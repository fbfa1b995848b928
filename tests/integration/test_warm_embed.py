"""The warm pool loads an embedding model through `/api/embed` (it refuses `/api/generate`),
with its catalog options (issue #15)."""

from __future__ import annotations

import aiohttp

from router.config import ModelConfig
from router.emulator import EmulatorConfig
from tests.conftest import RouterFactory, wait_until


async def test_min_loaded_loads_an_embedding_model_through_embed(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    router = await make_router(
        {"a": EmulatorConfig(models=("all-minilm",), preloaded=False)},
        models=(ModelConfig("all-minilm", ("all-minilm",), num_ctx=256, min_loaded=1),),
    )
    node = router.nodes["a"]
    await wait_until(lambda: node.stats.requests["/api/embed"] == 1, timeout_s=5)
    assert node.stats.requests["/api/generate"] == 0
    [body] = node.stats.bodies
    assert body == {"model": "all-minilm:latest", "options": {"num_ctx": 256}}
    async with http.get(node.url + "/api/ps") as resp:
        assert [m["name"] for m in (await resp.json())["models"]] == ["all-minilm:latest"]
