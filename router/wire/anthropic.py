"""Anthropic Messages API ⇄ Ollama `/api/chat`: payloads, the Message object and errors.

Pure. Ids come from an injected `new_id(prefix)`. The streamed form is in `anthropic_stream.py`.
Blocks come in the order the model produced them: thinking, text, tool_use. A thinking block's
`signature` (required by the SDK type) is "": Ollama's thinking is not signed, and a signature
that only looks real would be a lie to a client that checks it.

Errors have Anthropic's own envelope and types (api-reference.md 5.3; the SDK picks its
exception class by status, anthropic `_error_classes.py`): `error_body(status, message)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from router.errors import BadRequest
from router.wire.anthropic_parse import MessagesRequest
from router.wire.options import Overrides, apply_options
from router.wire.translate import Usage, usage_of

NewId = Callable[[str], str]

# status → Anthropic error type (`types/shared/error_type.py`; 413 as the API documents it).
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",  # every node busy: the SDK retries it like 529
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str, request_id: str | None = None) -> bytes:
    """`{"type":"error","error":{"type","message"},"request_id"}` for an HTTP status."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)


def context_overflow(prompt_tokens: int | None = None, limit: int | None = None) -> BadRequest:
    """A prompt over the node's context, as Anthropic words it (api-reference.md 5.6)."""
    if prompt_tokens and limit:
        return BadRequest(f"prompt is too long: {prompt_tokens} tokens > {limit} maximum")
    return BadRequest("prompt is too long for the model's context window")


# -- requests ---------------------------------------------------------------------------------
def _options(req: MessagesRequest, max_tokens: int | None) -> dict[str, Any]:
    # Anthropic's defaults (temperature 1, no nucleus cut), not the Modelfile's.
    options: dict[str, Any] = {
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p,
    }
    if req.top_k is not None:
        options["top_k"] = req.top_k
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    if req.stop_sequences:
        options["stop"] = list(req.stop_sequences)
    return options


def _payload(
    req: MessagesRequest, model: str, max_tokens: int | None, can_think: bool, stream: bool
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": list(req.messages),
        "stream": stream,  # False: Ollama's one JSON answer (`routing.gather: whole`)
        "options": _options(req, max_tokens),
    }
    if req.tools:
        payload["tools"] = list(req.tools)
    if req.format is not None:
        payload["format"] = req.format
    if req.think is not None and can_think:
        payload["think"] = req.think
    return payload


def messages_payload(
    req: MessagesRequest,
    model: str,
    overrides: Overrides | None = None,
    *,
    can_think: bool = True,
    stream: bool = True,
) -> bytes:
    """The native `/api/chat` body. `can_think=False` (the model lacks Ollama's `thinking`
    capability) leaves `think` out: Ollama answers 400 when such a model is asked to think."""
    return orjson.dumps(_with(_payload(req, model, req.max_tokens, can_think, stream), overrides))


def count_tokens_payload(
    req: MessagesRequest,
    model: str,
    overrides: Overrides | None = None,
    *,
    can_think: bool = True,
) -> bytes:
    """Ollama has no token-count endpoint: a one-token generation's `prompt_eval_count` is the
    count of the whole rendered prompt (tools and system included)."""
    return orjson.dumps(_with(_payload(req, model, 1, can_think, True), overrides))


def _with(payload: dict[str, Any], overrides: Overrides | None) -> dict[str, Any]:
    """The catalog's per-model options written in (issue 15)."""
    return payload if overrides is None else apply_options(payload, overrides)


def count_tokens_body(done: dict[str, Any]) -> bytes:
    return orjson.dumps({"input_tokens": usage_of(done).prompt_tokens})


# -- answers ----------------------------------------------------------------------------------
def stop_reason(done: dict[str, Any], tool_use: bool) -> str:
    # Ollama does not say which stop string matched, so `stop_sequence` stays null (a known
    # gap: a stop string reads as end_turn).
    if done.get("done_reason") == "length":
        return "max_tokens"
    return "tool_use" if tool_use else "end_turn"


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def tool_inputs(calls: object) -> list[tuple[str, dict[str, Any]]]:
    """Native tool calls → (name, input object)."""
    out: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(calls, list):
        return out
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        args = fn.get("arguments", {})
        if isinstance(args, str):  # not what Ollama sends, but keep what can be kept
            try:
                args = orjson.loads(args)
            except orjson.JSONDecodeError:
                args = {}
        out.append((str(fn.get("name") or ""), args if isinstance(args, dict) else {}))
    return out


def message_object(
    id_: str, model: str, content: list[dict[str, Any]], reason: str | None, usage: Usage
) -> dict[str, Any]:
    return {
        "id": id_,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": None,
        "usage": usage_dict(usage),
    }


def build_message(data: dict[str, Any], model: str, id_: str, new_id: NewId) -> tuple[bytes, Usage]:
    """The non-streamed Message from a gathered answer (`router.wire.ollama.Gathered.chat()`)."""
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    assert isinstance(message, dict)
    content: list[dict[str, Any]] = []
    if message.get("thinking"):
        content.append({"type": "thinking", "thinking": message["thinking"], "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    calls = tool_inputs(message.get("tool_calls"))
    for name, args in calls:
        content.append({"type": "tool_use", "id": new_id("toolu_"), "name": name, "input": args})
    usage = usage_of(data)
    body = message_object(id_, model, content, stop_reason(data, bool(calls)), usage)
    return orjson.dumps(body), usage
