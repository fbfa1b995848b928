"""A node's refusal of a prompt longer than the model's context, recognised and re-told in
OpenAI's words (issue #15, api-reference.md 5.6).

With `truncate: false` Ollama answers an over-long prompt with a 400 whose text depends on its
version: the Go runners' `the input length exceeds the context length`, the llama-server
runner's JSON string `{"error":{..."type":"exceed_context_size_error","n_prompt_tokens":9100,
"n_ctx":8192}}`, or `the prompt is longer than the context length ...`. Only a 400 is the
request's fault; the caller checks the status, this module reads the text. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from router.errors import ContextLengthExceeded

_MARKERS = (
    "exceed_context_size_error",
    "exceeds the available context size",
    "the input length exceeds the context length",
    "the prompt is longer than the context length",
    # /api/embed's wordings (embedding runners)
    "input after truncation exceeds maximum context length",
    "input exceeds maximum context length",
)
# llama-server's message, for when its JSON was cut or re-worded around it.
_COUNTS = re.compile(
    r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)"
)
_PLURAL = frozenset({"messages"})


@dataclass(frozen=True, slots=True)
class Overflow:
    """What the node said: the prompt's tokens and its context, when it said them."""

    prompt_tokens: int | None = None
    n_ctx: int | None = None


def is_context_overflow(text: str) -> bool:
    """Whether a node's error text says the prompt is longer than the context."""
    lowered = text.lower()
    return any(marker in lowered for marker in _MARKERS)


def parse_overflow(text: str) -> Overflow | None:
    """The overflow a node's error text reports (its `error` string, or the whole body), or
    None when the text is about something else."""
    if not is_context_overflow(text):
        return None
    inner = _error_object(text)
    if inner is not None:
        prompt, n_ctx = inner.get("n_prompt_tokens"), inner.get("n_ctx")
        if _count(prompt) or _count(n_ctx):
            return Overflow(_count(prompt), _count(n_ctx))
    found = _COUNTS.search(text)
    if found:
        return Overflow(int(found[1]), int(found[2]))
    return Overflow()


def context_length_exceeded(
    overflow: Overflow, *, num_ctx: int | None, param: str = "messages"
) -> ContextLengthExceeded:
    """The client's error: the context the node reported, else the catalog's `num_ctx`.
    `param` is the field that was too long (`messages`, `prompt`, `input`)."""
    size = overflow.n_ctx or num_ctx
    noun = param
    verb = "are" if noun in _PLURAL else "is"
    if size is None:
        message = (
            f"Your {noun} {verb} longer than this model's context (the node's default: no "
            f"num_ctx is configured for this model). Please reduce the length of the {noun}."
        )
    elif overflow.prompt_tokens is None:
        message = (
            f"This model's maximum context length is {size} tokens, and your {noun} {verb} "
            f"longer. Please reduce the length of the {noun}."
        )
    else:
        message = (
            f"This model's maximum context length is {size} tokens. However, your {noun} "
            f"resulted in {overflow.prompt_tokens} tokens. Please reduce the length of the "
            f"{noun}."
        )
    return ContextLengthExceeded(
        message, param=param, num_ctx=size, prompt_tokens=overflow.prompt_tokens
    )


def overflow_counts(text: str) -> tuple[int, int] | None:
    """(prompt tokens, context size) when the node said both, else None."""
    found = parse_overflow(text) if is_context_overflow(text) else None
    if found is None or found.prompt_tokens is None or found.n_ctx is None:
        return None
    return found.prompt_tokens, found.n_ctx


def context_overflow(text: str, param: str, num_ctx: int | None = None) -> ContextLengthExceeded:
    """The client's 400 for a node's overflow text (`param`: `messages`, `prompt`, `input`)."""
    return context_length_exceeded(parse_overflow(text) or Overflow(), num_ctx=num_ctx, param=param)


def _error_object(text: str) -> dict[str, object] | None:
    """llama-server's inner error object, from its JSON or from Ollama's body around it."""
    for _ in range(2):  # Ollama's {"error": "<llama-server's JSON>"} holds it one level down
        if not text.lstrip().startswith("{"):
            return None
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            return error
        if not isinstance(error, str):
            return None
        text = error
    return None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
