"""Responses `input` (a string or a list of items) → native `/api/chat` messages.

Items (api-reference.md 5.1): messages (`type` optional) with `input_text`, `input_image` and,
in replayed assistant turns, `output_text`/`refusal` parts; `function_call` (joined onto the
assistant message before it, as one native message with several `tool_calls`);
`function_call_output` (a `tool` message named after its call); `reasoning` (raw `reasoning_text`
content becomes the next assistant message's `thinking`, summaries are dropped). Anything that
needs stored state or OpenAI's hosted tools is a 400 naming the item.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import BadRequest
from router.wire.fields import wrong_type

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text"})


def _required(param: str) -> BadRequest:
    return BadRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def arguments_object(param: str, arguments: object) -> dict[str, Any]:
    """A function call's `arguments` JSON string → the object Ollama wants."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str):
        raise wrong_type(param, "a JSON string", arguments)
    try:
        value = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        raise BadRequest(
            f"Invalid '{param}': not valid JSON.", param=param, code="invalid_value"
        ) from None
    if not isinstance(value, dict):  # Ollama decodes only an object here
        raise BadRequest(
            f"Invalid '{param}': expected a JSON object.", param=param, code="invalid_value"
        )
    return value


def _image(param: str, part: dict[str, Any]) -> str:
    url = part.get("image_url")
    if not isinstance(url, str):
        what = "file ids" if part.get("file_id") is not None else "images without 'image_url'"
        raise BadRequest(
            f"Invalid '{param}': {what} are not supported; send the image as a base64 data URL.",
            param=f"{param}.image_url",
            code="invalid_value",
        )
    if not url.startswith("data:") or ";base64," not in url:
        raise BadRequest(
            "Only base64 data URLs (data:image/...;base64,...) are supported for images by Ollama.",
            param=f"{param}.image_url",
            code="invalid_value",
        )
    return url.split(";base64,", 1)[1]  # Ollama wants bare base64 (pitfall 15)


def _content(param: str, content: object) -> tuple[str, list[str]]:
    """A string or a list of parts → (text, bare base64 images)."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise wrong_type(param, "a string or an array of content parts", content)
    texts: list[str] = []
    images: list[str] = []
    for k, part in enumerate(content):
        where = f"{param}[{k}]"
        if not isinstance(part, dict):
            raise wrong_type(where, "an object", part)
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            if not isinstance(part.get("text"), str):
                raise wrong_type(f"{where}.text", "a string", part.get("text"))
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        elif kind == "input_image":
            images.append(_image(where, part))
        else:
            raise BadRequest(
                f"Invalid value for '{where}.type': {kind!r} is not supported by this router "
                "(use 'input_text' or 'input_image').",
                param=f"{where}.type",
                code="invalid_value",
            )
    return "\n".join(texts), images


class _Builder:
    """Native messages in order, with the state that joins items into messages."""

    def __init__(self) -> None:
        self.out: list[dict[str, Any]] = []
        self.names: dict[str, str] = {}  # call_id → function name, for tool messages
        self.thinking: list[str] = []  # replayed reasoning, for the next assistant turn

    def _assistant(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.thinking:
            msg["thinking"] = "".join(self.thinking)
            self.thinking = []
        self.out.append(msg)
        return msg

    def message(self, param: str, item: dict[str, Any]) -> None:
        role = item.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise BadRequest(
                f"Invalid value for '{param}.role': expected one of user, assistant, system, "
                "developer.",
                param=f"{param}.role",
                code="invalid_value",
            )
        if "content" not in item:
            raise _required(f"{param}.content")
        text, images = _content(f"{param}.content", item["content"])
        msg: dict[str, Any] = {"role": _ROLES[role], "content": text}
        if images:
            msg["images"] = images
        if msg["role"] == "assistant":
            self._assistant(msg)
        else:
            self.thinking = []  # reasoning belongs to the assistant turn right after it
            self.out.append(msg)

    def function_call(self, param: str, item: dict[str, Any]) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not call_id:
            raise _required(f"{param}.call_id")
        if not isinstance(name, str) or not name:
            raise _required(f"{param}.name")
        args = arguments_object(f"{param}.arguments", item.get("arguments"))
        call = {"id": call_id, "function": {"name": name, "arguments": args}}
        self.names[call_id] = name
        last = self.out[-1] if self.out else None
        if last is not None and last["role"] == "assistant":  # the same turn: one message
            if self.thinking and "thinking" not in last:
                last["thinking"] = "".join(self.thinking)
            self.thinking = []
            last.setdefault("tool_calls", []).append(call)
        else:
            self._assistant({"role": "assistant", "content": "", "tool_calls": [call]})

    def function_call_output(self, param: str, item: dict[str, Any]) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise _required(f"{param}.call_id")
        if "output" not in item:
            raise _required(f"{param}.output")
        text, images = _content(f"{param}.output", item["output"])
        msg: dict[str, Any] = {"role": "tool", "content": text, "tool_call_id": call_id}
        if call_id in self.names:
            msg["tool_name"] = self.names[call_id]
        if images:
            msg["images"] = images
        self.out.append(msg)

    def reasoning(self, item: dict[str, Any]) -> None:
        # Only raw reasoning text is replayed (what this router's answers carry); summaries and
        # another service's encrypted_content mean nothing to the model.
        content = item.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    self.thinking.append(part["text"])

    def item(self, param: str, item: object) -> None:
        if not isinstance(item, dict):
            raise wrong_type(param, "an object", item)
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"  # the Agents SDK sends {"role", "content"} without a type
        if kind == "message":
            self.message(param, item)
        elif kind == "function_call":
            self.function_call(param, item)
        elif kind == "function_call_output":
            self.function_call_output(param, item)
        elif kind == "reasoning":
            self.reasoning(item)
        elif kind == "item_reference":
            raise BadRequest(
                f"This router is stateless: '{param}' refers to a stored item, which it does "
                "not have. Send the item itself.",
                param=param,
                code="unsupported_value",
            )
        else:
            raise BadRequest(
                f"Invalid value for '{param}.type': {kind!r} is not supported by this router "
                "(supported: message, function_call, function_call_output, reasoning).",
                param=f"{param}.type",
                code="invalid_value",
            )


def input_messages(value: object, instructions: str | None) -> list[dict[str, Any]]:
    if value is None:
        raise _required("input")
    builder = _Builder()
    if instructions:
        builder.out.append({"role": "system", "content": instructions})
    if isinstance(value, str):
        builder.out.append({"role": "user", "content": value})
        return builder.out
    if not isinstance(value, list):
        raise wrong_type("input", "a string or an array of input items", value)
    for i, item in enumerate(value):
        builder.item(f"input[{i}]", item)
    if not any(m["role"] != "system" for m in builder.out):
        raise BadRequest(
            "Invalid 'input': it holds no message to answer.", param="input", code="invalid_value"
        )
    return builder.out
