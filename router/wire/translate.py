"""Every OpenAI ⇄ Ollama mapping: requests, options, formats, chunks, finish reasons, usage.

Pure. Streams are encoded straight to SSE bytes around pre-built prefixes, so a token costs
one `orjson.dumps` of its text and no intermediate chunk object (issue: hot path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from router.errors import BadRequest
from router.ids import random_hex
from router.wire import sse
from router.wire.openai import ChatRequest, CompletionRequest, Sampling

FINGERPRINT = "fp_jarvis"
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


def new_id(prefix: str) -> str:
    return prefix + random_hex(12)


# -- requests ---------------------------------------------------------------------------------
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


def _parts(param: str, parts: list[dict[str, Any]]) -> tuple[str, list[str]]:
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
            msg["content"], images = _parts(f"messages[{i}].content", content)
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


def chat_payload(req: ChatRequest, model: str) -> bytes:
    payload: dict[str, Any] = {
        "model": model,
        "messages": ollama_messages(req.messages),
        # Always a stream, stated explicitly (Ollama streams when it is absent, pitfall 1): a
        # client's non-streamed answer is gathered from it, so every request gets the
        # first-token and between-token timeouts (router.wire.ollama).
        "stream": True,
        "options": _options(req.sampling),
    }
    fmt = _format(req.response_format)
    if fmt is not None:
        payload["format"] = fmt
    if req.tools and req.tool_choice != "none":  # Ollama has no tool_choice
        payload["tools"] = list(req.tools)
    if req.reasoning_effort is not None:
        if req.reasoning_effort not in _THINK:
            raise BadRequest(
                f"Invalid 'reasoning_effort': {req.reasoning_effort!r}.",
                param="reasoning_effort",
                code="invalid_value",
            )
        payload["think"] = _THINK[req.reasoning_effort]
    return orjson.dumps(payload)


def completion_payload(req: CompletionRequest, model: str) -> bytes:
    payload: dict[str, Any] = {
        "model": model,
        "prompt": req.prompt,
        "stream": True,
        "options": _options(req.sampling),
    }
    if req.suffix:
        payload["suffix"] = req.suffix
    return orjson.dumps(payload)


# -- responses --------------------------------------------------------------------------------
def usage_of(done: dict[str, Any]) -> Usage:
    """Ollama's counts are omitempty: a missing count is 0 (pitfall 10)."""
    return Usage(int(done.get("prompt_eval_count") or 0), int(done.get("eval_count") or 0))


def finish_reason(done: dict[str, Any], tool_calls: bool) -> str:
    if done.get("done_reason") == "length":
        return "length"
    return "tool_calls" if tool_calls else "stop"


def tool_calls_out(calls: object, *, indexed: bool, start: int = 0) -> list[dict[str, Any]]:
    """Native tool calls (arguments an object) → OpenAI's (arguments a JSON string)."""
    out: list[dict[str, Any]] = []
    if not isinstance(calls, list):
        return out
    for n, call in enumerate(calls, start):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        args = fn.get("arguments", {})
        item: dict[str, Any] = {
            "id": (call.get("id") if isinstance(call, dict) else None) or new_id("call_"),
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


def chat_completion(
    data: dict[str, Any], model: str, id_: str, created: int
) -> tuple[bytes, Usage]:
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    assert isinstance(message, dict)
    calls = tool_calls_out(message.get("tool_calls"), indexed=False)
    out: dict[str, Any] = {
        "role": "assistant",
        "content": message.get("content") or "",
        "refusal": None,
    }
    if calls:
        out["tool_calls"] = calls
    if message.get("thinking"):
        out["reasoning_content"] = message["thinking"]
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

    def _close(self, usage: Usage) -> bytes:
        tail = b""
        if self.include_usage:  # after the finish chunk, with empty choices (pitfall 20)
            tail = self._event(b"[]", b',"usage":' + orjson.dumps(usage.as_dict()))
        return tail + sse.DONE


class ChatStream(_Stream):
    object_name = b"chat.completion.chunk"

    def __init__(self, model: str, id_: str, created: int, include_usage: bool) -> None:
        super().__init__(model, id_, created, include_usage)
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
            converted = tool_calls_out(calls, indexed=True, start=self._tool_calls)
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
