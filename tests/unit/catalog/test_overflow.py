"""A node's refusal of an over-long prompt, in each Ollama version's words, becomes OpenAI's
400 `context_length_exceeded` naming the model's context size; other errors are not one."""

from __future__ import annotations

import json

import pytest

from router.api.errors import to_response
from router.errors import BadRequest
from router.wire.overflow import (
    Overflow,
    context_length_exceeded,
    is_context_overflow,
    parse_overflow,
)

LLAMA_SERVER = (
    '{"error":{"code":400,"message":"request (9100 tokens) exceeds the available context size '
    '(8192 tokens), try increasing it","type":"exceed_context_size_error",'
    '"n_prompt_tokens":9100,"n_ctx":8192}}'
)
PROMPT_LONGER = (
    "the prompt is longer than the context length currently available to the model; shorten "
    "the prompt, adjust the context length in settings, or use a model with a longer context length"
)

PARSE: list[tuple[str, str, Overflow | None]] = [
    ("go-runner", "the input length exceeds the context length", Overflow()),
    ("llama-server-json", LLAMA_SERVER, Overflow(9100, 8192)),
    # the whole Ollama body around llama-server's JSON string
    ("ollama-body-around-it", json.dumps({"error": LLAMA_SERVER}), Overflow(9100, 8192)),
    (
        "llama-server-text-only",
        "request (9100 tokens) exceeds the available context size (8192 tokens), try increasing it",
        Overflow(9100, 8192),
    ),
    ("llama-server-json-cut", LLAMA_SERVER[:120], Overflow(9100, 8192)),
    ("prompt-longer-v0.30.9", PROMPT_LONGER, Overflow()),
    ("case-insensitive", "The Input Length Exceeds The Context Length", Overflow()),
    ("model-not-found", "model 'llama9' not found", None),
    ("busy", "server busy, please try again.  maximum pending requests exceeded", None),
    ("bad-option", 'option "num_predict" must be of type integer', None),
    (
        "json-other-error",
        '{"error":{"code":400,"message":"bad grammar","type":"invalid_request"}}',
        None,
    ),
    ("empty", "", None),
]


@pytest.mark.parametrize(("text", "expected"), [p[1:] for p in PARSE], ids=[p[0] for p in PARSE])
def test_parse_overflow(text: str, expected: Overflow | None) -> None:
    assert parse_overflow(text) == expected
    assert is_context_overflow(text) is (expected is not None)


MESSAGES: list[tuple[str, Overflow, int | None, str, str]] = [
    (
        "counts-from-the-node",
        Overflow(9100, 8192),
        4096,
        "messages",
        "This model's maximum context length is 8192 tokens. However, your messages resulted in "
        "9100 tokens. Please reduce the length of the messages.",
    ),
    (
        "catalog-num-ctx-when-the-node-gives-none",
        Overflow(),
        8192,
        "messages",
        "This model's maximum context length is 8192 tokens, and your messages are longer. "
        "Please reduce the length of the messages.",
    ),
    (
        "embedding-input",
        Overflow(),
        512,
        "input",
        "This model's maximum context length is 512 tokens, and your input is longer. "
        "Please reduce the length of the input.",
    ),
    (
        "no-size-known",
        Overflow(),
        None,
        "prompt",
        "Your prompt is longer than this model's context (the node's default: no num_ctx is "
        "configured for this model). Please reduce the length of the prompt.",
    ),
]


@pytest.mark.parametrize(
    ("overflow", "num_ctx", "param", "message"),
    [m[1:] for m in MESSAGES],
    ids=[m[0] for m in MESSAGES],
)
def test_context_length_exceeded(
    overflow: Overflow, num_ctx: int | None, param: str, message: str
) -> None:
    error = context_length_exceeded(overflow, num_ctx=num_ctx, param=param)
    assert isinstance(error, BadRequest)
    assert (error.message, error.param, error.code) == (message, param, "context_length_exceeded")
    assert error.num_ctx == (overflow.n_ctx or num_ctx)
    assert error.prompt_tokens == overflow.prompt_tokens


def test_the_boundary_answers_400_in_openais_envelope() -> None:
    error = context_length_exceeded(Overflow(9100, 8192), num_ctx=8192)
    status, headers, body = to_response(error, method="POST", path="/v1/chat/completions")
    assert status == 400
    assert "Retry-After" not in headers
    assert json.loads(body) == {
        "error": {
            "message": error.message,
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
