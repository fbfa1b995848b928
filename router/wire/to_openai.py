"""Ollama answers → OpenAI answers: chat and text completion bodies, and their SSE streams.

Pure: ids for tool calls Ollama sent without one come from an injected `ids` (router.ids).
Streams are encoded straight to SSE bytes around pre-built prefixes, so a token costs one
`orjson.dumps` of its text and no intermediate chunk object (issue: hot path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from router.ids import Ids, new_id
from router.wire import sse

FINGERPRINT = "fp_jarvis"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def usage_of(done: dict[str, Any]) -> Usage:
    """Ollama's counts are omitempty: a missing count is 0 (pitfall 10)."""
    return Usage(int(done.get("prompt_eval_count") or 0), int(done.get("eval_count") or 0))


def finish_reason(done: dict[str, Any], tool_calls: bool) -> str:
    if done.get("done_reason") == "length":
        return "length"
    return "tool_calls" if tool_calls else "stop"


def tool_calls_out(
    calls: object, *, indexed: bool, start: int = 0, ids: Ids = new_id
) -> list[dict[str, Any]]:
    """Native tool calls (arguments an object) → OpenAI's (arguments a JSON string); a call
    without an id gets `ids("call_")`."""
    out: list[dict[str, Any]] = []
    if not isinstance(calls, list):
        return out
    for n, call in enumerate(calls, start):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        args = fn.get("arguments", {})
        item: dict[str, Any] = {
            "id": (call.get("id") if isinstance(call, dict) else None) or ids("call_"),
            "type": "function",
            "function": {
                "name": fn.get("name", ""),
                "arguments": args if isinstance(args, str) else orjson.dumps(args).decode(),
            },
        }
        if indexed:
            item = {"index": n, **item}
        out.append(item)
    return out


def assistant_message(message: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """A gathered answer's `choices[].message`: text, tool calls, thinking as
    `reasoning_content`."""
    out: dict[str, Any] = {
        "role": "assistant",
        "content": message.get("content") or "",
        "refusal": None,
    }
    if calls:
        out["tool_calls"] = calls
    if message.get("thinking"):
        out["reasoning_content"] = message["thinking"]
    return out


def chat_completion(
    data: dict[str, Any], model: str, id_: str, created: int, *, ids: Ids = new_id
) -> tuple[bytes, Usage]:
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    assert isinstance(message, dict)
    calls = tool_calls_out(message.get("tool_calls"), indexed=False, ids=ids)
    out = assistant_message(message, calls)
    usage = usage_of(data)
    body = {
        "id": id_,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": out,
                "logprobs": None,
                "finish_reason": finish_reason(data, bool(calls)),
            }
        ],
        "usage": usage.as_dict(),
    }
    return orjson.dumps(body), usage


def text_completion(
    data: dict[str, Any], model: str, id_: str, created: int
) -> tuple[bytes, Usage]:
    usage = usage_of(data)
    body = {
        "id": id_,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "text": data.get("response") or "",
                "index": 0,
                "logprobs": None,
                "finish_reason": finish_reason(data, False),
            }
        ],
        "usage": usage.as_dict(),
    }
    return orjson.dumps(body), usage


class _Stream:
    """Shared framing: every chunk of one stream has the same id, created and model."""

    object_name = b""

    def __init__(self, model: str, id_: str, created: int, include_usage: bool) -> None:
        self.include_usage = include_usage
        self._head = (
            b'{"id":"'
            + id_.encode()
            + b'","object":"'
            + self.object_name
            + b'","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"system_fingerprint":"'
            + FINGERPRINT.encode()
            + b'","choices":'
        )

    def _event(self, choices: bytes, extra: bytes = b"") -> bytes:
        return b"data: " + self._head + choices + extra + b"}\n\n"

    def error(self, message: str) -> bytes:
        """A failure after the stream began: one error event (the SDK raises `APIError`)."""
        return sse.error_event(message)

    def _close(self, usage: Usage) -> bytes:
        tail = b""
        if self.include_usage:  # after the finish chunk, with empty choices (pitfall 20)
            tail = self._event(b"[]", b',"usage":' + orjson.dumps(usage.as_dict()))
        return tail + sse.DONE


class ChatStream(_Stream):
    object_name = b"chat.completion.chunk"

    def __init__(
        self, model: str, id_: str, created: int, include_usage: bool, *, ids: Ids = new_id
    ) -> None:
        super().__init__(model, id_, created, include_usage)
        self._ids = ids
        self._content = b"data: " + self._head + b'[{"index":0,"delta":{"content":'
        self._tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        self._tool_calls = 0

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._event(
            b'[{"index":0,"delta":'
            + orjson.dumps(delta)
            + b',"logprobs":null,"finish_reason":null}]'
        )

    def start(self) -> bytes:
        return self._delta({"role": "assistant", "content": ""})

    def feed(self, line: dict[str, Any]) -> bytes:
        """The chunks for one Ollama line (b"" when it carries no text)."""
        message = line.get("message")
        if not isinstance(message, dict):
            return b""
        out = b""
        thinking = message.get("thinking")
        if thinking:
            out += self._delta({"reasoning_content": thinking})
        content = message.get("content")
        if content:
            out += self._content + orjson.dumps(content) + self._tail
        calls = message.get("tool_calls")
        if calls:
            converted = tool_calls_out(calls, indexed=True, start=self._tool_calls, ids=self._ids)
            self._tool_calls += len(converted)
            out += self._delta({"tool_calls": converted})
        return out

    def feed_all(self, lines: list[dict[str, Any]], out: list[bytes]) -> None:
        """`feed` for each line, appended to `out`; a plain text line costs one `orjson.dumps`
        and no call (the relay's per-token work, issue 5)."""
        head, tail, dumps = self._content, self._tail, orjson.dumps
        for line in lines:
            message = line.get("message")
            if type(message) is not dict:
                continue
            if message.get("thinking") or message.get("tool_calls"):
                chunk = self.feed(line)
                if chunk:
                    out.append(chunk)
                continue
            content = message.get("content")
            if content:
                out += (head, dumps(content), tail)

    def finish(self, done: dict[str, Any]) -> tuple[bytes, Usage]:
        usage = usage_of(done)
        reason = finish_reason(done, self._tool_calls > 0)
        chunk = self._event(
            b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":"' + reason.encode() + b'"}]'
        )
        return chunk + self._close(usage), usage


class CompletionStream(_Stream):
    object_name = b"text_completion"  # completions chunks are full text_completion objects

    def __init__(self, model: str, id_: str, created: int, include_usage: bool) -> None:
        super().__init__(model, id_, created, include_usage)
        self._text = b"data: " + self._head + b'[{"text":'
        self._tail = b',"index":0,"logprobs":null,"finish_reason":null}]}\n\n'

    def start(self) -> bytes:
        return b""

    def feed(self, line: dict[str, Any]) -> bytes:
        text = line.get("response")
        if not text:
            return b""
        return self._text + orjson.dumps(text) + self._tail

    def feed_all(self, lines: list[dict[str, Any]], out: list[bytes]) -> None:
        head, tail, dumps = self._text, self._tail, orjson.dumps
        for line in lines:
            text = line.get("response")
            if text:
                out += (head, dumps(text), tail)

    def finish(self, done: dict[str, Any]) -> tuple[bytes, Usage]:
        usage = usage_of(done)
        chunk = self._event(
            b'[{"text":"","index":0,"logprobs":null,"finish_reason":"'
            + finish_reason(done, False).encode()
            + b'"}]'
        )
        return chunk + self._close(usage), usage
