"""Ollama chat lines → the Responses API's streamed events (api-reference.md 5.1).

`event: <type>` + `data: <json>` + blank line, `sequence_number` 0, 1, 2 … and no `[DONE]`.
Items open and close one after another (`output_item.added` … `.done`), `output_index` = the
item's place in the final `output`; `response.completed` (or `.incomplete`) carries the full
output and usage, which is all `responses.stream().get_final_response()` reads (pitfall 29).

Per token, a text or thinking delta costs one `orjson.dumps` of the text, around byte prefixes
built when the item opens (the interface and cost of router.wire.translate.ChatStream).
"""

from __future__ import annotations

from typing import Any

import orjson

from router.wire.responses import (
    NewId,
    ResponseHead,
    function_call_item,
    message_item,
    native_calls,
    reasoning_item,
    response_object,
    status_of,
    text_part,
)
from router.wire.translate import Usage, usage_of

_TEXT, _REASONING = "message", "reasoning"
# Sequence numbers as bytes for the per-token path, where formatting one cost as much as the
# rest of a delta event; later events of longer streams format theirs.
_SEQ_CACHED = 4096
_SEQ_BYTES = tuple(b"%d" % n for n in range(_SEQ_CACHED))


def _frame(type_: str, body: dict[str, Any]) -> bytes:
    return b"event: " + type_.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"


