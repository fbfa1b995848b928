"""Process entry: the aiohttp load generator. A JSON spec in (argv[1]), a JSON result out to the
file argv[2] (not stdout: a pipe left non-blocking by the event loop truncates large writes).

Closed loop: `concurrency` workers, each sending its next request when the last one ended, until
the window closes or `max_requests` were sent. Native NDJSON (direct, floor, nginx) and OpenAI SSE
(router, LiteLLM) get equal effort: one read call and one `orjson.loads` per line/event. The
Responses and Messages streams (`event:` + `data:` events, typed by the data's `type`) count a
token per text delta (`response.output_text.delta`, a `text_delta` of `content_block_delta`) and
end at `response.completed` / `message_stop`. Times are
`time.monotonic()`, the clock of the orchestrator's /proc sampler, so CPU % covers the same window.

Counting: a request counts toward req/s and latency if it *ended* inside the window
[start + warmup_s, start + warmup_s + duration_s]; a token counts if it *arrived* inside it.
After the window, requests in flight get `grace_s` to finish; the rest are cancelled and failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.node import run_fast


@dataclass(slots=True)
class LoadSpec:
    urls: list[str]  # round-robin per request (S5 direct spreads over 200 nodes)
    protocol: str  # "native" | "openai" | "responses" | "messages"
    bodies: list[str]  # round-robin per request
    headers: dict[str, str]
    stream: bool
    concurrency: int
    duration_s: float
    expect_tokens: int
    warmup_s: float = 0.0
    ramp_s: float = 0.0  # worker i starts at ramp_s * i / concurrency
    grace_s: float = 10.0
    max_requests: int = 1_000_000
    mixed: bool = False  # odd workers stream, even ones do not (memory soak)


@dataclass(slots=True)
class LoadResult:
    window_s: float = 0.0
    requests: int = 0  # ended OK inside the window
    tokens: int = 0  # arrived inside the window
    sent: int = 0
    completed: int = 0  # ended OK, at any time
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    router_ms: list[float] = field(default_factory=list)  # Server-Timing router;dur
    cpu_s: float = 0.0  # this process's CPU time inside the window
    window: tuple[float, float] = (0.0, 0.0)  # time.monotonic(), shared with the orchestrator


class _Failed(Exception):
    pass


# Typed SSE streams: (the event that carries a text delta, the event that ends the stream).
_TYPED = {
    "responses": ("response.output_text.delta", "response.completed"),
    "messages": ("content_block_delta", "message_stop"),
}
_TYPED_FAILURES = frozenset({"error", "response.failed", "response.incomplete"})


class Load:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.result = LoadResult()
        self.errors: Counter[str] = Counter()
        self.w0 = self.w1 = 0.0
        self._cpu0: float | None = None
        self.n = 0

    def _in_window(self, t: float) -> bool:
        return self.w0 <= t <= self.w1

    async def one(self, session: aiohttp.ClientSession, stream: bool) -> None:
        spec, i = self.spec, self.n
        self.n += 1
        url, body = spec.urls[i % len(spec.urls)], spec.bodies[i % len(spec.bodies)]
        if spec.mixed:
            body = body.replace('"stream":false', f'"stream":{"true" if stream else "false"}')
        t0 = time.monotonic()
        async with session.post(url, data=body, headers=spec.headers) as resp:
            if resp.status != 200:
                await resp.read()
                raise _Failed(f"http_{resp.status}")
            if stream and spec.protocol in _TYPED:
                first, tokens = await self._stream_typed(resp)
            elif stream:
                first, tokens = await self._stream(resp)
            else:
                first, tokens = None, self._single(await resp.read())
                timing = resp.headers.get("Server-Timing", "")
                if "router;dur=" in timing:
                    self.result.router_ms.append(float(timing.rsplit("router;dur=", 1)[1]))
        end = time.monotonic()
        if tokens != spec.expect_tokens:
            raise _Failed(f"tokens_{tokens}")
        self.result.completed += 1
        if self._in_window(end):
            self.result.requests += 1
            self.result.latency_ms.append((end - t0) * 1000)
            if first is not None:
                self.result.ttft_ms.append((first - t0) * 1000)
            if not stream:
                self.result.tokens += tokens

    def _single(self, raw: bytes) -> int:
        data = orjson.loads(raw)
        if self.spec.protocol == "native":
            if not data.get("done") or not data["message"]["content"]:
                raise _Failed("bad_body")
            return int(data["eval_count"])
        if self.spec.protocol == "responses":
            if not data["output"][-1]["content"][0]["text"]:
                raise _Failed("bad_body")
            return int(data["usage"]["output_tokens"])
        if self.spec.protocol == "messages":
            if not data["content"][0]["text"]:
                raise _Failed("bad_body")
            return int(data["usage"]["output_tokens"])
        if not data["choices"][0]["message"]["content"]:
            raise _Failed("bad_body")
        return int(data["usage"]["completion_tokens"])

    async def _stream(self, resp: aiohttp.ClientResponse) -> tuple[float | None, int]:
        native = self.spec.protocol == "native"
        sep = b"\n" if native else b"\n\n"
        content, first, tokens = resp.content, None, 0
        while True:
            raw = await content.readuntil(sep)
            if not raw:
                raise _Failed("incomplete")
            if native:
                data = orjson.loads(raw)
                text = data["message"]["content"] if "message" in data else None
                done = data.get("done", False)
            else:
                if raw.startswith(b"data: [DONE]"):
                    break
                if not raw.startswith(b"data: "):
                    continue  # a keep-alive comment
                data = orjson.loads(raw[6:])
                if "error" in data:
                    raise _Failed("sse_error")
                choices = data["choices"]
                text = choices[0]["delta"].get("content") if choices else None
                done = False
            if text:
                now = time.monotonic()
                if first is None:
                    first = now
                tokens += 1
                if self._in_window(now):
                    self.result.tokens += 1
            if done:
                break
        return first, tokens

    async def _stream_typed(self, resp: aiohttp.ClientResponse) -> tuple[float | None, int]:
        """A Responses or Messages stream: one read call and one `orjson.loads` per event."""
        delta_type, end_type = _TYPED[self.spec.protocol]
        responses = self.spec.protocol == "responses"
        content, first, tokens = resp.content, None, 0
        while True:
            raw = await content.readuntil(b"\n\n")
            if not raw:
                raise _Failed("incomplete")
            at = raw.find(b"data:")
            if at < 0:
                continue  # a comment, or an event without data (`ping`)
            data = orjson.loads(raw[at + 5 :])
            kind = data.get("type")
            if kind == end_type:
                break
            if kind in _TYPED_FAILURES:
                raise _Failed("sse_error")
            if kind != delta_type:
                continue
            text = data["delta"] if responses else data["delta"].get("text")
            if text:
                now = time.monotonic()
                if first is None:
                    first = now
                tokens += 1
                if self._in_window(now):
                    self.result.tokens += 1
        return first, tokens

    async def worker(self, session: aiohttp.ClientSession, index: int) -> None:
        spec = self.spec
        await asyncio.sleep(spec.ramp_s * index / spec.concurrency)
        stream = spec.stream or (spec.mixed and index % 2 == 1)
        while time.monotonic() < self.w1 and self.result.sent < spec.max_requests:
            self.result.sent += 1
            try:
                await self.one(session, stream)
            except (_Failed, aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
                self.result.failed += 1
                self.errors[str(exc) if isinstance(exc, _Failed) else type(exc).__name__] += 1

    async def _window_cpu(self) -> None:
        """The client's own CPU time over the window: what it costs the core it shares with the
        nodes (a proxy that answers in a costlier format slows that core down)."""
        await asyncio.sleep(max(0.0, self.w0 - time.monotonic()))
        self._cpu0 = time.process_time()
        await asyncio.sleep(max(0.0, self.w1 - time.monotonic()))
        self.result.cpu_s = time.process_time() - self._cpu0

    async def run(self) -> LoadResult:
        spec = self.spec
        start = time.monotonic()
        self.w0 = start + spec.warmup_s
        self.w1 = self.w0 + spec.duration_s
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        window_cpu = asyncio.create_task(self._window_cpu())
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            workers = [
                asyncio.create_task(self.worker(session, i)) for i in range(spec.concurrency)
            ]
            late: set[asyncio.Task[None]] = set()
            if workers:  # every worker stops sending at w1; in-flight ones get grace_s more
                wait_s = max(0.0, self.w1 - time.monotonic()) + spec.grace_s
                _done, late = await asyncio.wait(workers, timeout=wait_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                self.result.failed += len(late)
                self.errors["unfinished_after_grace"] += len(late)
        if not window_cpu.done():  # all sent (max_requests) before the window closed
            window_cpu.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await window_cpu
            if self._cpu0 is not None:
                self.result.cpu_s = time.process_time() - self._cpu0
        self.result.window_s = spec.duration_s
        self.result.window = (self.w0, self.w1)
        self.result.errors = dict(self.errors)
        return self.result


def main() -> None:
    spec = LoadSpec(**orjson.loads(sys.argv[1]))
    out: dict[str, Any] = {}

    async def go() -> None:
        out.update(asdict(await Load(spec).run()))

    run_fast(go())
    Path(sys.argv[2]).write_bytes(orjson.dumps(out))


if __name__ == "__main__":
    main()
