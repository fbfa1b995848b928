"""A prompt longer than the model's context: recognise Ollama's texts, answer as OpenAI does.

Pure. Ollama's wording depends on its version and path (api-reference.md 5.6, pitfall 33):
- v0.12.6-v0.24 Go runners and every `/api/embed`: `the input length exceeds the context length`;
- v0.30+ chat/generate: llama-server's own JSON body as the error string,
  `{"error":{"code":400,"message":"request (9100 tokens) exceeds the available context size
  (8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9100,
  "n_ctx":8192}}`;
- v0.30.9+ rendered prompt still too long: `the prompt is longer than the context length ...`.
Each is the request's fault (a 400), worth retrying only on a node with a larger `num_ctx`.
"""

from __future__ import annotations

import re

import orjson

from router.errors import BadRequest

CODE = "context_length_exceeded"
_MARKERS = (
    "exceed_context_size_error",
    "exceeds the available context size",
    "the input length exceeds the context length",
    "the prompt is longer than the context",
    "input after truncation exceeds maximum context length",
    "input exceeds maximum context length",
)
_COUNTS = re.compile(r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens")


def is_context_overflow(text: str) -> bool:
    """Whether a node's error text says the prompt did not fit in the context."""
    lowered = text.lower()
    return any(marker in lowered for marker in _MARKERS)


def overflow_counts(text: str) -> tuple[int, int] | None:
    """(prompt tokens, context size) when the node said them (llama-server's body), else None."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    inner = data.get("error") if isinstance(data, dict) else None
    if isinstance(inner, dict):
        prompt, ctx = inner.get("n_prompt_tokens"), inner.get("n_ctx")
        if isinstance(prompt, int) and isinstance(ctx, int):
            return prompt, ctx
    match = _COUNTS.search(text)
    if match:
        return int(match.group(1)), int(match.group(2))
    return None


def context_overflow(text: str, param: str) -> BadRequest:
    """The 400 a client gets, in OpenAI's words; `param` is `messages`, `prompt` or `input`."""
    counts = overflow_counts(text)
    noun = {"messages": "messages", "prompt": "prompt"}.get(param, "input")
    if counts is not None:
        prompt, ctx = counts
        message = (
            f"This model's maximum context length is {ctx} tokens. However, your {noun} "
            f"resulted in {prompt} tokens. Please reduce the length of the {noun}."
        )
    else:
        message = (
            f"Your {noun} exceeds the context length of this model. Please reduce the "
            f"length of the {noun}."
        )
    return BadRequest(message, param=param, code=CODE)
