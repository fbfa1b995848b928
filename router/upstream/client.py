"""Talking to one Ollama node: the only module that knows Ollama's URLs and status codes.

Every failure becomes one `UpstreamError` with a small `Outcome`, so dispatch can decide
"retry elsewhere?" and "is the node sick?" without knowing aiohttp or Ollama.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Generic, TypeVar

import aiohttp
import orjson
from yarl import URL

from router.config import RoutingConfig
from router.fleet.registry import NodeState
from router.modelnames import canonical

CHAT_PATH = "/api/chat"
GENERATE_PATH = "/api/generate"
TAGS_PATH = "/api/tags"
PS_PATH = "/api/ps"
# Ollama's own client reads lines of up to 8 MB (generate's `context` can be huge); aiohttp's
# default line limit is 512 KiB (api-reference.md pitfall 9).
MAX_LINE_BYTES = 16 * 1024 * 1024
# After the done line the body's end (chunked terminator) is normally already on its way; a
# connection released before it arrives is closed instead of reused (LineReader.finish).
END_WAIT_S = 0.5
_JSON_HEADERS = {"Content-Type": "application/json"}
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|z|[+-]\d\d:\d\d)?$")
# An /api/ps entry's `expires_at` moves after every request the node serves (and jitters in the
# emulator); the fingerprint leaves it out, as routing only reads the names.
_EXPIRES_AT = re.compile(rb'"expires_at":"[^"]*"')
_T = TypeVar("_T")


class Outcome(StrEnum):
    OK = "ok"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    HTTP_5XX = "http_5xx"
    BUSY = "busy"
    HTTP_4XX = "http_4xx"
    MODEL_MISSING = "model_missing"
    STREAM_ERROR = "stream_error"
    PROTOCOL_ERROR = "protocol_error"
    CLIENT_CANCELLED = "client_cancelled"


# Worth trying another node: the failure says nothing about the request itself.
RETRYABLE = frozenset(
    {
        Outcome.CONNECT_ERROR,
        Outcome.TIMEOUT,
        Outcome.HTTP_5XX,
        Outcome.BUSY,
        Outcome.MODEL_MISSING,
        Outcome.PROTOCOL_ERROR,
        # An error line before the client saw a byte (a gathered answer, or the first line).
        Outcome.STREAM_ERROR,
    }
)
# The node itself is broken: take it out of rotation until the health poller sees it well.
NODE_DOWN = frozenset({Outcome.CONNECT_ERROR, Outcome.TIMEOUT})
# The node failed the request (not the client, not the request itself): its circuit breaker
# counts these, so a node that passes health checks but fails generations is ejected too.
NODE_FAULT = frozenset(
    {
        Outcome.CONNECT_ERROR,
        Outcome.TIMEOUT,
        Outcome.HTTP_5XX,
        Outcome.STREAM_ERROR,
        Outcome.PROTOCOL_ERROR,
    }
)


class UpstreamError(Exception):
    def __init__(self, outcome: Outcome, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.outcome in RETRYABLE


def _from_exception(exc: BaseException, node: NodeState) -> UpstreamError:
    if isinstance(exc, TimeoutError):
        return UpstreamError(Outcome.TIMEOUT, f"node {node.name} timed out")
    return UpstreamError(
        Outcome.CONNECT_ERROR, f"node {node.name} connection failed: {type(exc).__name__}"
    )


def _error_text(body: bytes) -> str:
    """Ollama errors are `{"error": "text"}`; unknown paths answer plain text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace").strip()[:500]
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return body.decode(errors="replace").strip()[:500]


def _status_error(status: int, body: bytes, node: NodeState) -> UpstreamError:
    text = _error_text(body)
    if status == 503:
        return UpstreamError(Outcome.BUSY, f"node {node.name} is busy: {text}", status=status)
    if status >= 500:
        return UpstreamError(Outcome.HTTP_5XX, f"node {node.name} failed: {text}", status=status)
    if status == 404 and "not found" in text:
        return UpstreamError(Outcome.MODEL_MISSING, text, status=status)
    return UpstreamError(Outcome.HTTP_4XX, text, status=status)


class Upstream:
    def __init__(self, session: aiohttp.ClientSession, routing: RoutingConfig) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(
            total=routing.request_timeout_s, sock_connect=routing.connect_timeout_s
        )
        self._probe_timeout = aiohttp.ClientTimeout()

    async def open(
        self, node: NodeState, path: str, payload: bytes, request_id: str
    ) -> aiohttp.ClientResponse:
        """POST a generation; a 200 response (body unread) or UpstreamError. Caller closes it."""
        headers = {**_JSON_HEADERS, "X-Request-ID": request_id}
        try:
            resp = await self._session.post(
                _url(node.config.url, path), data=payload, headers=headers, timeout=self._timeout
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _from_exception(exc, node) from exc
        if resp.status == 200:
            return resp
        try:
            body = await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError):
            body = b""
        finally:
            resp.release()
        raise _status_error(resp.status, body, node)

    async def _get(self, node: NodeState, path: str, timeout_s: float) -> bytes:
        """The body of a 200 answer to GET `path`."""
        timeout = self._probe_timeout
        if timeout.total != timeout_s:
            # aiohttp's own timer, not asyncio.timeout around it: a health round is thousands
            # of these; not rounded up to whole seconds (aiohttp does that from 5 s up).
            timeout = self._probe_timeout = aiohttp.ClientTimeout(
                total=timeout_s, ceil_threshold=float("inf")
            )
        try:
            async with self._session.get(_url(node.config.url, path), timeout=timeout) as resp:
                body = await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _from_exception(exc, node) from exc
        if resp.status != 200:
            raise _status_error(resp.status, body, node)
        return body

    async def tags(
        self, node: NodeState, timeout_s: float, last: Listing[dict[str, int]] | None = None
    ) -> Listing[dict[str, int]]:
        """The node's installed models (canonical name → created unix s) from `/api/tags`;
        `last` itself when the answer is the same as the one `last` was parsed from."""
        body = await self._get(node, TAGS_PATH, timeout_s)
        seen = tags_fingerprint(body)
        if last is not None and last.fingerprint == seen:
            return last
        return Listing(seen, parse_tags(body, node))

    async def loaded(
        self, node: NodeState, timeout_s: float, last: Listing[frozenset[str]] | None = None
    ) -> Listing[frozenset[str]]:
        """The models loaded in the node's memory (canonical names) from `/api/ps`; `last`
        itself when the answer is the same as the one `last` was parsed from."""
        body = await self._get(node, PS_PATH, timeout_s)
        seen = ps_fingerprint(body)
        if last is not None and last.fingerprint == seen:
            return last
        return Listing(seen, parse_loaded(body, node))


