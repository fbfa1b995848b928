"""`POST /api/embed`: deterministic unit vectors, in the order and with the errors of Ollama's
`EmbedHandler` (api-reference.md 1.7, 5.5; `server/routes.go`).

Order: decode (400) → model name (404 empty, 400 invalid) → input type (400) → model installed
(404) → options (500) → queue (503) → load → empty input (load only) → per input: length against
the context (400 when `truncate` is false, else cut) → vectors. Any model can embed (Ollama asks
for no capability here). A "token" is a whitespace-separated word; the runner adds BOS and EOS,
which count in `prompt_eval_count` and in the context. Vectors come from a hash of (model, text):
the same text gives the same vector on every node, unit length, float32 values as Go prints
them; `dimensions` keeps the first d values and re-normalises, as Ollama does.
"""

from __future__ import annotations

import hashlib
import math
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from .catalog import display_name, is_valid_name
from .generation import BUSY_MESSAGE, STATE, error_response, fault
from .gojson import EMBED_REQUEST, WireError, check_types, go_quote, load_json
from .lines import error_body
from .parse import parse_options
from .run import json_response, pause
from .state import NodeState

EMBED_OVERFLOW = "the input length exceeds the context length"
SPECIAL_TOKENS = 2  # BOS and EOS around every input
_MASK = (1 << 64) - 1


def _inputs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise WireError(400, "invalid input type")


def _f32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (how Go prints `[]float32`)."""
    packed = struct.pack("<f", value)
    exact: float = struct.unpack("<f", packed)[0]
    for digits in range(6, 10):
        text = f"{exact:.{digits}g}"
        if struct.pack("<f", float(text)) == packed:
            return float(text)
    return exact


def _normalise(values: list[float]) -> list[float]:
    norm = 1.0 / max(math.sqrt(sum(v * v for v in values)), 1e-12)
    return [v * norm for v in values]


def embedding(model: str, text: str, length: int, dimensions: int = 0) -> list[float]:
    """The unit vector for `text`; `dimensions` in (0, length) truncates and re-normalises."""
    state = int.from_bytes(hashlib.blake2b(f"{model}\0{text}".encode(), digest_size=8).digest())
    values = []
    for _ in range(length):  # splitmix64: stable across Python versions and processes
        state = (state + 0x9E3779B97F4A7C15) & _MASK
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        values.append(((z ^ (z >> 31)) / _MASK) * 2.0 - 1.0)
    vector = _normalise(values)
    if 0 < dimensions < len(vector):
        vector = _normalise(vector[:dimensions])
    return [_f32(v) for v in vector]


def fit(text: str, limit: int, truncate: bool) -> tuple[str, int]:
    """(the tokens the runner sees, as text; their count without BOS/EOS)."""
    words = text.split()
    if len(words) <= limit:
        return " ".join(words), max(1, len(words))
    if not truncate:
        raise WireError(400, EMBED_OVERFLOW)
    return " ".join(words[:limit]), limit


def _checked(state: NodeState, body: Any) -> tuple[dict[str, Any], list[str], str]:
    typed = check_types(body, EMBED_REQUEST)
    model = typed.get("model", "")
    if not model:
        raise WireError(404, "model '' not found")
    if not is_valid_name(model):
        raise WireError(400, "invalid model name")
    inputs = _inputs(typed.get("input"))
    key = display_name(model)
    if key not in state.catalog:
        raise WireError(404, f"model {go_quote(model)} not found, try pulling it first")
    return typed, inputs, key


async def handle_embed(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    stats = state.stats
    stats.requests["/api/embed"] += 1
    arrival = time.perf_counter_ns()
    try:
        body = load_json(await request.read())
        if stats.record_bodies and isinstance(body, dict):
            stats.bodies.append(body)
            stats.headers.append(request.headers)
        if state.faults.active:
            faulted = await fault(request, state)
            if faulted is not None:
                return faulted
        typed, inputs, key = _checked(state, body)
        options = parse_options(typed.get("options", {}))
    except WireError as exc:
        return error_response(exc)
    if stats.in_flight >= state.capacity:
        return json_response(error_body(BUSY_MESSAGE), 503)
    try:
        with state.slot():
            await state.ensure_loaded(key, typed.get("keep_alive"), options.num_ctx)
            load_ns = time.perf_counter_ns() - arrival
            if not inputs:
                stats.completed += 1
                return json_response(orjson.dumps({"model": typed["model"], "embeddings": []}))
            async with state.semaphore:
                await pause(request, state.delay_s(state.config.ttft_ms))
                answer = _embed(state, typed, inputs, key, options.num_ctx)
            answer["total_duration"] = time.perf_counter_ns() - arrival
            answer["load_duration"] = max(1, load_ns)
            answer["prompt_eval_count"] = answer.pop("_count")
            stats.completed += 1
            return json_response(orjson.dumps(answer))
    except WireError as exc:
        return error_response(exc)
    except ConnectionResetError:
        return web.Response()  # never sent: the client is gone


def _embed(
    state: NodeState, typed: dict[str, Any], inputs: list[str], key: str, num_ctx: int | None
) -> dict[str, Any]:
    info = state.catalog[key]
    # Ollama measures against the model's training context, or num_ctx when smaller.
    ctx = min(num_ctx, info.context_length) if num_ctx else info.context_length
    limit = ctx - SPECIAL_TOKENS
    truncate = typed.get("truncate", True)
    dims = typed.get("dimensions", 0)
    vectors, count = [], 0
    for text in inputs:
        seen, tokens = fit(text, limit, truncate)
        vectors.append(embedding(key, seen, info.embedding_length, dims))
        count += tokens + SPECIAL_TOKENS
    return {"model": typed["model"], "embeddings": vectors, "_count": count}
