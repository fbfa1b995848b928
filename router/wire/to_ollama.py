"""OpenAI requests → Ollama payloads: messages, options, formats, tools, thinking.

Pure. The payload always asks for a stream (router.wire.ollama gathers a non-streamed answer).
"""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import BadRequest
from router.wire.openai import ChatRequest, CompletionRequest, Sampling
from router.wire.options import Overrides, apply_options
from router.wire.toolchoice import with_instruction

_THINK = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "max",
    "max": "max",
}
_ROLE = {"developer": "system", "function": "tool"}


def _options(s: Sampling) -> dict[str, Any]:
    # OpenAI's defaults (temperature 1, top_p 1) rather than the Modelfile's, so a client gets
    # the same sampling it would get from OpenAI or from Ollama's own /v1 layer.
    opts: dict[str, Any] = {
        "temperature": 1.0 if s.temperature is None else s.temperature,
        "top_p": 1.0 if s.top_p is None else s.top_p,
    }
    if s.max_tokens is not None:
        opts["num_predict"] = s.max_tokens
    if s.stop:
        opts["stop"] = list(s.stop)  # Ollama wants a list; a bare string is a 500 (pitfall 12)
    if s.seed is not None:
        opts["seed"] = s.seed
    if s.presence_penalty is not None:
        opts["presence_penalty"] = s.presence_penalty
    if s.frequency_penalty is not None:
        opts["frequency_penalty"] = s.frequency_penalty
    return opts


def _parts(parts: list[dict[str, Any]]) -> tuple[str, list[str]]:
    texts: list[str] = []
    images: list[str] = []
    for part in parts:
        if part["type"] == "text":
            texts.append(part["text"])
        else:
            image = part["image_url"]
            url: str = image["url"] if isinstance(image, dict) else image
            images.append(url.split(";base64,", 1)[1])  # Ollama wants bare base64 (pitfall 15)
    return "\n".join(texts), images


def _tool_call_in(param: str, call: object) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise BadRequest(
            f"Invalid '{param}': expected a function tool call with a name.",
            param=param,
            code="invalid_value",
        )
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = orjson.loads(args) if args.strip() else {}
        except orjson.JSONDecodeError:
            raise BadRequest(
                f"Invalid '{param}.function.arguments': not valid JSON.",
                param=f"{param}.function.arguments",
                code="invalid_value",
            ) from None
    if args is None:
        args = {}
    if not isinstance(args, dict):  # Ollama only decodes an object here (else an opaque 400)
        raise BadRequest(
            f"Invalid '{param}.function.arguments': expected a JSON object.",
            param=f"{param}.function.arguments",
            code="invalid_value",
        )
    out: dict[str, Any] = {"function": {"name": fn["name"], "arguments": args}}
    if isinstance(call, dict) and isinstance(call.get("id"), str):
        out["id"] = call["id"]
    return out


def ollama_messages(messages: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tool_names: dict[str, str] = {}
    for i, m in enumerate(messages):
        role = m["role"]
        content = m.get("content")
        msg: dict[str, Any] = {"role": _ROLE.get(role, role)}
        if isinstance(content, list):
            msg["content"], images = _parts(content)
            if images:
                msg["images"] = images
        else:
            msg["content"] = content or ""
        calls = m.get("tool_calls")
        if calls:
            msg["tool_calls"] = [
                _tool_call_in(f"messages[{i}].tool_calls[{j}]", c) for j, c in enumerate(calls)
            ]
            for c in msg["tool_calls"]:
                if "id" in c:
                    tool_names[c["id"]] = c["function"]["name"]
        if msg["role"] == "tool":
            call_id = m.get("tool_call_id")
            if isinstance(call_id, str):
                msg["tool_call_id"] = call_id
            name = m.get("name") or (tool_names.get(call_id) if isinstance(call_id, str) else None)
            if isinstance(name, str):
                msg["tool_name"] = name
        out.append(msg)
    return out


def _format(response_format: dict[str, Any] | None) -> object:
    if response_format is None:
        return None
    kind = response_format["type"]
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return response_format["json_schema"].get("schema") or "json"
    return None


def chat_payload(
    req: ChatRequest, model: str, overrides: Overrides | None = None, *, stream: bool = True
) -> bytes:
    """The `/api/chat` payload for `model` (a node model name); `overrides`, the catalog's
    options for it, are written in before the one serialisation (router.wire.options).
    `stream=False` asks for Ollama's one JSON answer (`routing.gather: whole`)."""
    plan = req.tool_plan()  # Ollama has no tool_choice: narrowed tools and an instruction
    payload: dict[str, Any] = {
        "model": model,
        "messages": with_instruction(ollama_messages(req.messages), plan.instruction),
        # Stated explicitly (Ollama streams when it is absent, pitfall 1). A stream by default
        # even for a client's non-streamed answer, gathered (router.wire.ollama), so it gets
        # the first-token and between-token timeouts.
        "stream": stream,
        "options": _options(req.sampling),
    }
    fmt = _format(req.response_format)
    if fmt is not None:
        payload["format"] = fmt
    if plan.tools:
        payload["tools"] = list(plan.tools)
    payload.update(req.logprobs.ollama_fields())
    if req.reasoning_effort is not None:
        if req.reasoning_effort not in _THINK:
            raise BadRequest(
                f"Invalid 'reasoning_effort': {req.reasoning_effort!r}.",
                param="reasoning_effort",
                code="invalid_value",
            )
        payload["think"] = _THINK[req.reasoning_effort]
    if overrides is not None:
        apply_options(payload, overrides)
    return orjson.dumps(payload)


def completion_payload(
    req: CompletionRequest, model: str, overrides: Overrides | None = None, *, stream: bool = True
) -> bytes:
    """The `/api/generate` payload for `model`; `overrides` and `stream` as for `chat_payload`."""
    payload: dict[str, Any] = {
        "model": model,
        "prompt": req.prompt,
        "stream": stream,
        "options": _options(req.sampling),
    }
    if req.suffix:
        payload["suffix"] = req.suffix
    payload.update(req.logprobs.ollama_fields())
    if overrides is not None:
        apply_options(payload, overrides)
    return orjson.dumps(payload)
