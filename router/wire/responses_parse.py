"""OpenAI Responses request bodies → a validated, frozen request in Ollama's `/api/chat` terms.

The router is stateless: whatever needs a stored response or conversation (`previous_response_id`,
`store: true`, `conversation`, `background`, `item_reference`) is a 400 naming the field, never a
silent drop (api-reference.md 5.2, pitfall 34). `input` items become native messages here, so
`responses.py` only adds options. Checks and texts follow router.wire.openai.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router.errors import BadRequest
from router.wire.fields import number, wrong_type
from router.wire.responses_input import input_messages

# `reasoning.effort` → native `think` (api-reference.md 2.1; as chat's reasoning_effort).
THINK: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "max",
    "max": "max",
}
_STATEFUL = {
    "previous_response_id": "it does not store responses, so 'previous_response_id' cannot "
    "refer to one. Send the whole conversation in 'input' instead.",
    "conversation": "it does not store conversations. Send the whole conversation in 'input' "
    "instead.",
}


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    model: str
    messages: tuple[dict[str, Any], ...]  # native messages, instructions first
    tools: tuple[dict[str, Any], ...]  # native tools, already narrowed by tool_choice
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    format: object = None  # native `format`: None, "json" or a JSON-Schema object
    think: bool | str | None = None
    stream: bool = False
    user: str | None = None
    # The request fields a Response object repeats (`instructions`, `tools`, `text`, ...).
    echo: dict[str, Any] | None = None


def _stateless(body: dict[str, Any]) -> None:
    for param, why in _STATEFUL.items():
        if body.get(param) is not None:
            raise BadRequest(
                f"This router is stateless: {why}", param=param, code="unsupported_parameter"
            )
    # The SDK sends `store` only when the caller sets it, so an absent one is the normal case;
    # an explicit true asks for something the router cannot do (issue 13).
    if body.get("store") is True:
        raise BadRequest(
            "This router is stateless: it cannot store responses. Leave 'store' unset or "
            "send 'store': false.",
            param="store",
            code="unsupported_parameter",
        )
    if body.get("background") is True:
        raise BadRequest(
            "This router is stateless: background responses (which are stored and polled) "
            "are not supported.",
            param="background",
            code="unsupported_parameter",
        )


def _typed(body: dict[str, Any], param: str, kind: type, expected: str) -> Any:
    value = body.get(param)
    if value is not None and not isinstance(value, kind):
        raise wrong_type(param, expected, value)
    return value


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_output_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type("max_output_tokens", "an integer", value)
    if value < 1:
        raise BadRequest(
            f"Invalid 'max_output_tokens': expected a value >= 1, but got {value} instead.",
            param="max_output_tokens",
            code="invalid_value",
        )
    return value


def _tools(value: object) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Responses' flat function tools → (the tools as given, native tools)."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise wrong_type("tools", "an array", value)
    given, native = [], []
    for j, tool in enumerate(value):
        param = f"tools[{j}]"
        if not isinstance(tool, dict):
            raise wrong_type(param, "an object", tool)
        if tool.get("type") != "function":
            raise BadRequest(
                f"Invalid '{param}.type': only 'function' tools are supported by this router "
                f"(got {tool.get('type')!r}; hosted tools need OpenAI's servers).",
                param=f"{param}.type",
                code="unsupported_value",
            )
        name, params = tool.get("name"), tool.get("parameters")
        if not isinstance(name, str) or not name:
            raise BadRequest(
                f"Missing required parameter: '{param}.name'.",
                param=f"{param}.name",
                code="missing_required_parameter",
            )
        if params is not None and not isinstance(params, dict):
            raise wrong_type(f"{param}.parameters", "an object", params)
        fn: dict[str, Any] = {"name": name}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        fn["parameters"] = params or {"type": "object", "properties": {}}
        given.append(tool)
        native.append({"type": "function", "function": fn})
    return given, native


def _tool_choice(choice: object, native: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama has no tool_choice: "none" drops the tools, a named function (or an allowed_tools
    list) narrows them to those, "required" can only offer them all (README says so)."""
    if choice is None or choice in ("auto", "required"):
        return native
    if choice == "none":
        return []
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function":
        names = {choice.get("name")} if isinstance(choice, dict) else set()
    elif kind == "allowed_tools" and isinstance(choice, dict):
        allowed = choice.get("tools")
        if not isinstance(allowed, list):
            raise wrong_type("tool_choice.tools", "an array", allowed)
        names = {t.get("name") for t in allowed if isinstance(t, dict)}
    else:
        raise BadRequest(
            "Invalid 'tool_choice': expected 'none', 'auto', 'required', a function "
            "({'type': 'function', 'name': ...}) or 'allowed_tools'.",
            param="tool_choice",
            code="invalid_value",
        )
    chosen = [t for t in native if t["function"]["name"] in names]
    if len(chosen) != len(names):
        raise BadRequest(
            "Invalid 'tool_choice': it names a function that is not in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )
    return chosen


def _format(body: dict[str, Any]) -> tuple[object, dict[str, Any]]:
    """`text.format` → (native format, the `text` the answer repeats)."""
    text = _typed(body, "text", dict, "an object") or {}
    fmt = text.get("format")
    if fmt is None:
        return None, {**text, "format": {"type": "text"}}
    if not isinstance(fmt, dict):
        raise wrong_type("text.format", "an object", fmt)
    kind = fmt.get("type")
    if kind == "text":
        return None, text
    if kind == "json_object":
        return "json", text
    if kind != "json_schema":
        raise BadRequest(
            "Invalid value for 'text.format.type': expected one of 'text', 'json_object', "
            "'json_schema'.",
            param="text.format.type",
            code="invalid_value",
        )
    for field, want in (("name", str), ("schema", dict)):
        if not isinstance(fmt.get(field), want):
            raise BadRequest(
                f"Missing required parameter: 'text.format.{field}'.",
                param=f"text.format.{field}",
                code="missing_required_parameter",
            )
    return fmt["schema"], text


def _think(body: dict[str, Any]) -> tuple[bool | str | None, dict[str, Any] | None]:
    reasoning = _typed(body, "reasoning", dict, "an object")
    if reasoning is None:
        return None, None
    effort = reasoning.get("effort")
    if effort is None:
        return None, reasoning
    if not isinstance(effort, str) or effort not in THINK:
        raise BadRequest(
            f"Invalid value for 'reasoning.effort': {effort!r}. Expected one of "
            f"{', '.join(THINK)}.",
            param="reasoning.effort",
            code="invalid_value",
        )
    return THINK[effort], reasoning


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    metadata = _typed(body, "metadata", dict, "an object") or {}
    if not all(isinstance(v, str) for v in metadata.values()):
        raise wrong_type("metadata", "an object of strings", metadata)
    return dict(metadata)


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not model:
        raise BadRequest(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    if not isinstance(model, str):
        raise wrong_type("model", "a string", model)
    return model


def parse_responses(body: dict[str, Any]) -> ResponsesRequest:
    _stateless(body)
    model = _model(body)
    instructions = _typed(body, "instructions", str, "a string")
    messages = input_messages(body.get("input"), instructions)
    given, native = _tools(body.get("tools"))
    tool_choice = body.get("tool_choice")
    tools = _tool_choice(tool_choice, native)
    fmt, text = _format(body)
    think, reasoning = _think(body)
    temperature, top_p = number(body, "temperature", 0, 2), number(body, "top_p", 0, 1)
    max_output_tokens = _max_tokens(body)
    parallel = _typed(body, "parallel_tool_calls", bool, "a boolean")
    user = _typed(body, "user", str, "a string")
    # The fields a Response repeats; temperature and top_p as the node was asked (OpenAI's
    # defaults, not the Modelfile's, as for chat).
    echo = {
        "instructions": instructions,
        "max_output_tokens": max_output_tokens,
        "metadata": _metadata(body),
        "parallel_tool_calls": True if parallel is None else parallel,
        "previous_response_id": None,
        "reasoning": reasoning,
        "temperature": 1.0 if temperature is None else temperature,
        "text": text,
        "tool_choice": "auto" if tool_choice is None else tool_choice,
        "tools": given,
        "top_p": 1.0 if top_p is None else top_p,
        "truncation": _typed(body, "truncation", str, "a string") or "disabled",
        "user": user,
    }
    return ResponsesRequest(
        model=model,
        messages=tuple(messages),
        tools=tuple(tools),
        temperature=temperature,
        top_p=top_p,
        max_output_tokens=max_output_tokens,
        format=fmt,
        think=think,
        stream=bool(_typed(body, "stream", bool, "a boolean")),
        user=user,
        echo=echo,
    )