class ResponsesStream:
    def __init__(self, head: ResponseHead, new_id: NewId) -> None:
        self._head, self._new_id = head, new_id
        self._seq = 0
        self._output: list[dict[str, Any]] = []  # closed items, for the final response
        self._open: str | None = None  # _TEXT, _REASONING or None
        self._item_id = ""
        self._pieces: list[str] = []  # the open item's text so far
        self._prefix = b""  # the open item's delta event up to its sequence number
        self._middle = b""  # … from the sequence number to the delta string
        self._messages = 0  # message and function_call items so far

    def _event(self, type_: str, **fields: Any) -> bytes:
        seq, self._seq = self._seq, self._seq + 1
        return _frame(type_, {"type": type_, "sequence_number": seq, **fields})

    def start(self) -> bytes:
        created = response_object(self._head, "in_progress", [], None)
        return self._event("response.created", response=created) + self._event(
            "response.in_progress", response=created
        )

    # -- items ---------------------------------------------------------------------------------
    def _begin(self, kind: str, out: list[bytes]) -> None:
        """Close the open item and open a message or reasoning item."""
        self._close(out, "completed")
        index, item_id = len(self._output), self._new_id("msg_" if kind == _TEXT else "rs_")
        self._open, self._item_id, self._pieces = kind, item_id, []
        if kind == _TEXT:
            self._messages += 1
            item, part = message_item(item_id, None, "in_progress"), text_part("")
            delta = "response.output_text.delta"
        else:
            item = reasoning_item(item_id, None, "in_progress")
            part, delta = {"type": "reasoning_text", "text": ""}, "response.reasoning_text.delta"
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        out.append(self._event("response.output_item.added", output_index=index, item=item))
        out.append(self._event("response.content_part.added", **where, part=part))
        self._prefix = (
            b"event: " + delta.encode() + b'\ndata: {"type":"' + delta.encode() + b'",'
            b'"sequence_number":'
        )
        logprobs = b'"logprobs":[],' if kind == _TEXT else b""
        self._middle = b"," + orjson.dumps(where)[1:-1] + b"," + logprobs + b'"delta":'

    def _close(self, out: list[bytes], status: str) -> None:
        if self._open is None:
            return
        text, index, item_id = "".join(self._pieces), len(self._output), self._item_id
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        if self._open == _TEXT:
            item, part = message_item(item_id, text, status), text_part(text)
            out.append(self._event("response.output_text.done", **where, text=text, logprobs=[]))
        else:
            item = reasoning_item(item_id, text, status)
            part = {"type": "reasoning_text", "text": text}
            out.append(self._event("response.reasoning_text.done", **where, text=text))
        out.append(self._event("response.content_part.done", **where, part=part))
        out.append(self._event("response.output_item.done", output_index=index, item=item))
        self._output.append(item)
        self._open, self._pieces = None, []

    def _delta(self, text: str, out: list[bytes]) -> None:
        self._pieces.append(text)
        seq, self._seq = self._seq, self._seq + 1
        out += (self._prefix, b"%d" % seq, self._middle, orjson.dumps(text), b"}\n\n")

    def _calls(self, calls: object, out: list[bytes]) -> None:
        for name, args in native_calls(calls):
            self._close(out, "completed")
            index, item_id, call_id = len(self._output), self._new_id("fc_"), self._new_id("call_")
            self._messages += 1
            added = function_call_item(item_id, call_id, name, "", "in_progress")
            where = {"item_id": item_id, "output_index": index}
            out.append(self._event("response.output_item.added", output_index=index, item=added))
            out.append(self._event("response.function_call_arguments.delta", **where, delta=args))
            out.append(
                self._event(
                    "response.function_call_arguments.done", **where, name=name, arguments=args
                )
            )
            item = function_call_item(item_id, call_id, name, args, "completed")
            out.append(self._event("response.output_item.done", output_index=index, item=item))
            self._output.append(item)

    # -- lines ---------------------------------------------------------------------------------
    def feed(self, line: dict[str, Any], out: list[bytes]) -> None:
        """The events for one Ollama line (the done line too: it may carry text and calls)."""
        message = line.get("message")
        if not isinstance(message, dict):
            return
        thinking = message.get("thinking")
        if thinking:
            if self._open != _REASONING:
                self._begin(_REASONING, out)
            self._delta(thinking, out)
        content = message.get("content")
        if content:
            if self._open != _TEXT:
                self._begin(_TEXT, out)
            self._delta(content, out)
        calls = message.get("tool_calls")
        if calls:
            self._calls(calls, out)

    def feed_all(self, lines: list[dict[str, Any]], out: list[bytes]) -> None:
        """`feed` each line; a text line inside an open message costs one `orjson.dumps`
        (the open item's state is held in locals between such lines: the per-token path)."""
        dumps, feed, numbers = orjson.dumps, self.feed, _SEQ_BYTES
        pieces, prefix, middle, seq = self._pieces, self._prefix, self._middle, self._seq
        for line in lines:
            message = line.get("message")
            if type(message) is not dict:
                continue
            if self._open != _TEXT or message.get("thinking") or message.get("tool_calls"):
                self._seq = seq
                feed(line, out)
                pieces, prefix, middle, seq = self._pieces, self._prefix, self._middle, self._seq
                continue
            content = message.get("content")
            if content:
                pieces.append(content)
                number = numbers[seq] if seq < _SEQ_CACHED else b"%d" % seq
                out += (prefix, number, middle, dumps(content), b"}\n\n")
                seq += 1
        self._seq = seq

    def finish(self, done: dict[str, Any]) -> tuple[bytes, Usage]:
        """Close the open item and end with `response.completed` (or `.incomplete` when the
        answer hit max_output_tokens)."""
        out: list[bytes] = []
        status = status_of(done)
        if not self._messages:  # an answer always has a message or a call
            self._begin(_TEXT, out)
        self._close(out, status)
        usage = usage_of(done)
        final = response_object(self._head, status, self._output, usage)
        out.append(self._event(f"response.{status}", response=final))
        return b"".join(out), usage

    def error(self, message: str, code: str = "server_error") -> bytes:
        """A failure after the stream began: flat fields (the SDK type) and a nested `error`
        (what makes the SDK raise `openai.APIError`), api-reference.md 5.1."""
        error = {"type": "server_error", "code": code, "message": message, "param": None}
        return self._event("error", code=code, message=message, param=None, error=error)
