"""GET /models and /models/{id}: the union of healthy nodes' models, as the SDK reads them."""

from __future__ import annotations

import openai
import pytest

from router.emulator import EmulatorConfig
from tests.conftest import Router, RouterFactory, wait_until


@pytest.mark.parametrize("base", ["/v1", ""], ids=["v1-prefix", "root"])
async def test_list_shows_union_of_models_with_prefix(router: Router, base: str) -> None:
    page = await router.client(base=base).models.list()
    ids = sorted(m.id for m in page.data)
    assert ids == ["ollama/llama3", "ollama/mistral", "ollama/phi3"]
    for model in page.data:
        assert model.object == "model"
        assert model.owned_by == "ollama"
        assert isinstance(model.created, int) and model.created > 1_600_000_000


async def test_non_latest_tags_keep_their_tag(make_router: RouterFactory) -> None:
    router = await make_router({"a": EmulatorConfig(models=("llama3:70b", "qwen2.5:latest"))})
    ids = sorted(m.id for m in (await router.client().models.list()).data)
    assert ids == ["ollama/llama3:70b", "ollama/qwen2.5"]


@pytest.mark.parametrize(
    "model_id", ["ollama/mistral", "mistral", "mistral:latest"], ids=["prefixed", "bare", "tagged"]
)
async def test_retrieve_accepts_prefixed_and_bare_ids(router: Router, model_id: str) -> None:
    model = await router.client().models.retrieve(model_id)
    assert model.id == "ollama/mistral"
    assert model.object == "model"


async def test_retrieve_unknown_model_is_404(router: Router) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await router.client().models.retrieve("ollama/nonexistent")
    assert info.value.code == "model_not_found"


async def test_models_of_a_dead_node_disappear_and_return(router: Router) -> None:
    client = router.client()
    await router.nodes["node-b"].kill()
    await wait_until(lambda: not router.state.fleet.nodes["node-b"].healthy)
    ids = sorted(m.id for m in (await client.models.list()).data)
    assert ids == ["ollama/llama3", "ollama/mistral"]
    await router.nodes["node-b"].restart()
    await wait_until(lambda: router.state.fleet.nodes["node-b"].healthy)
    ids = sorted(m.id for m in (await client.models.list()).data)
    assert ids == ["ollama/llama3", "ollama/mistral", "ollama/phi3"]


async def test_empty_fleet_lists_empty_data_not_null(router: Router, http) -> None:
    for node in router.nodes.values():
        await node.kill()
    await wait_until(lambda: not router.state.fleet.any_healthy())
    async with http.get(router.url + "/v1/models", headers=router.headers()) as resp:
        assert resp.status == 200
        assert await resp.json() == {"object": "list", "data": []}
    for node in router.nodes.values():
        await node.restart()
