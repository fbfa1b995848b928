"""OpenAI request bodies → validated, frozen request objects.

Checks follow the OpenAI API: wrong types and out-of-range values are a 400 naming the
`param`; unknown fields are ignored. Nothing here knows about Ollama.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from router.errors import BadRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_STOP = 4
_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})


@dataclass(frozen=True, slots=True)
class Sampling:
    """Generation settings shared by chat and completions (None = not given)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[dict[str, Any], ...]
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False
    response_format: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] | None = None
    tool_choice: object = None
    reasoning_effort: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    prompt: str
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False
    suffix: str | None = None
    user: str | None = None


def load_json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest(
            "We could not parse the JSON body of your request. The API expects a "
            "JSON object in the request body.",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise BadRequest(
            f"The request body must be a JSON object, got {_type_name(data)}.", code="invalid_json"
        )
    return data


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong_type(param: str, expected: str, value: object) -> BadRequest:
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _number(body: dict[str, Any], param: str, lo: float, hi: float) -> float | None:
    value = body.get(param)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(param, "a decimal", value)
    if not lo <= value <= hi:
        raise BadRequest(
            f"Invalid '{param}': expected a value between {lo:g} and {hi:g}, but "
            f"got {value} instead.",
            param=param,
            code="invalid_value",
        )
    return float(value)


def _integer(body: dict[str, Any], param: str, lo: int | None = None) -> int | None:
    value = body.get(param)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(param, "an integer", value)
    if lo is not None and value < lo:
        raise BadRequest(
            f"Invalid '{param}': expected a value >= {lo}, but got {value} instead.",
            param=param,
            code="invalid_value",
        )
    return value


def _boolean(body: dict[str, Any], param: str) -> bool:
    value = body.get(param)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong_type(param, "a boolean", value)
    return value


def _string(body: dict[str, Any], param: str) -> str | None:
    value = body.get(param)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong_type(param, "a string", value)
    return value


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise BadRequest(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    if not isinstance(model, str):
        raise _wrong_type("model", "a string", model)
    return model


def _stop(body: dict[str, Any]) -> tuple[str, ...] | None:
    value = body.get("stop")
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _wrong_type("stop", "a string or an array of strings", value)
    if len(value) > MAX_STOP:
        raise BadRequest(
            f"Invalid 'stop': expected an array with maximum length {MAX_STOP}, "
            f"but got an array with length {len(value)} instead.",
            param="stop",
            code="invalid_value",
        )
    # An empty stop string would end generation at once on llama.cpp; OpenAI ignores it.
    return tuple(s for s in value if s) or None


def _sampling(body: dict[str, Any], *, chat: bool) -> Sampling:
    max_tokens = _integer(body, "max_tokens", 1)
    if chat:
        # Newer SDK users send max_completion_tokens; Ollama's own layer ignores it (pitfall 17).
        max_tokens = _integer(body, "max_completion_tokens", 1) or max_tokens
    return Sampling(
        temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0, 1),
        max_tokens=max_tokens,
        stop=_stop(body),
        seed=_integer(body, "seed"),
        presence_penalty=_number(body, "presence_penalty", -2, 2),
        frequency_penalty=_number(body, "frequency_penalty", -2, 2),
    )


def _stream(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = _boolean(body, "stream")
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict):
        raise _wrong_type("stream_options", "an object", options)
    if not stream:
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    include_usage = options.get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise _wrong_type("stream_options.include_usage", "a boolean", include_usage)
    return stream, bool(include_usage)


def _single_choice(body: dict[str, Any], param: str) -> None:
    value = _integer(body, param, 1)
    if value is not None and value != 1:
        raise BadRequest(
            f"'{param}' > 1 is not supported by this router.", param=param, code="unsupported_value"
        )


def _message(i: int, message: object) -> dict[str, Any]:
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
        raise _wrong_type(param, "an object", message)
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
        raise _wrong_type(f"{param}.content", "a string or an array of content parts", content)
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise _wrong_type(f"{param}.tool_calls", "an array", tool_calls)
    return message


def _content_part(param: str, part: object) -> None:
    if not isinstance(part, dict):
        raise _wrong_type(param, "an object", part)
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise _wrong_type(f"{param}.text", "a string", part.get("text"))
    elif kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise _wrong_type(f"{param}.image_url.url", "a string", url)
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


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    value = body.get("response_format")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _wrong_type("response_format", "an object", value)
    kind = value.get("type")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise _wrong_type(
                "response_format.json_schema", "an object with a 'schema' object", spec
            )
    elif kind not in ("text", "json_object"):
        raise BadRequest(
            "Invalid value for 'response_format.type': expected one of 'text', "
            "'json_object', 'json_schema'.",
            param="response_format.type",
            code="invalid_value",
        )
    return value


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise BadRequest(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array", messages)
    if not messages:
        raise BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
    parsed = tuple(_message(i, m) for i, m in enumerate(messages))
    _single_choice(body, "n")
    stream, include_usage = _stream(body)
    tools = body.get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        raise _wrong_type("tools", "an array of objects", tools)
    effort = _string(body, "reasoning_effort")
    return ChatRequest(
        model=model,
        messages=parsed,
        sampling=_sampling(body, chat=True),
        stream=stream,
        include_usage=include_usage,
        response_format=_response_format(body),
        tools=tuple(tools) if tools else None,
        tool_choice=body.get("tool_choice"),
        reasoning_effort=effort,
        user=_string(body, "user"),
    )


def parse_completion(body: dict[str, Any]) -> CompletionRequest:
    model = _model(body)
    prompt = body.get("prompt")
    if prompt is None:
        raise BadRequest(
            "Missing required parameter: 'prompt'.",
            param="prompt",
            code="missing_required_parameter",
        )
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise BadRequest(
                "Invalid 'prompt': this router accepts a string or an array of exactly one string.",
                param="prompt",
                code="invalid_value",
            )
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _wrong_type("prompt", "a string", prompt)
    if not prompt:  # Ollama reads an empty prompt as "load the model" and generates nothing
        raise BadRequest(
            "Invalid 'prompt': it must not be empty.", param="prompt", code="invalid_value"
        )
    _single_choice(body, "n")
    _single_choice(body, "best_of")
    stream, include_usage = _stream(body)
    return CompletionRequest(
        model=model,
        prompt=prompt,
        sampling=_sampling(body, chat=False),
        stream=stream,
        include_usage=include_usage,
        suffix=_string(body, "suffix"),
        user=_string(body, "user"),
    )
