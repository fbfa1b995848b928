"""Ollama chat lines → the Messages API's streamed events (api-reference.md 5.3).

`event: <name>` lines are mandatory (the SDK skips events without one); no `[DONE]`. Blocks are
indexed from 0 without gaps, one open at a time: `content_block_start` (with the empty `text`,
`thinking` or `input` the SDK appends to), deltas, `content_block_stop`. `message_start` comes
before the prompt is counted, so its `input_tokens` is 0 and the real count rides on
`message_delta.usage`, which the SDK folds into the final message.

Per token, a text or thinking delta costs one `orjson.dumps` of the text, around a byte prefix
built when the block opens (the interface and cost of router.wire.translate.ChatStream).
"""

from __future__ import annotations

from typing import Any

import orjson

from router.wire.anthropic import (
    NewId,
    error_type,
    message_object,
    stop_reason,
    tool_inputs,
)
from router.wire.translate import Usage, usage_of

_TEXT, _THINKING = "text", "thinking"
_TAIL = b"}}\n\n"
PING = b'event: ping\ndata: {"type":"ping"}\n\n'  # Anthropic's own keep-alive


def _frame(name: str, body: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"


class MessagesStream:
    def __init__(self, model: str, id_: str, new_id: NewId) -> None:
        self._model, self._id, self._new_id = model, id_, new_id
        self._index = 0  # the next block's index
        self._open: str | None = None  # _TEXT, _THINKING or None
        self._prefix = b""  # the open block's delta event up to the delta's string
        self._tool_use = False

    def start(self) -> bytes:
        message = message_object(self._id, self._model, [], None, Usage(0, 0))
        start = _frame("message_start", {"type": "message_start", "message": message})
        return start + PING

    # -- blocks --------------------------------------------------------------------------------
    def _close(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        out.append(
            _frame("content_block_stop", {"type": "content_block_stop", "index": self._index})
        )
        self._index += 1
        self._open = None

    def _begin(self, kind: str, out: list[bytes]) -> None:
        self._close(out)
        if kind == _TEXT:
            block: dict[str, Any] = {"type": "text", "text": ""}
            delta = b'"type":"text_delta","text":'
        else:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            delta = b'"type":"thinking_delta","thinking":'
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        out.append(_frame("content_block_start", start))
        self._open = kind
        self._prefix = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + b"%d" % self._index
            + b',"delta":{'
            + delta
        )

    def _tools(self, calls: object, out: list[bytes]) -> None:
        for name, args in tool_inputs(calls):
            self._close(out)
            self._tool_use = True
            block = {"type": "tool_use", "id": self._new_id("toolu_"), "name": name, "input": {}}
            index = self._index
            out.append(
                _frame(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            )
            delta = {"type": "input_json_delta", "partial_json": orjson.dumps(args).decode()}
            out.append(
                _frame(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
            out.append(_frame("content_block_stop", {"type": "content_block_stop", "index": index}))
            self._index += 1

    # -- lines ---------------------------------------------------------------------------------
    def feed(self, line: dict[str, Any], out: list[bytes]) -> None:
        """The events for one Ollama line (the done line too: it may carry text and calls)."""
        message = line.get("message")
        if not isinstance(message, dict):
            return
        thinking = message.get("thinking")
        if thinking:
            if self._open != _THINKING:
                self._begin(_THINKING, out)
            out += (self._prefix, orjson.dumps(thinking), _TAIL)
        content = message.get("content")
        if content:
            if self._open != _TEXT:
                self._begin(_TEXT, out)
            out += (self._prefix, orjson.dumps(content), _TAIL)
        calls = message.get("tool_calls")
        if calls:
            self._tools(calls, out)

    def feed_all(self, lines: list[dict[str, Any]], out: list[bytes]) -> None:
        """`feed` each line; a text line inside an open text block costs one `orjson.dumps`."""
        dumps, feed = orjson.dumps, self.feed
        for line in lines:
            message = line.get("message")
            if type(message) is not dict:
                continue
            if self._open != _TEXT or message.get("thinking") or message.get("tool_calls"):
                feed(line, out)
                continue
            content = message.get("content")
            if content:
                out += (self._prefix, dumps(content), _TAIL)

    def finish(self, done: dict[str, Any]) -> tuple[bytes, Usage]:
        out: list[bytes] = []
        self._close(out)
        usage = usage_of(done)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(done, self._tool_use), "stop_sequence": None},
            "usage": {
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
            },
        }
        out.append(_frame("message_delta", delta))
        out.append(_frame("message_stop", {"type": "message_stop"}))
        return b"".join(out), usage

    def error(self, message: str, status: int = 500) -> bytes:
        """A failure after the stream began: `event: error`, which the SDK raises as an
        `APIStatusError` with this message (api-reference.md 5.3)."""
        body = {"type": "error", "error": {"type": error_type(status), "message": message}}
        return _frame("error", body)
