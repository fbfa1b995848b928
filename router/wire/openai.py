"""OpenAI's shapes: request bodies → validated, frozen request objects, and the error object.

Checks follow the OpenAI API: wrong types and out-of-range values are a 400 naming the
`param`; unknown fields are ignored. The typed field getters are in `router.wire.fields`,
the checks of one chat message in `router.wire.messages`.
Nothing here knows about Ollama.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router.errors import BadRequest
from router.wire.choices import parse_best_of, parse_n
from router.wire.fields import boolean, integer, number, string, wrong_type
from router.wire.fields import load_json as load_json  # re-exported: part of parsing a request
from router.wire.logprobs import (
    OFF,
    LogprobRequest,
    parse_chat_logprobs,
    parse_completion_logprobs,
)
from router.wire.messages import check_message
from router.wire.toolchoice import ToolPlan, plan_tools

MAX_STOP = 4


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
    n: int = 1
    logprobs: LogprobRequest = OFF
    parallel_tool_calls: bool | None = None

    def tool_plan(self) -> ToolPlan:
        """What Ollama gets for `tools`/`tool_choice`/`parallel_tool_calls` (checked when the
        request was parsed, so it raises nothing here)."""
        return plan_tools(self.tools, self.tool_choice, self.parallel_tool_calls)

    @property
    def plain(self) -> bool:
        """One choice, no logprobs, no cap on calls: the single-choice fast path serves it."""
        return self.n == 1 and not self.logprobs.enabled and self.parallel_tool_calls is not False


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    prompt: str
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False
    suffix: str | None = None
    user: str | None = None
    n: int = 1
    logprobs: LogprobRequest = OFF

    @property
    def plain(self) -> bool:
        return self.n == 1 and not self.logprobs.enabled


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise BadRequest(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    if not isinstance(model, str):
        raise wrong_type("model", "a string", model)
    return model


def _stop(body: dict[str, Any]) -> tuple[str, ...] | None:
    value = body.get("stop")
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise wrong_type("stop", "a string or an array of strings", value)
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
    max_tokens = integer(body, "max_tokens", 1)
    if chat:
        # Newer SDK users send max_completion_tokens; Ollama's own layer ignores it (pitfall 17).
        max_tokens = integer(body, "max_completion_tokens", 1) or max_tokens
    return Sampling(
        temperature=number(body, "temperature", 0, 2),
        top_p=number(body, "top_p", 0, 1),
        max_tokens=max_tokens,
        stop=_stop(body),
        seed=integer(body, "seed"),
        presence_penalty=number(body, "presence_penalty", -2, 2),
        frequency_penalty=number(body, "frequency_penalty", -2, 2),
    )


def _stream(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = boolean(body, "stream")
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict):
        raise wrong_type("stream_options", "an object", options)
    if not stream:
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    include_usage = options.get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise wrong_type("stream_options.include_usage", "a boolean", include_usage)
    return stream, bool(include_usage)


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    value = body.get("response_format")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise wrong_type("response_format", "an object", value)
    kind = value.get("type")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise wrong_type(
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
        raise wrong_type("messages", "an array", messages)
    if not messages:
        raise BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
    parsed = tuple(check_message(i, m) for i, m in enumerate(messages))
    stream, include_usage = _stream(body)
    tools = body.get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        raise wrong_type("tools", "an array of objects", tools)
    effort = string(body, "reasoning_effort")
    parallel = body.get("parallel_tool_calls")
    plan_tools(tools, body.get("tool_choice"), parallel)  # a bad tool_choice is a 400 now
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
        user=string(body, "user"),
        n=parse_n(body),
        logprobs=parse_chat_logprobs(body),
        parallel_tool_calls=parallel,
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
        raise wrong_type("prompt", "a string", prompt)
    if not prompt:  # Ollama reads an empty prompt as "load the model" and generates nothing
        raise BadRequest(
            "Invalid 'prompt': it must not be empty.", param="prompt", code="invalid_value"
        )
    n = parse_n(body)
    parse_best_of(body, n)
    stream, include_usage = _stream(body)
    return CompletionRequest(
        model=model,
        prompt=prompt,
        sampling=_sampling(body, chat=False),
        stream=stream,
        include_usage=include_usage,
        suffix=string(body, "suffix"),
        user=string(body, "user"),
        n=n,
        logprobs=parse_completion_logprobs(body),
    )