@lru_cache(maxsize=16384)
def _url(base: str, path: str) -> URL:
    # Parsed once per node and path: aiohttp would parse the string on every request, and yarl
    # keeps only its last 128 parsed URLs, so a health round over more nodes parsed each again.
    return URL(base + path)


@dataclass(frozen=True, slots=True)
class Listing(Generic[_T]):
    """A parsed `/api/tags` or `/api/ps` answer and the fingerprint of the body it came from.

    A node answers the same bytes round after round; parsing them was most of a health check's
    CPU (issue #5, S5: ~45 % of the router's time at idle with 50 models per node)."""

    fingerprint: tuple[int, int]
    value: _T


def tags_fingerprint(body: bytes) -> tuple[int, int]:
    # Python's hash of bytes is SipHash with a per-process random key, ~5 µs for 20 KB: equal
    # fingerprints of different answers are as unlikely as they are impossible to aim for.
    return len(body), hash(body)


def ps_fingerprint(body: bytes) -> tuple[int, int]:
    return tags_fingerprint(_EXPIRES_AT.sub(b"", body))


def _models(body: bytes, node: NodeState) -> list[Any] | None:
    """The `models` list of `/api/tags` or `/api/ps` (None if the answer has none)."""
    models = _parse_line(body, node).get("models")
    return models if isinstance(models, list) else None


def parse_tags(body: bytes, node: NodeState) -> dict[str, int]:
    models = _models(body, node)
    if models is None:
        raise UpstreamError(
            Outcome.PROTOCOL_ERROR, f"node {node.name}: /api/tags has no models list"
        )
    return {
        canonical(item["name"]): _unix(item.get("modified_at"))
        for item in models
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]
    }


def parse_loaded(body: bytes, node: NodeState) -> frozenset[str]:
    return frozenset(
        canonical(item["name"])
        for item in _models(body, node) or ()
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]
    )


def _parse_line(raw: bytes, node: NodeState) -> dict[str, Any]:
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


def _unix(stamp: object) -> int:
    """Ollama's RFC 3339 time (nanoseconds, any offset) as unix seconds; now if unreadable."""
    match = _RFC3339.match(stamp) if isinstance(stamp, str) else None
    if match:
        base, zone = match.group(1), match.group(2)
        zone = "+00:00" if zone in (None, "Z", "z") else zone
        try:
            return int(datetime.fromisoformat(base + zone).timestamp())
        except ValueError:
            pass
    return int(time.time())


class LineReader:
    """The raw NDJSON lines of one streamed answer, as many as have arrived per read.

    Reading whatever is buffered (rather than one line per await) lets a relay turn a burst of
    tokens into one write, with one timeout per read instead of per line.
    """

    __slots__ = ("_partial", "_resp", "node")

    def __init__(self, resp: aiohttp.ClientResponse, node: NodeState) -> None:
        self._resp, self.node, self._partial = resp, node, b""

    async def lines(self, timeout_s: float | None) -> list[bytes]:
        """The complete lines that have arrived (at least one), or [] at the end of the body.
        What is already buffered is taken without a timer; the wait for more has `timeout_s`."""
        content = self._resp.content
        while True:
            try:
                chunk = content.read_nowait()
                if not chunk and not content.is_eof():
                    if timeout_s is None:
                        chunk = await content.readany()
                    else:
                        async with asyncio.timeout(timeout_s):
                            chunk = await content.readany()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise _from_exception(exc, self.node) from exc
            if not chunk:
                return []  # a partial last line without its newline is not a line
            data = self._partial + chunk if self._partial else chunk
            lines = data.split(b"\n")
            self._partial = lines.pop()
            if len(self._partial) > MAX_LINE_BYTES:
                raise UpstreamError(
                    Outcome.PROTOCOL_ERROR,
                    f"node {self.node.name} sent a line over {MAX_LINE_BYTES} bytes",
                )
            complete = [line for line in lines if line and not line.isspace()]
            if complete:
                return complete

    def parse(self, raw: bytes) -> dict[str, Any]:
        return _parse_line(raw, self.node)

    def parse_lines(self, raws: list[bytes]) -> tuple[list[dict[str, Any]], UpstreamError | None]:
        """`raws` parsed, up to and including a done line (what follows it is not read). A bad
        line ends the list and comes back as the error: the lines before it still count.
        One call per read rather than per line: a 64-token burst is 64 lines (issue 5)."""
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
        guard = asyncio.get_running_loop().call_later(END_WAIT_S, resp.close)
        content.on_eof(guard.cancel)
