"""From a Go-typed body to one frozen `GenRequest`, plus the runner-side checks.

Pure. The checks are split by the point where Ollama makes them, because that decides the status:
decoding and names are 400/404 in the handler, options are 500 at scheduling
(`Options.FromMap`), `format` is 500 inside the runner (`llm/llama_server.go`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .catalog import display_name, is_valid_name
from .gojson import CHAT_REQUEST, GENERATE_REQUEST, GoStruct, WireError, go_quote
from .textgen import prompt_eval_count

MAX_TOP_LOGPROBS = 20
CHAT = "chat"
GENERATE = "generate"
SPECS: dict[str, GoStruct] = {CHAT: CHAT_REQUEST, GENERATE: GENERATE_REQUEST}

_INT_OPTIONS = frozenset(
    {"num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx", "num_batch"}
    | {"num_gpu", "main_gpu", "num_thread"}
)
_FLOAT_OPTIONS = frozenset(
    {"temperature", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty"}
    | {"frequency_penalty"}
)
_BOOL_OPTIONS = frozenset({"use_mmap", "numa"})


@dataclass(frozen=True, slots=True)
class Options:
    seed: int = -1
    num_predict: int | None = None
    stop: tuple[str, ...] = ()
    num_ctx: int | None = None


@dataclass(frozen=True, slots=True)
class GenRequest:
    kind: str  # CHAT or GENERATE
    model: str  # as sent, echoed back
    key: str  # display name, the catalogue key
    stream: bool
    prompt: str  # the text the reply is derived from
    units: tuple[str, ...]  # prompt pieces for the prefix cache (messages, or prompt lines)
    prompt_tokens: int
    is_load: bool  # empty messages / prompt: load (or unload) only
    keep_alive_s: float | None  # None = not given; math.inf = forever
    options_raw: dict[str, Any]
    format_raw: Any
    think: bool | str | None  # None or False = no thinking; absent on a thinking model = True
    raw: bool
    tools: tuple[dict[str, Any], ...] = ()
    last_role: str = "user"  # of the last message (chat); tool calls answer a user turn only
    last_text: str = ""
    logprobs: bool = False
    top_logprobs: int = 0
    truncate: bool = True


def check_model(kind: str, typed: dict[str, Any]) -> str:
    """Return the display key or raise 400/404 like `ChatHandler`/`GenerateHandler`."""
    model = typed.get("model", "")
    if not model:
        if kind == CHAT:
            raise WireError(400, "model is required")
        raise WireError(404, "model '' not found")
    if not is_valid_name(model):
        raise WireError(400, "invalid model name")
    return display_name(model)


def check_top_logprobs(typed: dict[str, Any]) -> None:
    """The handlers' first check after decoding (`server/routes.go`)."""
    if not 0 <= typed.get("top_logprobs", 0) <= MAX_TOP_LOGPROBS:
        raise WireError(400, "top_logprobs must be between 0 and 20")


def build_request(kind: str, typed: dict[str, Any], key: str, thinking: bool = False) -> GenRequest:
    """Assemble the request; raises the handler-level 400s (raw mode, thinking).

    `thinking`: the model has the capability, so an absent `think` means true."""
    model: str = typed["model"]
    if kind == CHAT:
        messages: list[dict[str, Any]] = typed.get("messages", [])
        contents = [m.get("content", "") for m in messages]
        prompt = "\n".join(contents)
        units = tuple(f"{m.get('role', '')}\0{m.get('content', '')}" for m in messages)
        count = prompt_eval_count(contents)
        is_load = not messages
        raw = False
    else:
        raw = bool(typed.get("raw", False))
        if raw and (typed.get("template") or typed.get("system") or typed.get("context")):
            raise WireError(400, "raw mode does not support template, system, or context")
        text, suffix = typed.get("prompt", ""), typed.get("suffix", "")
        prompt = f"{text}\n{suffix}" if suffix else text
        system = typed.get("system", "")
        units = tuple(([system] if system else []) + text.split("\n"))
        count = prompt_eval_count([f"{system} {prompt}"], per_message=0 if raw else 4)
        is_load = text == ""
    think = typed.get("think")
    if thinking:
        think = True if think is None else think
    elif think is not None and think is not False:
        raise WireError(400, f"{go_quote(model)} does not support thinking")
    last = typed.get("messages", [{}])[-1] if kind == CHAT and not is_load else {}
    return GenRequest(
        kind=kind,
        model=model,
        key=key,
        stream=typed.get("stream", True),
        prompt=prompt,
        units=units,
        prompt_tokens=count,
        is_load=is_load,
        keep_alive_s=typed.get("keep_alive"),
        options_raw=typed.get("options", {}),
        format_raw=typed.get("format"),
        think=think if think is not False else None,
        raw=raw,
        tools=tuple(typed.get("tools", ())) if kind == CHAT else (),
        last_role=last.get("role", "user"),
        last_text=last.get("content", "") if kind == CHAT else prompt,
        logprobs=typed.get("logprobs", False),
        top_logprobs=typed.get("top_logprobs", 0),
        truncate=typed.get("truncate", True),
    )


def parse_options(raw: dict[str, Any]) -> Options:
    """`api.Options.FromMap`: wrong JSON types are a 500; unknown keys are ignored."""
    seed, num_predict, stop, num_ctx = -1, None, (), None
    for key, value in raw.items():
        if value is None:
            continue
        if key in _INT_OPTIONS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise WireError(500, f"option {go_quote(key)} must be of type integer")
            if key == "seed":
                seed = int(value)
            elif key == "num_predict":
                num_predict = int(value)
            elif key == "num_ctx":
                num_ctx = int(value)
        elif key in _FLOAT_OPTIONS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise WireError(500, f"option {go_quote(key)} must be of type float32")
        elif key in _BOOL_OPTIONS:
            if not isinstance(value, bool):
                raise WireError(500, f"option {go_quote(key)} must be of type boolean")
        elif key == "stop":
            if not isinstance(value, list):
                raise WireError(500, 'option "stop" must be of type array')
            if not all(isinstance(s, str) for s in value):
                raise WireError(500, 'option "stop" must be of type array of strings')
            stop = tuple(value)
    # Ollama: -1 = unbounded, -2 = fill the context; both mean "no limit" here.
    if num_predict is not None and num_predict < 0:
        num_predict = None
    return Options(seed=seed, num_predict=num_predict, stop=stop, num_ctx=num_ctx)


def parse_format(value: Any) -> Any:
    """None, "json" or a schema dict; anything else is the runner's 500."""
    if value is None or value == "":
        return None
    if value == "json" or isinstance(value, dict):
        return value
    shown = go_quote(orjson.dumps(value).decode())
    raise WireError(500, f'invalid format: {shown}; expected "json" or a valid JSON Schema object')
