"""Anthropic Messages request bodies → a validated, frozen request in Ollama's `/api/chat` terms.

api-reference.md 5.3. Messages become native messages here: `system` first, `tool_result`
blocks become `tool` messages (before the rest of their user turn, where Anthropic puts them;
`is_error` is said in the text, not dropped), `tool_use` blocks the assistant's `tool_calls`,
`thinking` blocks its `thinking` (`redacted_thinking` is opaque and dropped). Texts of a 400 are
`<path>: <problem>`, as Anthropic words them; `param` carries the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router.errors import BadRequest

# `output_config.effort` → native `think` levels (api-reference.md 1.5).
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "max", "max": "max"}


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    messages: tuple[dict[str, Any], ...]  # native messages, system first
    tools: tuple[dict[str, Any], ...]  # native tools, already narrowed by tool_choice
    max_tokens: int | None  # None only for count_tokens
    stop_sequences: tuple[str, ...] = ()
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    think: bool | str | None = None
    format: object = None  # native `format`: None or a JSON-Schema object
    stream: bool = False
    user: str | None = None  # metadata.user_id, for affinity


def _bad(param: str, problem: str) -> BadRequest:
    return BadRequest(f"{param}: {problem}", param=param)


def _get(body: dict[str, Any], param: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(param)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise _bad(param, f"Input should be {what}")
    return value


def _number(body: dict[str, Any], param: str, lo: float, hi: float) -> float | None:
    value = _get(body, param, (int, float), "a valid number")
    if value is not None and not lo <= value <= hi:
        raise _bad(param, f"Input should be between {lo:g} and {hi:g}")
    return None if value is None else float(value)


def _text(param: str, block: object) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise _bad(f"{param}.type", "only text blocks are supported here")
    if not isinstance(block.get("text"), str):
        raise _bad(f"{param}.text", "Field required")
    text: str = block["text"]
    return text


def _text_blocks(param: str, value: object) -> str:
    """`system`, or a tool result's content: a string or a list of text blocks."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _bad(param, "Input should be a valid string or a list of text blocks")
    return "\n".join(_text(f"{param}.{i}", block) for i, block in enumerate(value))


def _image(param: str, block: dict[str, Any]) -> str:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") != "base64":
        raise _bad(f"{param}.source", "only base64 image sources are supported by Ollama")
    data = source.get("data")
    if not isinstance(data, str) or not data:
        raise _bad(f"{param}.source.data", "Field required")
    return data


