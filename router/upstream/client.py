"""Talking to one Ollama node: the only module that knows Ollama's URLs and status codes.

Every failure becomes one `UpstreamError` with a small `Outcome` (`outcome`), so dispatch can
decide "retry elsewhere?" and "is the node sick?" without knowing aiohttp or Ollama. A
generation's body is read by `lines.LineReader`.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Generic, TypeVar

import aiohttp
import orjson
from yarl import URL

from router.config import RoutingConfig
from router.fleet.registry import NodeState
from router.modelnames import canonical
from router.upstream.lines import parse_line
from router.upstream.outcome import Outcome, UpstreamError, from_exception

CHAT_PATH = "/api/chat"
GENERATE_PATH = "/api/generate"
EMBED_PATH = "/api/embed"
TAGS_PATH = "/api/tags"
PS_PATH = "/api/ps"
SHOW_PATH = "/api/show"
PULL_PATH = "/api/pull"
_JSON_HEADERS = {"Content-Type": "application/json"}
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|z|[+-]\d\d:\d\d)?$")
# An /api/ps entry's `expires_at` moves after every request the node serves (and jitters in the
# emulator); the fingerprint leaves it out, as routing only reads the names.
_EXPIRES_AT = re.compile(rb'"expires_at":"[^"]*"')
_T = TypeVar("_T")


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
        self.request_timeout_s = routing.request_timeout_s
        self._timeout = aiohttp.ClientTimeout(
            total=routing.request_timeout_s, sock_connect=routing.connect_timeout_s
        )
        # A generation bounds its own time (`LineReader.watch`): aiohttp's `total` would enter
        # its timer again on every read of the body, a cost per token (issue #16).
        self._stream_timeout = aiohttp.ClientTimeout(sock_connect=routing.connect_timeout_s)
        self._probe_timeout = aiohttp.ClientTimeout()

    async def open_stream(
        self, node: NodeState, path: str, payload: bytes, request_id: str
    ) -> aiohttp.ClientResponse:
        """`open` with no overall time limit: the caller bounds the request and its reads
        (`upstream.generation`). The caller closes the response."""
        return await self._open(node, path, payload, request_id, self._stream_timeout)

    async def open(
        self, node: NodeState, path: str, payload: bytes, request_id: str
    ) -> aiohttp.ClientResponse:
        """POST a generation; a 200 response (body unread) or UpstreamError. Caller closes it."""
        return await self._open(node, path, payload, request_id, self._timeout)

    async def _open(
        self,
        node: NodeState,
        path: str,
        payload: bytes,
        request_id: str,
        limits: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        headers = {**_JSON_HEADERS, "X-Request-ID": request_id}
        try:
            resp = await self._session.post(
                _url(node.config.url, path), data=payload, headers=headers, timeout=limits
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise from_exception(exc, node) from exc
        if resp.status == 200:
            return resp
        try:
            body = await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError):
            body = b""
        finally:
            resp.release()
        raise _status_error(resp.status, body, node)

    async def post_json(self, node: NodeState, path: str, payload: bytes, request_id: str) -> bytes:
        """POST a unary request (`/api/embed` answers one JSON object, never a stream): the
        body of a 200 answer, or UpstreamError."""
        resp = await self.open(node, path, payload, request_id)
        try:
            return await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise from_exception(exc, node) from exc
        finally:
            resp.release()

    async def load(self, node: NodeState, payload: bytes, *, embed: bool = False) -> None:
        """Ollama's own load (or, with `keep_alive: 0`, unload) request: `/api/generate` with
        an empty prompt, or `/api/embed` without input for an embedding model (1.6, 1.7).
        Waits for the load to end, however long (the request timeout bounds it)."""
        path = EMBED_PATH if embed else GENERATE_PATH
        try:
            async with self._session.post(
                _url(node.config.url, path),
                data=payload,
                headers=_JSON_HEADERS,
                timeout=self._timeout,
            ) as resp:
                body = await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise from_exception(exc, node) from exc
        if resp.status != 200:
            raise _status_error(resp.status, body, node)

    async def show(self, node: NodeState, model: str, timeout_s: float) -> dict[str, Any]:
        """`/api/show` for `model`: its capabilities and `model_info` (1.8)."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.post(
                _url(node.config.url, SHOW_PATH),
                data=orjson.dumps({"model": model}),
                headers=_JSON_HEADERS,
                timeout=timeout,
            ) as resp:
                body = await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise from_exception(exc, node) from exc
        if resp.status != 200:
            raise _status_error(resp.status, body, node)
        return parse_line(body, node)

    async def pull(self, node: NodeState, model: str) -> AsyncIterator[dict[str, Any]]:
        """`/api/pull`'s progress lines, parsed (5.7); a line with `error` ends it. No
        overall timeout: a pull takes as long as the download (each read waits 5 min)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=300.0)
        payload = orjson.dumps({"model": model, "stream": True})
        try:
            async with self._session.post(
                _url(node.config.url, PULL_PATH),
                data=payload,
                headers=_JSON_HEADERS,
                timeout=timeout,
            ) as resp:
                if resp.status != 200:
                    raise _status_error(resp.status, await resp.read(), node)
                async for raw in resp.content:
                    if raw.strip():
                        yield parse_line(raw, node)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise from_exception(exc, node) from exc

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
            raise from_exception(exc, node) from exc
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
        self, node: NodeState, timeout_s: float, last: Listing[dict[str, int | None]] | None = None
    ) -> Listing[dict[str, int | None]]:
        """The models loaded in the node's memory (canonical name → context length) from
        `/api/ps`; `last` itself when the answer is the same as the one `last` was parsed
        from."""
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
    models = parse_line(body, node).get("models")
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


def parse_loaded(body: bytes, node: NodeState) -> dict[str, int | None]:
    """Canonical name → the runner's `context_length` (None when the node does not say)."""
    out: dict[str, int | None] = {}
    for item in _models(body, node) or ():
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
            ctx = item.get("context_length")
            good = isinstance(ctx, int) and not isinstance(ctx, bool) and ctx > 0
            out[canonical(item["name"])] = ctx if good else None
    return out


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
