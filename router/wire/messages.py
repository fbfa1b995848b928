"""One OpenAI chat message, checked: its role, its content (a string or text and image parts)
and the type of its tool calls. A bad one is a `BadRequest` naming e.g. `messages[2].role`."""

from __future__ import annotations

from typing import Any

from router.errors import BadRequest
from router.wire.fields import wrong_type

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})


def check_message(i: int, message: object) -> dict[str, Any]:
    if (
        type(message) is dict
        and type(message.get("role")) is str
        and message["role"] in _PLAIN_ROLES
        and type(message.get("content")) is str
        and message.get("tool_calls") is None
    ):
        return message  # the common case, valid as it is (the checks below say the same)
    param = f"messages[{i}]"
    if not isinstance(message, dict):
        raise wrong_type(param, "an object", message)
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise BadRequest(
            f"Invalid value for '{param}.role': expected one of {', '.join(sorted(ROLES))}.",
            param=f"{param}.role",
            code="invalid_value",
        )
    content = message.get("content")
    if content is None:
        if not (role == "assistant" and message.get("tool_calls")):
            raise BadRequest(
                f"Missing required parameter: '{param}.content'.",
                param=f"{param}.content",
                code="missing_required_parameter",
            )
    elif isinstance(content, list):
        for j, part in enumerate(content):
            _content_part(f"{param}.content[{j}]", part)
    elif not isinstance(content, str):
        raise wrong_type(f"{param}.content", "a string or an array of content parts", content)
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise wrong_type(f"{param}.tool_calls", "an array", tool_calls)
    return message


def _content_part(param: str, part: object) -> None:
    if not isinstance(part, dict):
        raise wrong_type(param, "an object", part)
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise wrong_type(f"{param}.text", "a string", part.get("text"))
    elif kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise wrong_type(f"{param}.image_url.url", "a string", url)
        if not url.startswith("data:") or ";base64," not in url:
            raise BadRequest(
                "Only base64 data URLs (data:image/...;base64,...) are supported "
                "for images by Ollama.",
                param=f"{param}.image_url.url",
                code="invalid_value",
            )
    else:
        raise BadRequest(
            f"Invalid value for '{param}.type': supported types are 'text' and 'image_url'.",
            param=f"{param}.type",
            code="invalid_value",
        )