def _tool_result(param: str, block: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{param}.tool_use_id", "Field required")
    content = block.get("content", "")
    texts, images = [], []
    for i, part in enumerate(content if isinstance(content, list) else [content]):
        where = f"{param}.content.{i}"
        if isinstance(part, dict) and part.get("type") == "image":
            images.append(_image(where, part))
        else:
            texts.append(part if isinstance(part, str) else _text(where, part))
    text = "\n".join(texts)
    if block.get("is_error") is True:  # Ollama has no flag for it: the model reads it instead
        text = f"Error: {text}"
    msg: dict[str, Any] = {"role": "tool", "content": text, "tool_call_id": call_id}
    if call_id in names:
        msg["tool_name"] = names[call_id]
    if images:
        msg["images"] = images
    return msg


def _tool_use(param: str, block: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    call_id, name, args = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{param}.id", "Field required")
    if not isinstance(name, str) or not name:
        raise _bad(f"{param}.name", "Field required")
    if not isinstance(args, dict):
        raise _bad(f"{param}.input", "Input should be a valid dictionary")
    names[call_id] = name
    return {"id": call_id, "function": {"name": name, "arguments": args}}


def _block(where: str, block: object) -> tuple[str, dict[str, Any]]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _bad(f"{where}.type", "Field required")
    return block["type"], block


def _turn(param: str, message: object, names: dict[str, str]) -> list[dict[str, Any]]:
    """One Anthropic message → native messages (tool results first, then the rest)."""
    if not isinstance(message, dict):
        raise _bad(param, "Input should be a valid dictionary")
    role, content = message.get("role"), message.get("content")
    if role not in ("user", "assistant"):
        raise _bad(f"{param}.role", "Input should be 'user' or 'assistant'")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _bad(f"{param}.content", "Input should be a valid string or list")
    results: list[dict[str, Any]] = []
    texts: list[str] = []
    msg: dict[str, Any] = {"role": role}
    for i, item in enumerate(content):
        where = f"{param}.content.{i}"
        kind, block = _block(where, item)
        if kind == "text":
            texts.append(_text(where, block))
        elif kind == "image" and role == "user":
            msg.setdefault("images", []).append(_image(where, block))
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(where, block, names))
        elif kind == "tool_use" and role == "assistant":
            msg.setdefault("tool_calls", []).append(_tool_use(where, block, names))
        elif kind == "thinking" and role == "assistant":
            if isinstance(block.get("thinking"), str):
                msg["thinking"] = msg.get("thinking", "") + block["thinking"]
        elif kind != "redacted_thinking":  # opaque: nothing a local model can read
            raise _bad(f"{where}.type", f"{kind!r} blocks are not supported here")
    msg["content"] = "\n".join(texts)
    keep = role == "assistant" or msg["content"] or "images" in msg or not results
    return [*results, msg] if keep else results


def _system(body: dict[str, Any]) -> list[dict[str, Any]]:
    system = body.get("system")
    if system is None:
        return []
    text = _text_blocks("system", system)
    return [{"role": "system", "content": text}] if text else []


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = _get(body, "tools", list, "a valid list")
    native = []
    for i, tool in enumerate(tools or []):
        param = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _bad(param, "Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            raise _bad(f"{param}.type", f"{tool.get('type')!r} tools need Anthropic's servers")
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not name:
            raise _bad(f"{param}.name", "Field required")
        if not isinstance(schema, dict):
            raise _bad(f"{param}.input_schema", "Field required")
        fn: dict[str, Any] = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str):
            fn = {"name": name, "description": tool["description"], "parameters": schema}
        native.append({"type": "function", "function": fn})
    return native


def _tool_choice(body: dict[str, Any], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama has no tool_choice: "none" drops the tools, "tool" narrows them to the named one,
    "any" can only offer them all (README says so)."""
    choice = _get(body, "tool_choice", dict, "a valid dictionary")
    kind = None if choice is None else choice.get("type")
    if kind in (None, "auto", "any"):
        return tools
    if kind == "none":
        return []
    if kind != "tool":
        raise _bad("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    assert choice is not None
    chosen = [t for t in tools if t["function"]["name"] == choice.get("name")]
    if not chosen:
        raise _bad("tool_choice.name", "names no tool in 'tools'")
    return chosen


def _think(body: dict[str, Any], config: dict[str, Any]) -> bool | str | None:
    thinking = _get(body, "thinking", dict, "a valid dictionary")
    kind = None if thinking is None else thinking.get("type")
    if kind not in (None, "enabled", "disabled", "adaptive"):
        raise _bad("thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'")
    if kind == "disabled":
        return False
    effort = config.get("effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise _bad("output_config.effort", f"Input should be one of {', '.join(_EFFORTS)}")
        return _EFFORTS[effort]
    # `adaptive` = the model decides: the node's default (thinking models think, api-ref 1.5).
    return True if kind == "enabled" else None


def _format(config: dict[str, Any]) -> object:
    """`output_config.format` (structured outputs) → native `format`."""
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _bad("output_config.format.type", "Input should be 'json_schema'")
    if not isinstance(fmt.get("schema"), dict):
        raise _bad("output_config.format.schema", "Field required")
    return fmt["schema"]


def _parse(body: dict[str, Any], *, count: bool) -> MessagesRequest:
    model = _get(body, "model", str, "a valid string")
    if not model:
        raise _bad("model", "Field required")
    max_tokens = _get(body, "max_tokens", int, "a valid integer")
    if max_tokens is None and not count:
        raise _bad("max_tokens", "Field required")
    if max_tokens is not None and max_tokens < 1:
        raise _bad("max_tokens", "Input should be greater than or equal to 1")
    messages = _get(body, "messages", list, "a valid list")
    if not messages:
        raise _bad("messages", "Field required" if messages is None else "at least one message")
    names: dict[str, str] = {}
    native = _system(body)
    for i, m in enumerate(messages):
        native += _turn(f"messages.{i}", m, names)
    stop = _get(body, "stop_sequences", list, "a valid list") or []
    if not all(isinstance(s, str) for s in stop):
        raise _bad("stop_sequences", "Input should be a list of strings")
    metadata = _get(body, "metadata", dict, "a valid dictionary") or {}
    user = metadata.get("user_id")
    config = _get(body, "output_config", dict, "a valid dictionary") or {}
    return MessagesRequest(
        model=model,
        messages=tuple(native),
        tools=tuple(_tool_choice(body, _tools(body))),
        max_tokens=max_tokens,
        stop_sequences=tuple(s for s in stop if s),  # "" would stop at once on llama.cpp
        temperature=_number(body, "temperature", 0, 1),
        top_p=_number(body, "top_p", 0, 1),
        top_k=_get(body, "top_k", int, "a valid integer"),
        think=_think(body, config),
        format=_format(config),
        stream=bool(_get(body, "stream", bool, "a valid boolean")),
        user=user if isinstance(user, str) else None,
    )


def parse_messages(body: dict[str, Any]) -> MessagesRequest:
    """`POST /v1/messages`."""
    return _parse(body, count=False)


def parse_count_tokens(body: dict[str, Any]) -> MessagesRequest:
    """`POST /v1/messages/count_tokens`: the same body without `max_tokens`."""
    return _parse(body, count=True)
