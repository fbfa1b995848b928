"""OpenAI embeddings (`POST /v1/embeddings`) ⇄ Ollama `/api/embed` (api-reference.md 1.7, 5.5).

Pure. The flow the handler runs:

    req = parse_embeddings(load_json(body))             # BadRequest(param=...) on bad input
    spans = split_batches(len(req.inputs), parts)       # contiguous, in order
    payloads = [embed_payload(req, model, req.inputs[a:b]) for a, b in spans]
    ... one /api/embed per span (any node with the model) ...
    vectors, tokens = embed_answer(data, expected=b - a)   # per answer; ValueError = bad node
    body = embeddings_response(join_batches(...), model=req.model, prompt_tokens=sum, ...)

Decisions:
- Token arrays (`[int]`, `[[int]]`) are refused with a 400 naming `input`: Ollama's
  `/api/embed` takes text only (it answers `invalid input type`), and detokenising would need
  the model's own tokenizer.
- `encoding_format` absent means `float` (the API's default); the Python SDK sends `base64`
  whenever the caller did not choose, and base64 is little-endian float32 bytes.
- `truncate: false` is always sent, so an input longer than the model's context is a 400
  (`context_length_exceeded`, see `router.wire.overflow`) instead of a silent cut.
- `dimensions` goes to Ollama, which keeps the first d values and re-normalises them.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from router.errors import BadRequest
from router.wire.options import Overrides, apply_options

MAX_INPUTS = 2048  # OpenAI's limit on one request's array
FLOAT32_MAX = 3.4028234663852886e38
FORMATS = ("float", "base64")


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    model: str
    inputs: tuple[str, ...]
    encoding_format: str = "float"
    dimensions: int | None = None
    user: str | None = None


def _bad(message: str, param: str, code: str = "invalid_value") -> BadRequest:
    return BadRequest(message, param=param, code=code)


def _is_float32(value: object) -> bool:
    # Ollama sends float32 values; anything else could not be packed for base64.
    return (
        isinstance(value, float | int)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= FLOAT32_MAX
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _inputs(value: object) -> tuple[str, ...]:
    if value is None:
        raise _bad("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _bad(
            "Invalid type for 'input': expected a string or an array of strings.",
            "input",
            "invalid_type",
        )
    if not value:
        raise _bad("Invalid 'input': empty array. Expected at least one input.", "input")
    if len(value) > MAX_INPUTS:
        raise _bad(
            f"Invalid 'input': at most {MAX_INPUTS} inputs per request, got {len(value)}.",
            "input",
        )
    if _is_int(value[0]) or isinstance(value[0], list):
        raise _bad(
            "Invalid 'input': token arrays are not supported by this router (Ollama embeds "
            "text only). Send 'input' as a string or an array of strings.",
            "input",
            "unsupported_value",
        )
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _bad(
                f"Invalid type for 'input[{i}]': expected a string.", f"input[{i}]", "invalid_type"
            )
        if not item:
            # Ollama reads an empty input as "load the model" and returns no vector for it.
            raise _bad(f"Invalid 'input[{i}]': it must not be empty.", f"input[{i}]")
    return tuple(value)


def parse_embeddings(body: dict[str, Any]) -> EmbeddingsRequest:
    """Validate an embeddings body; unknown fields are ignored, as OpenAI does."""
    model = body.get("model")
    if model is None or model == "":
        raise _bad("you must provide a model parameter", "model", "missing_required_parameter")
    if not isinstance(model, str):
        raise _bad("Invalid type for 'model': expected a string.", "model", "invalid_type")
    inputs = _inputs(body.get("input"))
    fmt = body.get("encoding_format")
    if fmt is None:
        fmt = "float"
    if fmt not in FORMATS:
        shown = fmt if isinstance(fmt, str) else orjson.dumps(fmt).decode()
        raise _bad(
            f"Invalid value for 'encoding_format' = {shown}. Supported values: "
            "['float', 'base64'].",
            "encoding_format",
        )
    dims = body.get("dimensions")
    if dims is not None and (not _is_int(dims) or dims < 1):
        raise _bad("Invalid 'dimensions': expected an integer >= 1.", "dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("Invalid type for 'user': expected a string.", "user", "invalid_type")
    return EmbeddingsRequest(model, inputs, fmt, dims, user)


def embed_payload(
    req: EmbeddingsRequest,
    model: str,
    inputs: Sequence[str],
    overrides: Overrides | None = None,
) -> bytes:
    """The `/api/embed` body for some of the request's inputs; `model` is the node's name."""
    payload: dict[str, Any] = {"model": model, "input": list(inputs), "truncate": False}
    if req.dimensions is not None:
        payload["dimensions"] = req.dimensions
    if overrides is not None:  # the catalog's options: num_ctx, keep_alive, truncate
        del payload["truncate"]  # the catalog's says (false unless the model opts in)
        apply_options(payload, overrides, embed=True)
    return orjson.dumps(payload)


def split_batches(count: int, parts: int) -> list[tuple[int, int]]:
    """`count` inputs in at most `parts` contiguous (start, stop) spans, sizes within one of
    each other, none empty, in order."""
    if count <= 0:
        return []
    parts = max(1, min(parts, count))
    size, extra = divmod(count, parts)
    spans, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        spans.append((start, stop))
        start = stop
    return spans


def join_batches(results: Sequence[Sequence[list[float]]]) -> list[list[float]]:
    """The per-span vectors back in input order (spans as `split_batches` gave them)."""
    return [vector for batch in results for vector in batch]


def embed_answer(data: object, expected: int) -> tuple[list[list[float]], int]:
    """(vectors, prompt tokens) from an `/api/embed` answer; ValueError when the node sent
    something else (a protocol failure of that node, not the client's fault)."""
    if not isinstance(data, dict):
        raise ValueError("embed answer is not an object")
    vectors = data.get("embeddings")
    if not isinstance(vectors, list) or len(vectors) != expected:
        got = len(vectors) if isinstance(vectors, list) else type(vectors).__name__
        raise ValueError(f"embed answer has {got} embeddings, expected {expected}")
    for vector in vectors:
        if not isinstance(vector, list) or not all(_is_float32(v) for v in vector):
            raise ValueError("embed answer holds a vector that is not a list of float32 numbers")
    tokens = data.get("prompt_eval_count") or 0  # omitempty (pitfall 10)
    if not _is_int(tokens):
        raise ValueError("embed answer has a non-integer prompt_eval_count")
    return vectors, tokens


def to_base64(vector: Sequence[float]) -> str:
    """Little-endian float32 bytes, base64: what the SDKs decode (`floatsToBase64` in Ollama)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embeddings_response(
    vectors: Sequence[Sequence[float]], *, model: str, prompt_tokens: int, encoding_format: str
) -> bytes:
    """The OpenAI answer; `model` is what the client sent."""
    encode = to_base64 if encoding_format == "base64" else list
    data = [
        {"object": "embedding", "index": i, "embedding": encode(vector)}
        for i, vector in enumerate(vectors)
    ]
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})
