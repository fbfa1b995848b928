"""Ollama's native shapes: a streamed answer gathered into its non-streamed form.

The router always streams from Ollama, even for a client that asked for one JSON object: a
node that stalls is then caught by the first-token and between-token timeouts instead of only
by the total one, and every request gets a time to first token. `Gathered` turns the NDJSON
lines back into exactly what Ollama would have sent with `stream: false` (api-reference.md
1.5/1.6: content and thinking concatenated, tool calls and logprobs collected from every line,
metrics from the done line).
"""

from __future__ import annotations

from typing import Any


class Gathered:
    __slots__ = ("_content", "_logprobs", "_thinking", "_tool_calls", "done")

    @property
    def started(self) -> bool:
        """Some text (or thinking) has arrived: the first token."""
        return bool(self._content or self._thinking)

    def __init__(self) -> None:
        self._content: list[str] = []
        self._thinking: list[str] = []
        self._tool_calls: list[Any] = []
        self._logprobs: list[Any] = []  # each line's token logprobs, in order
        self.done: dict[str, Any] | None = None

    def feed(self, line: dict[str, Any]) -> bool:
        """Take one line; True when it was the done line."""
        logprobs = line.get("logprobs")
        if isinstance(logprobs, list):
            self._logprobs.extend(logprobs)
        message = line.get("message")
        if isinstance(message, dict):
            text = message.get("content")
            if text:
                self._content.append(text)
            thinking = message.get("thinking")
            if thinking:
                self._thinking.append(thinking)
            calls = message.get("tool_calls")
            if isinstance(calls, list):
                self._tool_calls.extend(calls)
        else:
            text = line.get("response")
            if text:
                self._content.append(text)
            calls = line.get("tool_calls")
            if isinstance(calls, list):
                self._tool_calls.extend(calls)
        if line.get("done"):
            self.done = line
            return True
        return False

    def feed_all(self, lines: list[dict[str, Any]]) -> bool:
        """`feed` each line; True when one was the done line. A chat line with only text is
        taken here, without a call (issue 5: a read is a batch of such lines)."""
        content, feed = self._content, self.feed
        for line in lines:
            message = line.get("message")
            if (
                type(message) is not dict
                or message.get("thinking")
                or message.get("tool_calls")
                or line.get("done")
                or "logprobs" in line
            ):
                if feed(line):
                    return True
                continue
            text = message.get("content")
            if text:
                content.append(text)
        return False

    def chat(self) -> dict[str, Any]:
        """The `/api/chat` answer as `stream: false` would have given it."""
        body = dict(self.done or {})
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._content)}
        if self._thinking:
            message["thinking"] = "".join(self._thinking)
        if self._tool_calls:
            message["tool_calls"] = self._tool_calls
        body["message"] = message
        if self._logprobs:
            body["logprobs"] = self._logprobs
        return body

    def generate(self) -> dict[str, Any]:
        """The `/api/generate` answer as `stream: false` would have given it."""
        body = dict(self.done or {})
        body["response"] = "".join(self._content)
        if self._tool_calls:
            body["tool_calls"] = self._tool_calls
        if self._logprobs:
            body["logprobs"] = self._logprobs
        return body
