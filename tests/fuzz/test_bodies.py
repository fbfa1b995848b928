"""Hostile request bodies at every API: fields of the wrong type, arbitrary JSON and bytes,
invalid UTF-8, huge and deeply nested JSON. Every answer is a success or a well-formed 4xx in
the API's envelope (OpenAI's; Anthropic's on /v1/messages), never a 5xx, never a hang; the
router serves a good request afterwards and every node slot is back."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import LiveRouter, check, check_error, request, still_serving

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # nothing written to the work tree; a failure prints its example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
USER = [{"role": "user", "content": "hi"}]
LLAMA = "ollama/llama3"
VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": LLAMA, "messages": USER, "max_tokens": 4},
    "/v1/completions": {"model": LLAMA, "prompt": "hi", "max_tokens": 4},
    "/v1/embeddings": {"model": "ollama/nomic-embed-text", "input": "hi"},
    "/v1/responses": {"model": LLAMA, "input": "hi", "max_output_tokens": 4},
    "/v1/messages": {"model": LLAMA, "max_tokens": 4, "messages": USER},
    "/v1/messages/count_tokens": {"model": LLAMA, "messages": USER},
}
# Every field some API reads, so a mutation hits a parser's every branch.
FIELDS = [
    "model",
    "messages",
    "prompt",
    "input",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "best_of",
    "stop",
    "stop_sequences",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "logprobs",
    "top_logprobs",
    "encoding_format",
    "dimensions",
    "instructions",
    "reasoning",
    "text",
    "metadata",
    "system",
    "thinking",
    "output_config",
    "suffix",
    "user",
    "store",
    "previous_response_id",
    "presence_penalty",
    "frequency_penalty",
    "truncation",
]
DROP = object()

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and Infinity too: not JSON, which is a 400 as well
    | st.text(max_size=30)
    | st.sampled_from(["ollama/llama3", "ollama/qwen3", "user", "function", "auto", "text"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=16,
)


def _post(live: LiveRouter, path: str, body: bytes) -> None:
    check(request(live, "POST", path, body), path)


@FUZZ
@given(
    path=st.sampled_from(sorted(VALID)),
    changes=st.dictionaries(st.sampled_from(FIELDS), json_values | st.just(DROP), max_size=3),
    message=st.none() | json_values,
)
def test_fields_of_any_type(
    live: LiveRouter, path: str, changes: dict[str, Any], message: Any
) -> None:
    body = dict(VALID[path])
    for name, value in changes.items():
        if value is DROP:
            body.pop(name, None)
        else:
            body[name] = value
    if message is not None and isinstance(body.get("messages"), list):
        body["messages"] = [message, *USER]
    _post(live, path, json.dumps(body).encode())


@FUZZ
@given(path=st.sampled_from(sorted(VALID)), value=json_values)
def test_any_json_document(live: LiveRouter, path: str, value: Any) -> None:
    answer = request(live, "POST", path, json.dumps(value).encode())
    assert answer is not None
    check_error(answer, path)  # nothing but the right object is a request


@FUZZ
@given(path=st.sampled_from(sorted(VALID)), data=st.binary(max_size=300))
def test_any_bytes(live: LiveRouter, path: str, data: bytes) -> None:
    _post(live, path, data)


@FUZZ
@given(
    path=st.sampled_from(sorted(VALID)),
    junk=st.binary(min_size=1, max_size=40).filter(lambda b: not _utf8(b)),
    where=st.sampled_from(["model", "content", "key"]),
)
def test_invalid_utf8_in_json(live: LiveRouter, path: str, junk: bytes, where: str) -> None:
    body = json.dumps(VALID[path]).encode()
    if where == "model":
        body = body.replace(b'"model": "', b'"model": "' + junk, 1)
    elif where == "content":
        body = body.replace(b'"hi"', b'"hi' + junk + b'"', 1)
    else:
        body = body.replace(b'{"', b'{"' + junk, 1)
    assert not _utf8(body)
    answer = request(live, "POST", path, body)
    assert answer is not None
    check_error(answer, path)


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(
    path=st.sampled_from(sorted(VALID)),
    depth=st.integers(min_value=1, max_value=5000),
    opener=st.sampled_from(["[", '{"a":']),
    field=st.sampled_from(["metadata", "messages", "input", "tools"]),
)
def test_deep_json(live: LiveRouter, path: str, depth: int, opener: str, field: str) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    body = json.dumps(VALID[path])[:-1] + f', "{field}": {nested}}}'
    _post(live, path, body.encode())


@FUZZ
@given(
    path=st.sampled_from(sorted(VALID)),
    size=st.integers(min_value=1000, max_value=120_000),
    many=st.integers(min_value=1, max_value=400),
)
def test_huge_bodies(live: LiveRouter, path: str, size: int, many: int) -> None:
    body = dict(VALID[path])
    text = "word " * (size // 5)
    for name in ("messages", "input", "prompt"):
        if name in body and name != "messages":
            body[name] = text
    if "messages" in body:
        body["messages"] = [{"role": "user", "content": text[: size // many]}] * many
    _post(live, path, json.dumps(body).encode())


def test_still_serving(live: LiveRouter) -> None:
    still_serving(live)
