"""POST /api/embed against a real node (api-reference 1.7, 5.5, 5.6; `EmbedHandler`)."""

from __future__ import annotations

import math
import struct
from typing import Any

import aiohttp
import orjson
import pytest

from router.emulator import EmulatedNode

from .conftest import NodeFactory

pytestmark = pytest.mark.timeout(10)
EMBEDDERS = ("nomic-embed-text", "all-minilm", "llama3")
JSON = "application/json; charset=utf-8"


@pytest.fixture
async def node(make_node: NodeFactory) -> EmulatedNode:
    return await make_node(models=EMBEDDERS)


async def embed(
    session: aiohttp.ClientSession, node: EmulatedNode, body: Any
) -> tuple[int, str, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with session.post(node.url + "/api/embed", data=data) as resp:
        return resp.status, resp.headers["Content-Type"], orjson.loads(await resp.read())


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def is_float32(value: float) -> bool:
    """A float32 as Go prints it: a shortest decimal (<= 9 digits) that reads back the same."""
    exact = struct.unpack("<f", struct.pack("<f", value))[0]
    return any(float(f"{exact:.{digits}g}") == value for digits in range(1, 10))


async def test_batch_shape_order_and_counts(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    texts = ["the sky is blue", "hello", "the sky is blue"]
    status, ctype, body = await embed(session, node, {"model": "nomic-embed-text", "input": texts})
    assert (status, ctype) == (200, JSON)
    assert list(body) == [
        "model", "embeddings", "total_duration", "load_duration", "prompt_eval_count"
    ]  # fmt: skip
    assert body["model"] == "nomic-embed-text"  # echoed as sent
    vectors = body["embeddings"]
    assert len(vectors) == 3
    assert all(len(v) == 768 for v in vectors)  # nomic-embed-text's embedding_length
    assert all(abs(norm(v) - 1.0) < 1e-5 for v in vectors)
    assert all(is_float32(x) for v in vectors for x in v)
    assert vectors[0] == vectors[2] != vectors[1]
    # words + BOS/EOS per input
    assert body["prompt_eval_count"] == (4 + 2) + (1 + 2) + (4 + 2)


async def test_same_text_same_vector_on_every_node(
    make_node: NodeFactory, session: aiohttp.ClientSession
) -> None:
    a, b = await make_node(models=EMBEDDERS), await make_node(models=EMBEDDERS)
    body = {"model": "all-minilm", "input": "split me across nodes"}
    results = [await embed(session, n, body) for n in (a, b)]
    assert results[0][2]["embeddings"] == results[1][2]["embeddings"]
    assert len(results[0][2]["embeddings"][0]) == 384


async def test_string_input_and_any_model_can_embed(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    status, _, body = await embed(session, node, {"model": "llama3", "input": "hi"})
    assert status == 200
    assert len(body["embeddings"]) == 1 and len(body["embeddings"][0]) == 4096


@pytest.mark.parametrize("dims", [1, 8, 100])
async def test_dimensions_keep_the_first_values_renormalised(
    node: EmulatedNode, session: aiohttp.ClientSession, dims: int
) -> None:
    base = {"model": "nomic-embed-text", "input": "cut me"}
    _, _, full = await embed(session, node, base)
    _, _, cut = await embed(session, node, {**base, "dimensions": dims})
    (vector,) = cut["embeddings"]
    assert len(vector) == dims
    assert abs(norm(vector) - 1.0) < 1e-5
    head = full["embeddings"][0][:dims]
    scale = norm(head)
    assert vector == pytest.approx([v / scale for v in head], rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("dims", [0, -3, 768, 5000], ids=["zero", "negative", "equal", "more"])
async def test_dimensions_outside_the_vector_are_ignored(
    node: EmulatedNode, session: aiohttp.ClientSession, dims: int
) -> None:
    base = {"model": "nomic-embed-text", "input": "keep me"}
    _, _, full = await embed(session, node, base)
    _, _, same = await embed(session, node, {**base, "dimensions": dims})
    assert same["embeddings"] == full["embeddings"]


async def test_over_long_input_is_refused_or_cut(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    long = "word " * 600  # all-minilm: 512 context, 510 after BOS/EOS
    base = {"model": "all-minilm", "input": ["short", long]}
    status, ctype, body = await embed(session, node, {**base, "truncate": False})
    assert (status, ctype) == (400, JSON)
    assert body == {"error": "the input length exceeds the context length"}
    status, _, body = await embed(session, node, base)  # truncate defaults to true
    assert status == 200
    assert body["prompt_eval_count"] == (1 + 2) + 512
    _, _, exact = await embed(session, node, {"model": "all-minilm", "input": "word " * 510})
    assert body["embeddings"][1] == exact["embeddings"][0]  # the cut text's vector


async def test_num_ctx_lowers_the_limit(node: EmulatedNode, session: aiohttp.ClientSession) -> None:
    body = {"model": "nomic-embed-text", "input": "a " * 100, "truncate": False}
    assert (await embed(session, node, body))[0] == 200
    status, _, _ = await embed(session, node, {**body, "options": {"num_ctx": 64}})
    assert status == 400


@pytest.mark.parametrize("value", [None, ""], ids=["absent", "empty-string"])
async def test_empty_input_only_loads(
    node: EmulatedNode, session: aiohttp.ClientSession, value: str | None
) -> None:
    body: dict[str, Any] = {"model": "nomic-embed-text"}
    if value is not None:
        body["input"] = value
    status, _, answer = await embed(session, node, body)
    assert (status, answer) == (200, {"model": "nomic-embed-text", "embeddings": []})


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "nomic-embed-text", "input": [1, 2]}, 400, "invalid input type"),
        ({"model": "nomic-embed-text", "input": ["a", 2]}, 400, "invalid input type"),
        ({"model": "nomic-embed-text", "input": 5}, 400, "invalid input type"),
        ({"model": "nope", "input": "a"}, 404, 'model "nope" not found, try pulling it first'),
        ({"input": "a"}, 404, "model '' not found"),
        ({"model": "bad name!", "input": "a"}, 400, "invalid model name"),
        (
            {"model": "nomic-embed-text", "input": "a", "truncate": "no"},
            400,
            "json: cannot unmarshal string into Go struct field EmbedRequest.truncate of type bool",
        ),
        (b"", 400, "missing request body"),
    ],
    ids=[
        "tokens",
        "mixed",
        "number",
        "unknown-model",
        "no-model",
        "bad-name",
        "bad-type",
        "empty-body",
    ],
)
async def test_errors(
    node: EmulatedNode, session: aiohttp.ClientSession, body: Any, status: int, error: str
) -> None:
    got_status, ctype, answer = await embed(session, node, body)
    assert (got_status, ctype, answer) == (status, JSON, {"error": error})


async def test_input_type_is_checked_before_the_model(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    status, _, body = await embed(session, node, {"model": "nope", "input": [1]})
    assert (status, body) == (400, {"error": "invalid input type"})


async def test_faults_apply_and_bodies_are_recorded(
    node: EmulatedNode, session: aiohttp.ClientSession
) -> None:
    node.faults.mode = "busy"
    status, _, body = await embed(session, node, {"model": "all-minilm", "input": "a"})
    assert status == 503 and "server busy" in body["error"]
    node.faults.mode = "error"
    assert (await embed(session, node, {"model": "all-minilm", "input": "a"}))[0] == 500
    assert node.stats.requests["/api/embed"] == 2
    assert node.stats.bodies[-1] == {"model": "all-minilm", "input": "a"}


async def test_wrong_method_is_405(node: EmulatedNode, session: aiohttp.ClientSession) -> None:
    async with session.get(node.url + "/api/embed") as resp:
        assert (resp.status, await resp.read()) == (405, b"405 method not allowed")
