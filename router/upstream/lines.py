"""A node's NDJSON answer as lines: read whatever has arrived, parse it in one go.

Ollama streams one JSON object per line (api-reference.md 1.5/1.6); a failure mid-stream is a
line with an `error` key and no done line (pitfall 3). This module knows those shapes and
aiohttp's body buffer (how to read it, and how to fail a read that waits too long), nothing
about leases, retries or clients (see `generation`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from router.fleet.registry import NodeState
from router.upstream.outcome import Outcome, UpstreamError, from_exception

# Ollama's own client reads lines of up to 8 MB (generate's `context` can be huge); aiohttp's
# default line limit is 512 KiB (api-reference.md pitfall 9).
MAX_LINE_BYTES = 16 * 1024 * 1024
# After the done line the body's end (chunked terminator) is normally already on its way; a
# connection released before it arrives is closed instead of reused (LineReader.finish).
END_WAIT_S = 0.5
# A timer may fire up to a millisecond early (uvloop rounds to whole ms): a wait that long
# short of its limit has reached it, rather than re-arming for the same instant.
_SLACK_S = 0.001


def parse_line(raw: bytes, node: NodeState) -> dict[str, Any]:
    """One JSON object from the node; an `error` line or anything else raises UpstreamError."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _invalid_json(node) from exc
    if type(data) is not dict:
        raise _not_an_object(node)
    error = data.get("error")
    if error:  # Ollama's mid-stream failure: an error line and no done line (pitfall 3)
        raise _error_line(node, error)
    return data


def _invalid_json(node: NodeState) -> UpstreamError:
    return UpstreamError(Outcome.PROTOCOL_ERROR, f"node {node.name} sent invalid JSON")


def _not_an_object(node: NodeState) -> UpstreamError:
    return UpstreamError(Outcome.PROTOCOL_ERROR, f"node {node.name} sent a non-object line")


def _error_line(node: NodeState, error: object) -> UpstreamError:
    return UpstreamError(Outcome.STREAM_ERROR, f"node {node.name} failed: {error}")


def has_token(lines: list[dict[str, Any]]) -> bool:
    """Whether one of these lines carries generated output (text, thinking or tool calls, of
    `/api/chat` or `/api/generate`): the first such line is the time to first token."""
    for line in lines:
        message = line.get("message")
        part = message if type(message) is dict else line
        if (
            part.get("content")
            or part.get("thinking")
            or part.get("tool_calls")
            or line.get("response")
        ):
            return True
    return False


class LineReader:
    """The raw NDJSON lines of one streamed answer, as many as have arrived per read.

    Reading whatever is buffered (rather than one line per await) lets a relay turn a burst of
    tokens into one write. The reads are timed by one lazy watchdog per answer (`watch`), not
    by a timer armed and cancelled around every read (issue #16: ~8 % of a relay's CPU).
    """

    __slots__ = ("_deadline", "_gap_s", "_loop", "_partial", "_resp", "_timer", "_waiting", "node")

    def __init__(self, resp: aiohttp.ClientResponse, node: NodeState) -> None:
        self._resp, self.node, self._partial = resp, node, b""
        self._loop = asyncio.get_running_loop()  # once: each lookup is a getpid() in 3.11
        self._timer: asyncio.TimerHandle | None = None
        self._gap_s = self._deadline = 0.0
        self._waiting = 0.0  # loop time the current read began waiting for data; 0: none does

    async def lines(self) -> list[bytes]:
        """The complete lines that have arrived (at least one), or [] at the end of the body,
        where a last line without its newline still counts (Ollama's `stream: false` answer is
        one object without one)."""
        content = self._resp.content
        while True:
            self._waiting = self._loop.time()
            try:
                chunk = await content.readany()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise from_exception(exc, self.node) from exc
            finally:
                self._waiting = 0.0
            if not chunk:
                last, self._partial = self._partial, b""
                return [last] if last and not last.isspace() else []
            data = self._partial + chunk if self._partial else chunk
            lines = data.split(b"\n")
            self._partial = lines.pop()
            if len(self._partial) > MAX_LINE_BYTES:
                raise UpstreamError(
                    Outcome.PROTOCOL_ERROR,
                    f"node {self.node.name} sent a line over {MAX_LINE_BYTES} bytes",
                )
            if len(lines) == 1:  # the usual read, one token's line: kept without a copy
                if lines[0] and not lines[0].isspace():
                    return lines
                continue
            complete = [line for line in lines if line and not line.isspace()]
            if complete:
                return complete

    def watch(self, gap_s: float, deadline: float) -> None:
        """From now on a read that waits `gap_s` for data, or any read after the loop time
        `deadline`, raises `UpstreamError(TIMEOUT)`. One timer, moved only when it fires: a
        read just notes when it began waiting. Time spent writing to a slow client (no read
        waiting) never counts against the node."""
        self._gap_s, self._deadline = gap_s, deadline
        self._arm(min(self._loop.time() + gap_s, deadline))

    def _arm(self, when: float) -> None:
        self._timer = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        now = self._loop.time() + _SLACK_S
        waiting = self._waiting
        if now >= self._deadline or (waiting and now - waiting >= self._gap_s):
            self._timer = None
            self._resp.content.set_exception(
                UpstreamError(Outcome.TIMEOUT, f"node {self.node.name} timed out")
            )
            return
        self._arm(min((waiting or now) + self._gap_s, self._deadline))

    def unwatch(self) -> None:
        """Stop timing the reads (the answer is whole, or being closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def parse_lines(self, raws: list[bytes]) -> tuple[list[dict[str, Any]], UpstreamError | None]:
        """`raws` parsed, up to and including a done line (what follows it is not read). A bad
        line ends the list and comes back as the error: the lines before it still count.
        One call per read rather than per line: a 64-token burst is 64 lines (issue 5)."""
        if len(raws) == 1:  # the usual read, one token: no batch, no loop (issue #16)
            try:
                line = orjson.loads(raws[0])
            except orjson.JSONDecodeError:
                return [], _invalid_json(self.node)
            if type(line) is dict and not line.get("error"):
                return [line], None
        out: list[dict[str, Any]] = []
        if len(raws) > 1:
            # One parse for the whole read; a bad line anywhere (even after the done line, which
            # is never read) sends the read line by line below, to the same result.
            try:
                batch = orjson.loads(b"[" + b",".join(raws) + b"]")
            except orjson.JSONDecodeError:
                batch = None
        else:
            batch = None
        loads = orjson.loads
        for i, raw in enumerate(raws):
            if batch is not None:
                line = batch[i]
            else:
                try:
                    line = loads(raw)
                except orjson.JSONDecodeError:
                    return out, _invalid_json(self.node)
            if type(line) is not dict:
                return out, _not_an_object(self.node)
            error = line.get("error")
            if error:
                return out, _error_line(self.node, error)
            out.append(line)
            if line.get("done"):
                break
        return out, None

    def finish(self) -> None:
        """After the done line: the connection goes back to the keep-alive pool as soon as the
        body has ended, which is normally at once or a moment later (its chunked terminator may
        come in the next segment). aiohttp hands a connection back itself at the end of the
        body; `release()` before that end would close it instead, and every request would pay
        for a new connection (most requests at c=1). A body not ended `END_WAIT_S` after the
        done line is closed. Nothing here waits."""
        resp = self._resp
        content = resp.content
        if content.is_eof():
            resp.release()
            return
        guard = self._loop.call_later(END_WAIT_S, resp.close)
        content.on_eof(guard.cancel)

    def close(self) -> None:
        """Before the end: close the connection, so the node stops generating."""
        self.unwatch()
        self._resp.close()
