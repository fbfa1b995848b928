"""Embeddings through the router with the official SDK: `/v1/embeddings` onto `/api/embed`.

Vectors are compared with the emulator's own (`router.emulator.embed.embedding`: the same
text gives the same unit vector on every node), as float32 values.
"""

from __future__ import annotations

import struct

import aiohttp
import openai
import pytest

from router.emulator import EmulatorConfig
from router.emulator.embed import embedding
from router.wire.embeddings import MAX_INPUTS
from tests.conftest import Router, RouterFactory

pytestmark = pytest.mark.timeout(30)

EMBED = "nomic-embed-text"
MODEL = f"ollama/{EMBED}"
KEY = f"{EMBED}:latest"
LENGTH = 768  # the emulator's vector length for nomic-embed-text


def f32(values: list[float]) -> list[float]:
    """What a float list is as float32 (the SDK decodes base64 to float32 values)."""
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def expected(text: str, dims: int = 0) -> list[float]:
    return f32(embedding(KEY, " ".join(text.split()), LENGTH, dims))


def embed_requests(router: Router) -> dict[str, int]:
    return {name: node.stats.requests["/api/embed"] for name, node in router.nodes.items()}


async def two_nodes(make_router: RouterFactory) -> Router:
    spec = EmulatorConfig(models=("llama3", EMBED, "all-minilm"))
    return await make_router({"node-a": spec, "node-b": spec})


async def test_one_input_as_float_and_as_sdk_default(make_router: RouterFactory) -> None:
    router = await two_nodes(make_router)
    client = router.client()
    floats = await client.embeddings.create(
        model=MODEL, input="the sky is blue", encoding_format="float"
    )
    assert floats.object == "list" and floats.model == MODEL
    assert [d.index for d in floats.data] == [0]
    assert f32(floats.data[0].embedding) == expected("the sky is blue")
    # BOS and EOS around four words, as the emulator counts them.
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 6
    # No encoding_format: the SDK asks for base64 and decodes it itself.
    decoded = await client.embeddings.create(model=MODEL, input="the sky is blue")
    assert decoded.data[0].embedding == expected("the sky is blue")


async def test_batch_split_over_two_nodes_comes_back_in_order(make_router: RouterFactory) -> None:
    router = await two_nodes(make_router)
    client = router.client(base="")  # the root base URL works as well as /v1
    texts = [f"sentence number {i} about routers" for i in range(80)]
    decoded = await client.embeddings.create(model=MODEL, input=texts)
    floats = await client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    want = [expected(t) for t in texts]
    assert [d.index for d in decoded.data] == list(range(80))
    assert [d.embedding for d in decoded.data] == want
    assert [f32(d.embedding) for d in floats.data] == want
    assert decoded.usage.prompt_tokens == 80 * (5 + 2)
    # Both nodes served a part of each batch (the emulator's own counts).
    assert embed_requests(router) == {"node-a": 2, "node-b": 2}
    sizes = sorted(len(b["input"]) for n in router.nodes.values() for b in n.stats.bodies)
    assert sizes == [40, 40, 40, 40]


async def test_small_batch_is_one_request(make_router: RouterFactory) -> None:
    router = await two_nodes(make_router)
    texts = [f"text {i}" for i in range(32)]
    answer = await router.client().embeddings.create(model=MODEL, input=texts)
    assert [d.embedding for d in answer.data] == [expected(t) for t in texts]
    assert sum(embed_requests(router).values()) == 1


async def test_dimensions(make_router: RouterFactory) -> None:
    router = await two_nodes(make_router)
    answer = await router.client().embeddings.create(
        model=MODEL, input=["a b", "c d"], dimensions=64
    )
    assert [len(d.embedding) for d in answer.data] == [64, 64]
    assert [d.embedding for d in answer.data] == [expected("a b", 64), expected("c d", 64)]
    sent = [b for n in router.nodes.values() for b in n.stats.bodies]
    assert sent == [{"model": KEY, "input": ["a b", "c d"], "truncate": False, "dimensions": 64}]


async def test_context_overflow_is_a_400_without_failover(make_router: RouterFactory) -> None:
    router = await two_nodes(make_router)
    too_long = " ".join(["word"] * 600)  # all-minilm's context is 512
    with pytest.raises(openai.BadRequestError) as caught:
        await router.client().embeddings.create(model="ollama/all-minilm", input=["ok", too_long])
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "input"
    # One node refused it; the other received nothing, and the slot came back.
    assert sorted(embed_requests(router).values()) == [0, 1]
    assert router.router_in_flight() == {"node-a": 0, "node-b": 0}
    # The node's refusal is the request's fault: counted as a 4xx, nothing for the breaker.
    outcomes = router.state.metrics.upstream_outcomes()
    assert [o for per_node in outcomes.values() for o in per_node] == ["http_4xx"]
    assert all(n.in_rotation for n in router.state.fleet.nodes.values())


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [1, 2, 3]}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": ["x"] * (MAX_INPUTS + 1)}, "input"),
    ],
    ids=["token-array", "empty", "format", "dimensions", "too-many"],
)
async def test_bad_requests_name_the_field(
    router: Router, http: aiohttp.ClientSession, body: dict[str, object], param: str
) -> None:
    async with http.post(
        router.url + "/v1/embeddings",
        json={"model": "ollama/llama3", **body},
        headers=router.headers(),
    ) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


async def test_unknown_model_is_404(router: Router) -> None:
    with pytest.raises(openai.NotFoundError):
        await router.client().embeddings.create(model="ollama/nope", input="x")


async def test_embedding_models_are_listed(make_router: RouterFactory) -> None:
    router = await two_nodes(make_router)
    ids = {m.id async for m in router.client().models.list()}
    assert {MODEL, "ollama/all-minilm"} <= ids


async def test_a_failing_node_fails_over(make_router: RouterFactory) -> None:
    router = await two_nodes(make_router)
    router.nodes["node-a"].faults.mode = "error"
    texts = [f"text {i}" for i in range(40)]
    answer = await router.client().embeddings.create(model=MODEL, input=texts)
    assert [d.embedding for d in answer.data] == [expected(t) for t in texts]
    # Whichever span node-a got (a 500) was embedded again by node-b.
    assert embed_requests(router)["node-b"] >= 1


async def test_no_node_can_embed_is_a_503(make_router: RouterFactory) -> None:
    router = await two_nodes(make_router)
    for node in router.nodes.values():
        node.faults.mode = "error"
    with pytest.raises(openai.InternalServerError) as caught:
        await router.client().embeddings.create(model=MODEL, input=["x"] * 40)
    assert caught.value.status_code == 503
