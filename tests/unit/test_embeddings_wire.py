"""Embeddings wire: OpenAI request parsing, `/api/embed` payloads, batches, answers, overflow.

Facts from api-reference.md 1.7, 5.5 and 5.6. Built answers are validated against the openai
SDK's own types; base64 is decoded with `struct` (no numpy).
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import orjson
import pytest
from openai.types import CreateEmbeddingResponse

from router.api.errors import to_response
from router.errors import BadRequest
from router.wire.embeddings import (
    MAX_INPUTS,
    EmbeddingsRequest,
    embed_answer,
    embed_payload,
    embeddings_response,
    join_batches,
    parse_embeddings,
    split_batches,
    to_base64,
)
from router.wire.overflow import context_overflow, is_context_overflow, overflow_counts

LLAMA_SERVER_OVERFLOW = json.dumps(
    {
        "error": {
            "code": 400,
            "message": "request (9100 tokens) exceeds the available context size (8192 tokens), "
            "try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 9100,
            "n_ctx": 8192,
        }
    }
)


def req(**changes: Any) -> dict[str, Any]:
    return {"model": "ollama/nomic-embed-text", "input": "hello", **changes}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (req(), EmbeddingsRequest("ollama/nomic-embed-text", ("hello",))),
        (req(input=["a", "b c"]), EmbeddingsRequest("ollama/nomic-embed-text", ("a", "b c"))),
        (
            req(encoding_format="base64", dimensions=64, user="u1"),
            EmbeddingsRequest("ollama/nomic-embed-text", ("hello",), "base64", 64, "u1"),
        ),
        (
            req(encoding_format=None, unknown=1),
            EmbeddingsRequest("ollama/nomic-embed-text", ("hello",)),
        ),
    ],
    ids=["string", "list", "base64-dimensions-user", "defaults-unknown-ignored"],
)
def test_parse(body: dict[str, Any], expected: EmbeddingsRequest) -> None:
    assert parse_embeddings(body) == expected


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": "x"}, "model", "model"),
        (req(model=3), "model", "string"),
        ({"model": "m"}, "input", "Missing"),
        (req(input=[]), "input", "empty"),
        (req(input=""), "input[0]", "empty"),
        (req(input=["a", ""]), "input[1]", "empty"),
        (req(input=[1, 2, 3]), "input", "token arrays"),
        (req(input=[[1, 2], [3]]), "input", "token arrays"),
        (req(input=["a", 5]), "input[1]", "string"),
        (req(input={"a": 1}), "input", "string"),
        (req(input=["x"] * (MAX_INPUTS + 1)), "input", str(MAX_INPUTS)),
        (req(encoding_format="int8"), "encoding_format", "Supported values"),
        (req(dimensions=0), "dimensions", ">= 1"),
        (req(dimensions=True), "dimensions", "integer"),
        (req(dimensions=1.5), "dimensions", "integer"),
        (req(user=5), "user", "string"),
    ],
    ids=[
        "no-model",
        "model-not-string",
        "no-input",
        "empty-list",
        "empty-string",
        "empty-item",
        "token-array",
        "token-arrays",
        "mixed-list",
        "object",
        "too-many",
        "bad-format",
        "zero-dimensions",
        "bool-dimensions",
        "float-dimensions",
        "user-not-string",
    ],
)
def test_parse_errors_name_their_param(body: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_embeddings(body)
    assert info.value.param == param
    assert words in info.value.message


def test_payload_refuses_silent_truncation_and_passes_dimensions() -> None:
    parsed = parse_embeddings(req(input=["a", "b", "c"], dimensions=8))
    payload = json.loads(embed_payload(parsed, "nomic-embed-text:latest", parsed.inputs[1:]))
    assert payload == {
        "model": "nomic-embed-text:latest",
        "input": ["b", "c"],
        "truncate": False,
        "dimensions": 8,
    }


def test_payload_without_dimensions_has_none() -> None:
    parsed = parse_embeddings(req())
    assert json.loads(embed_payload(parsed, "m", parsed.inputs)) == {
        "model": "m",
        "input": ["hello"],
        "truncate": False,
    }


@pytest.mark.parametrize(
    ("count", "parts", "spans"),
    [
        (0, 3, []),
        (1, 3, [(0, 1)]),
        (5, 1, [(0, 5)]),
        (6, 2, [(0, 3), (3, 6)]),
        (7, 3, [(0, 3), (3, 5), (5, 7)]),
        (3, 5, [(0, 1), (1, 2), (2, 3)]),
        (4, 0, [(0, 4)]),
    ],
    ids=["empty", "fewer-inputs", "one-part", "even", "uneven", "more-parts", "zero-parts"],
)
def test_split_batches(count: int, parts: int, spans: list[tuple[int, int]]) -> None:
    assert split_batches(count, parts) == spans


@pytest.mark.parametrize("count", [1, 2, 17, 100, 2048])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_split_then_join_keeps_every_input_in_order(count: int, parts: int) -> None:
    spans = split_batches(count, parts)
    sizes = [b - a for a, b in spans]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    vectors = [[float(i)] for i in range(count)]
    assert join_batches([vectors[a:b] for a, b in spans]) == vectors


def test_embed_answer() -> None:
    data = {"model": "m", "embeddings": [[0.1, 0.2], [0, 1]], "prompt_eval_count": 7}
    assert embed_answer(data, 2) == ([[0.1, 0.2], [0, 1]], 7)
    assert embed_answer({"embeddings": [[1.0]]}, 1) == ([[1.0]], 0)  # omitempty count


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"embeddings": [[0.1]]},
        {"embeddings": None},
        {"embeddings": [[0.1], "x"]},
        {"embeddings": [[0.1], [True]]},
        {"embeddings": [[0.1], [1e39]]},
        {"embeddings": [[0.1], [float("nan")]]},
        {"embeddings": [[0.1], [0.2]], "prompt_eval_count": "3"},
    ],
    ids=["not-object", "too-few", "null", "not-a-list", "bool", "huge", "nan", "bad-count"],
)
def test_embed_answer_rejects_what_a_node_should_not_send(data: object) -> None:
    with pytest.raises(ValueError):
        embed_answer(data, 2)


def decode(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def as_float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


@pytest.mark.parametrize(
    "vector",
    [[0.0], [1.0, -1.0, 0.5], [0.1, -0.2, 0.30000001192092896, 1e-7], []],
    ids=["zero", "exact", "rounded", "empty"],
)
def test_base64_is_little_endian_float32(vector: list[float]) -> None:
    assert decode(to_base64(vector)) == as_float32(vector)
    assert len(base64.b64decode(to_base64(vector))) == 4 * len(vector)


VECTORS = [[0.6, 0.8, 0.0], [0.0, -1.0, 0.0], [0.2672612419, 0.5345224838, 0.8017837257]]


@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_response_validates_against_the_sdk(fmt: str) -> None:
    raw = embeddings_response(
        VECTORS, model="ollama/nomic-embed-text", prompt_tokens=12, encoding_format=fmt
    )
    body = json.loads(raw)
    if fmt == "base64":  # the SDK decodes the strings before it builds its types
        assert all(isinstance(item["embedding"], str) for item in body["data"])
        body = {**body, "data": [{**d, "embedding": decode(d["embedding"])} for d in body["data"]]}
    parsed = CreateEmbeddingResponse.model_validate(body)
    assert parsed.object == "list"
    assert parsed.model == "ollama/nomic-embed-text"
    assert parsed.usage.prompt_tokens == parsed.usage.total_tokens == 12
    assert [d.index for d in parsed.data] == [0, 1, 2]
    assert all(d.object == "embedding" for d in parsed.data)
    for item, vector in zip(parsed.data, VECTORS, strict=True):
        if fmt == "float":
            assert item.embedding == vector
        else:
            assert item.embedding == pytest.approx(vector, rel=1e-6)


def test_float_and_base64_agree_after_float32_rounding() -> None:
    floats = json.loads(
        embeddings_response(VECTORS, model="m", prompt_tokens=1, encoding_format="float")
    )
    b64 = json.loads(
        embeddings_response(VECTORS, model="m", prompt_tokens=1, encoding_format="base64")
    )
    for f, b in zip(floats["data"], b64["data"], strict=True):
        assert as_float32(f["embedding"]) == decode(b["embedding"])


# -- context overflow --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the input length exceeds the context length", True),
        (LLAMA_SERVER_OVERFLOW, True),
        (
            "the prompt is longer than the context length currently available to the model; "
            "shorten the prompt, adjust the context length in settings, or use a model with a "
            "longer context length",
            True,
        ),
        ("input after truncation exceeds maximum context length", True),
        ("model 'x' not found", False),
        ("server busy, please try again.  maximum pending requests exceeded", False),
        ('"bert" does not support chat', False),
        ("", False),
    ],
    ids=[
        "go-runner",
        "llama-server",
        "rendered",
        "embed-bos",
        "not-found",
        "busy",
        "caps",
        "empty",
    ],
)
def test_is_context_overflow(text: str, expected: bool) -> None:
    assert is_context_overflow(text) is expected


def test_overflow_counts() -> None:
    assert overflow_counts(LLAMA_SERVER_OVERFLOW) == (9100, 8192)
    assert overflow_counts("request (10 tokens) exceeds the available context size (8 tokens)") == (
        10,
        8,
    )
    assert overflow_counts("the input length exceeds the context length") is None


@pytest.mark.parametrize(
    ("text", "param", "words"),
    [
        (LLAMA_SERVER_OVERFLOW, "messages", "maximum context length is 8192 tokens"),
        (LLAMA_SERVER_OVERFLOW, "prompt", "resulted in 9100 tokens"),
        (
            "the input length exceeds the context length",
            "input",
            "longer than this model's context",
        ),
    ],
    ids=["chat-counts", "completion-counts", "embed-no-counts"],
)
def test_context_overflow_is_a_400_with_openais_code(text: str, param: str, words: str) -> None:
    error = context_overflow(text, param)
    status, _, body = to_response(error, method="POST", path="/v1/embeddings")
    assert status == 400
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"
    assert error.code == "context_length_exceeded"
    assert error.param == param
    assert words in error.message
