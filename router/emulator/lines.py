"""Byte encoders for Ollama's response lines, in Go struct key order (api-reference 1.11).

Pure apart from `WallClock`, which reads the time. Token lines are the hot path, so they are
glued from pre-encoded pieces instead of going through a dict and `orjson.dumps` each time.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from .parse import CHAT

_METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


class WallClock:
    """RFC 3339 UTC timestamps with Go's trailing-zero-trimmed nanoseconds."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format_ns(self, ns: int) -> str:
        second, frac = divmod(ns, 1_000_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        if frac == 0:
            return self._prefix + "Z"
        return f"{self._prefix}.{frac:09d}".rstrip("0") + "Z"

    def now(self) -> str:
        return self.format_ns(time.time_ns())


class LineEncoder:
    """Encodes every line of one response; built once per request."""

    __slots__ = ("_clock", "_head", "_kind", "_mid", "_model", "_tail")

    def __init__(self, kind: str, model: str, clock: WallClock) -> None:
        self._kind = kind
        self._model = model
        self._clock = clock
        self._head = b'{"model":' + orjson.dumps(model) + b',"created_at":"'
        if kind == CHAT:
            self._mid = b'","message":{"role":"assistant","content":'
            self._tail = b'},"done":false}\n'
        else:
            self._mid = b'","response":'
            self._tail = b',"done":false}\n'

    def token(self, text: str) -> bytes:
        stamp = self._clock.now().encode()
        return b"".join((self._head, stamp, self._mid, orjson.dumps(text), self._tail))

    def line(
        self,
        content: str,
        *,
        thinking: str = "",
        tool_calls: list[dict[str, Any]] | None = None,
        logprobs: list[dict[str, Any]] | None = None,
    ) -> bytes:
        """A `done:false` line with more than text (thinking, tool calls, logprobs)."""
        obj = self._head_obj(content, thinking, tool_calls)
        obj["done"] = False
        if logprobs:
            obj["logprobs"] = logprobs
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)

    def _head_obj(
        self, content: str, thinking: str, tool_calls: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        obj: dict[str, Any] = {"model": self._model, "created_at": self._clock.now()}
        if self._kind == CHAT:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if tool_calls:
                message["tool_calls"] = tool_calls
            obj["message"] = message
        else:
            obj["response"] = content
            if thinking:
                obj["thinking"] = thinking
        return obj

    def final(
        self,
        content: str,
        done_reason: str,
        metrics: dict[str, int],
        context: list[int] | None = None,
        *,
        thinking: str = "",
        tool_calls: list[dict[str, Any]] | None = None,
        logprobs: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The done line (or non-stream body) as an ordered dict; zero metrics are omitted.

        Key order as `api.ChatResponse`/`api.GenerateResponse` (1.11): chat puts `logprobs`
        before the metrics, generate puts `tool_calls` and `logprobs` after them."""
        chat = self._kind == CHAT
        obj = self._head_obj(content, thinking, tool_calls if chat else None)
        obj["done"] = True
        obj["done_reason"] = done_reason
        if context is not None:
            obj["context"] = context
        if chat and logprobs:
            obj["logprobs"] = logprobs
        for name in _METRICS:
            value = metrics.get(name, 0)
            if value:
                obj[name] = value
        if not chat and tool_calls:
            obj["tool_calls"] = tool_calls
        if not chat and logprobs:
            obj["logprobs"] = logprobs
        return obj


def json_body(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def done_line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_line(message: str) -> bytes:
    return orjson.dumps({"error": message}, option=orjson.OPT_APPEND_NEWLINE)
