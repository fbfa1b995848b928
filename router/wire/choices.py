"""Several choices in one answer (`n` > 1) and choices with log probabilities.

Pure. Ollama makes one generation per request, so `n` = k means k generations (on one node or
several; the handler dispatches them like k requests) whose answers become choices 0..k-1.
The single-choice, no-logprobs fast path stays in `router.wire.translate`; these encoders build
each chunk from a dict (one `orjson.dumps` per chunk), which is fine for the rarer cases.

Non-streamed: gather each generation (`Gathered.chat()`/`.generate()`, which must keep the
lines' `logprobs`), then `chat_choice`/`completion_choice` per index and `merged_body`.

Streamed (the multiplexer): one `StreamFrame` (id, created, model: the same on every chunk),
one `ChatChoiceStream`/`CompletionChoiceStream` per index. The handler runs the k generations
as tasks feeding one queue of (index, lines); it writes each encoder's chunks as they come, so
chunks of different choices interleave, each carrying its own `index` (OpenAI does the same).
Each generation ends with its encoder's `finish`; when all have, `frame.close(usages,
include_usage)` writes the one usage chunk and `[DONE]`. A generation that fails mid-stream
ends the whole answer with one SSE error event; the others are cancelled (their `async with`
releases their slots).

Usage for k choices: `prompt_tokens` once (the same prompt, as OpenAI counts it),
`completion_tokens` summed over the choices. `usages` are returned per choice for metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from router.errors import BadRequest
from router.wire import sse
from router.wire.logprobs import OFF, CompletionOffsets, LogprobRequest, chat_logprobs
from router.wire.to_openai import (
    FINGERPRINT,
    Usage,
    assistant_message,
    finish_reason,
    tool_calls_out,
    usage_of,
)
from router.wire.toolchoice import limit_calls

MAX_N = 128  # OpenAI's limit


def parse_n(body: dict[str, Any], param: str = "n") -> int:
    """`n` (or completions' `best_of`): 1..128, 1 when absent."""
    value = body.get(param)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(
            f"Invalid type for '{param}': expected an integer.", param=param, code="invalid_type"
        )
    if not 1 <= value <= MAX_N:
        raise BadRequest(
            f"Invalid '{param}': expected a value between 1 and {MAX_N}, but got {value} instead.",
            param=param,
            code="invalid_value",
        )
    return value


def parse_best_of(body: dict[str, Any], n: int) -> None:
    """Completions' `best_of` would need ranking by total logprob; only `best_of` == `n` (no
    ranking) is taken."""
    if body.get("best_of") is None:
        return
    best_of = parse_n(body, "best_of")
    if best_of != n:
        raise BadRequest(
            "Invalid 'best_of': this router supports 'best_of' only equal to 'n'.",
            param="best_of",
            code="unsupported_value",
        )


def total_usage(usages: Sequence[Usage]) -> Usage:
    if not usages:
        return Usage(0, 0)
    return Usage(max(u.prompt_tokens for u in usages), sum(u.completion_tokens for u in usages))


# -- non-streamed ------------------------------------------------------------------------------
def chat_choice(
    answer: dict[str, Any],
    index: int,
    *,
    logprobs: LogprobRequest = OFF,
    max_calls: int | None = None,
) -> tuple[dict[str, Any], Usage]:
    """One `choices[]` item from a gathered `/api/chat` answer."""
    message = answer.get("message")
    message = message if isinstance(message, dict) else {}
    calls = limit_calls(tool_calls_out(message.get("tool_calls"), indexed=False), max_calls)
    choice = {
        "index": index,
        "message": assistant_message(message, calls),
        "logprobs": chat_logprobs(answer.get("logprobs")) if logprobs.enabled else None,
        "finish_reason": finish_reason(answer, bool(calls)),
    }
    return choice, usage_of(answer)


def completion_choice(
    answer: dict[str, Any], index: int, *, logprobs: LogprobRequest = OFF
) -> tuple[dict[str, Any], Usage]:
    """One `choices[]` item from a gathered `/api/generate` answer."""
    choice = {
        "text": answer.get("response") or "",
        "index": index,
        "logprobs": CompletionOffsets().logprobs(answer.get("logprobs"))
        if logprobs.enabled
        else None,
        "finish_reason": finish_reason(answer, False),
    }
    return choice, usage_of(answer)


def merged_body(
    object_name: str,
    choices: Sequence[dict[str, Any]],
    usages: Sequence[Usage],
    *,
    model: str,
    id_: str,
    created: int,
) -> bytes:
    """`chat.completion` or `text_completion` with every choice, indexes as given."""
    body = {
        "id": id_,
        "object": object_name,
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": sorted(choices, key=lambda c: int(c["index"])),
        "usage": total_usage(usages).as_dict(),
    }
    return orjson.dumps(body)


# -- streamed ----------------------------------------------------------------------------------
class StreamFrame:
    """What every chunk of one answer shares; `object_name` is `chat.completion.chunk` or
    `text_completion`."""

    __slots__ = ("_head",)

    def __init__(self, object_name: str, *, model: str, id_: str, created: int) -> None:
        self._head = {
            "id": id_,
            "object": object_name,
            "created": created,
            "model": model,
            "system_fingerprint": FINGERPRINT,
        }

    def event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse.event(orjson.dumps({**self._head, "choices": choices, **extra}))

    def close(self, usages: Sequence[Usage], include_usage: bool) -> bytes:
        """After every choice finished: the usage chunk (if asked for) and `[DONE]`."""
        tail = b""
        if include_usage:  # empty choices, after the finish chunks (pitfall 20)
            tail = self.event([], usage=total_usage(usages).as_dict())
        return tail + sse.DONE


class ChatChoiceStream:
    """The chunks of choice `index` of a streamed chat answer."""

    __slots__ = ("_calls", "frame", "index", "logprobs", "max_calls")

    def __init__(
        self,
        frame: StreamFrame,
        index: int,
        *,
        logprobs: LogprobRequest = OFF,
        max_calls: int | None = None,
    ) -> None:
        self.frame, self.index = frame, index
        self.logprobs, self.max_calls = logprobs, max_calls
        self._calls = 0

    def _chunk(self, delta: dict[str, Any], logprobs: Any = None, reason: Any = None) -> bytes:
        choice = {"index": self.index, "delta": delta, "logprobs": logprobs}
        choice["finish_reason"] = reason
        return self.frame.event([choice])

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def feed(self, line: dict[str, Any]) -> bytes:
        """The chunks for one Ollama line (b"" when it carries nothing for the client)."""
        message = line.get("message")
        if not isinstance(message, dict):
            return b""
        out = b""
        if message.get("thinking"):
            out += self._chunk({"reasoning_content": message["thinking"]})
        content = message.get("content")
        if content:
            lp = chat_logprobs(line.get("logprobs")) if self.logprobs.enabled else None
            out += self._chunk({"content": content}, lp)
        calls = tool_calls_out(message.get("tool_calls"), indexed=True, start=self._calls)
        if self.max_calls is not None:
            calls = calls[: max(0, self.max_calls - self._calls)]
        if calls:
            self._calls += len(calls)
            out += self._chunk({"tool_calls": calls})
        return out

    def finish(self, done: dict[str, Any]) -> tuple[bytes, Usage]:
        """This choice's finish chunk (feed the done line first: it may carry text or calls)."""
        reason = finish_reason(done, self._calls > 0)
        return self._chunk({}, None, reason), usage_of(done)


class CompletionChoiceStream:
    """The chunks of choice `index` of a streamed completions answer."""

    __slots__ = ("_offsets", "frame", "index", "logprobs")

    def __init__(self, frame: StreamFrame, index: int, *, logprobs: LogprobRequest = OFF) -> None:
        self.frame, self.index, self.logprobs = frame, index, logprobs
        self._offsets = CompletionOffsets()

    def _chunk(self, text: str, logprobs: Any = None, reason: Any = None) -> bytes:
        choice = {"text": text, "index": self.index, "logprobs": logprobs}
        choice["finish_reason"] = reason
        return self.frame.event([choice])

    def start(self) -> bytes:
        return b""

    def feed(self, line: dict[str, Any]) -> bytes:
        text = line.get("response")
        if not text:
            return b""
        lp = self._offsets.logprobs(line.get("logprobs")) if self.logprobs.enabled else None
        return self._chunk(text, lp)

    def finish(self, done: dict[str, Any]) -> tuple[bytes, Usage]:
        return self._chunk("", None, finish_reason(done, False)), usage_of(done)
