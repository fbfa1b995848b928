"""OpenAI Responses API ⇄ Ollama `/api/chat`: the payload, output items and the Response object.

Pure. Ids come from an injected `new_id(prefix)` so answers are deterministic in tests. The
streamed form is in `responses_stream.py`; both build their items with the helpers here, so a
streamed answer's `response.completed` and a gathered answer are the same object.

Thinking becomes a `reasoning` item whose `content` holds `reasoning_text` (Ollama's thinking is
the raw chain of thought, which is what that part is for; `summary` stays empty, as for OpenAI's
open-weight models), never text in the message. Items come in the order the model produced
them: reasoning, message, function calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from router.errors import BadRequest
from router.wire.options import Overrides, apply_options
from router.wire.responses_parse import ResponsesRequest
from router.wire.translate import Usage, usage_of

NewId = Callable[[str], str]


def responses_payload(
    req: ResponsesRequest,
    model: str,
    overrides: Overrides | None = None,
    *,
    can_think: bool = True,
    stream: bool = True,
) -> bytes:
    """The native `/api/chat` body; streamed unless `stream=False` (`routing.gather: whole`
    asks for Ollama's one JSON answer for a non-streamed request).
    `can_think=False` (the model lacks Ollama's `thinking` capability) leaves `think` out:
    Ollama answers 400 when such a model is asked to think, and agents send `reasoning`
    whatever the model."""
    options: dict[str, Any] = {
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p,
    }
    if req.max_output_tokens is not None:
        options["num_predict"] = req.max_output_tokens
    payload: dict[str, Any] = {
        "model": model,
        "messages": list(req.messages),
        "stream": stream,
        "options": options,
    }
    if req.tools:
        payload["tools"] = list(req.tools)
    if req.format is not None:
        payload["format"] = req.format
    if req.think is not None and can_think:
        payload["think"] = req.think
    if overrides is not None:  # the catalog's per-model options (issue 15)
        apply_options(payload, overrides)
    return orjson.dumps(payload)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """What every Response object of one request shares."""

    id: str  # resp_…
    created_at: int
    model: str  # the model id the client sent
    echo: dict[str, Any]  # ResponsesRequest.echo

    @classmethod
    def of(cls, req: ResponsesRequest, id_: str, created_at: int) -> ResponseHead:
        return cls(id_, created_at, req.model, req.echo or {})


def usage_dict(usage: Usage) -> dict[str, Any]:
    # Ollama counts no cached or reasoning tokens apart (eval_count includes the thinking).
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def response_object(
    head: ResponseHead,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
) -> dict[str, Any]:
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": head.id,
        "object": "response",
        "created_at": head.created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": incomplete,
        "model": head.model,
        "output": output,
        **head.echo,
        "usage": None if usage is None else usage_dict(usage),
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(id_: str, text: str | None, status: str) -> dict[str, Any]:
    """A message item; `text` None = just opened (no content part yet)."""
    content = [] if text is None else [text_part(text)]
    return {"id": id_, "type": "message", "status": status, "role": "assistant", "content": content}


def reasoning_item(id_: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "reasoning_text", "text": text}]
    return {"id": id_, "type": "reasoning", "status": status, "summary": [], "content": content}


def function_call_item(
    id_: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": id_,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def native_calls(calls: object) -> list[tuple[str, str]]:
    """Native tool calls (arguments an object) → (name, arguments as a JSON string)."""
    out: list[tuple[str, str]] = []
    if not isinstance(calls, list):
        return out
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        args = fn.get("arguments", {})
        text = args if isinstance(args, str) else orjson.dumps(args).decode()
        out.append((str(fn.get("name") or ""), text))
    return out


def context_overflow(prompt_tokens: int | None = None, limit: int | None = None) -> BadRequest:
    """A prompt over the node's context, as OpenAI words it for Responses (api-reference 5.6)."""
    counts = (
        f" ({prompt_tokens} tokens; the context holds {limit})" if prompt_tokens and limit else ""
    )
    return BadRequest(
        "Your input exceeds the context window of this model. Please adjust your input and "
        f"try again.{counts}",
        param="input",
        code="context_length_exceeded",
    )


def status_of(done: dict[str, Any]) -> str:
    return "incomplete" if done.get("done_reason") == "length" else "completed"


def build_response(data: dict[str, Any], head: ResponseHead, new_id: NewId) -> tuple[bytes, Usage]:
    """The non-streamed Response from a gathered answer (`router.wire.ollama.Gathered.chat()`)."""
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    assert isinstance(message, dict)
    status = status_of(data)
    output: list[dict[str, Any]] = []
    if message.get("thinking"):
        output.append(reasoning_item(new_id("rs_"), message["thinking"], "completed"))
    calls = native_calls(message.get("tool_calls"))
    if message.get("content") or not calls:  # an answer always has a message or a call
        output.append(message_item(new_id("msg_"), message.get("content") or "", "completed"))
    for name, args in calls:
        output.append(function_call_item(new_id("fc_"), new_id("call_"), name, args, "completed"))
    if status == "incomplete" and output[-1]["type"] != "function_call":
        output[-1]["status"] = "incomplete"  # cut short by max_output_tokens
    usage = usage_of(data)
    return orjson.dumps(response_object(head, status, output, usage)), usage
