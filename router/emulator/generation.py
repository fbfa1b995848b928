"""`POST /api/chat` and `POST /api/generate`: validation order, faults, slots, pacing, writing.

Order follows Ollama's handlers: decode (400) → model (400/404) → unload → options (500) →
queue (503) → load → format (500, in the runner) → wait for a parallel slot → stream. Headers go
out only with the first line. A client that leaves is noticed by a failed write, a closing
transport between tokens, or task cancellation; the in-flight count is always given back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from .gojson import WireError, check_types, load_json
from .lines import LineEncoder, done_line, error_body, error_line, json_body
from .parse import (
    CHAT,
    GENERATE,
    SPECS,
    GenRequest,
    Options,
    build_request,
    check_model,
    parse_format,
)
from .parse import parse_options as parse_opts
from .state import NodeState
from .textgen import Reply, context_ids, make_reply

STATE = web.AppKey("emulator_state", NodeState)
PATHS = {CHAT: "/api/chat", GENERATE: "/api/generate"}
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
RUNNER_CRASH = "llama runner process has terminated: exit status 2"
MID_STREAM_ERROR = "an error was encountered while running the model: unexpected EOF"
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
# gin keeps the NDJSON handler's bare `application/json` for errors raised before the first line.
STREAM_ERROR_HEADERS = {"Content-Type": "application/json"}
NDJSON_HEADERS = {"Content-Type": "application/x-ndjson"}
_POLL_S = 0.05
_PREFIX_HIT_FACTOR = 0.2


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, headers=JSON_HEADERS)


def error_response(exc: WireError, *, streaming: bool = False) -> web.Response:
    headers = STREAM_ERROR_HEADERS if streaming else JSON_HEADERS
    return web.Response(status=exc.status, body=error_body(exc.message), headers=headers)


def _gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _pause(request: web.BaseRequest, seconds: float) -> None:
    """Sleep, checking the socket, so a departed client is noticed even without cancellation."""
    end = time.monotonic() + seconds
    while seconds > 0:
        await asyncio.sleep(min(seconds, _POLL_S))
        if _gone(request):
            raise ConnectionResetError("client went away")
        seconds = end - time.monotonic()


async def handle(request: web.Request, kind: str) -> web.StreamResponse:
    state = request.app[STATE]
    stats = state.stats
    stats.requests[PATHS[kind]] += 1
    arrival = time.perf_counter_ns()
    try:
        body = load_json(await request.read())
    except WireError as exc:
        return error_response(exc)
    if stats.record_bodies and isinstance(body, dict):
        stats.bodies.append(body)
        stats.headers.append(request.headers)
    if state.faults.active:
        faulted = await _fault(request, state)
        if faulted is not None:
            return faulted
    try:
        typed = check_types(body, SPECS[kind])
        key = check_model(kind, typed)
        if key not in state.catalog:
            raise WireError(404, f"model '{typed['model']}' not found")
        req = build_request(kind, typed, key)
        if req.is_load and req.keep_alive_s == 0:
            state.unload(key)
            stats.completed += 1
            return json_response(done_line_body(state, req, "unload"))
        options = parse_opts(req.options_raw)
    except WireError as exc:
        return error_response(exc)
    if stats.in_flight >= state.capacity:
        return json_response(error_body(BUSY_MESSAGE), 503)
    return await _admitted(request, state, req, options, arrival)


def done_line_body(state: NodeState, req: GenRequest, reason: str) -> bytes:
    obj = LineEncoder(req.kind, req.model, state.clock).final("", reason, {})
    return json_body(obj)


async def _admitted(
    request: web.Request, state: NodeState, req: GenRequest, options: Options, arrival: int
) -> web.StreamResponse:
    try:
        with state.slot():
            await state.ensure_loaded(req.key, req.keep_alive_s)
            load_ns = time.perf_counter_ns() - arrival
            if req.is_load:
                state.stats.completed += 1
                return json_response(done_line_body(state, req, "load"))
            try:
                fmt = parse_format(req.format_raw)
            except WireError as exc:
                return error_response(exc, streaming=req.stream)
            reply = make_reply(
                req.key,
                req.prompt,
                seed=options.seed,
                num_predict=options.num_predict,
                stop=options.stop,
                default_tokens=state.config.default_tokens,
                fmt=fmt,
            )
            run = _Run(request, state, req, options, reply, arrival, load_ns)
            async with state.semaphore:
                return await (run.stream() if req.stream else run.single())
    except ConnectionResetError:
        return web.Response()  # never sent: aiohttp sees the closed transport and drops it


async def _fault(request: web.Request, state: NodeState) -> web.StreamResponse | None:
    faults = state.faults
    mode = faults.mode
    if mode == "error" or (
        mode == "ok" and faults.error_rate > 0 and faults.rng.random() < faults.error_rate
    ):
        return json_response(error_body(RUNNER_CRASH), 500)
    if mode == "busy":
        return json_response(error_body(BUSY_MESSAGE), 503)
    transport = request.transport
    if mode == "drop":
        if transport is not None:
            transport.close()
        return web.Response()
    if mode == "hang":
        try:
            return await _hang(request, state)
        except ConnectionResetError:
            return web.Response()
    return None


async def _hang(request: web.Request, state: NodeState) -> web.StreamResponse:
    """Hold a slot and never answer, until the client leaves or the node shuts down."""
    with state.slot():
        while not _gone(request):
            try:
                async with asyncio.timeout(_POLL_S):
                    await state.closing.wait()
                break
            except TimeoutError:
                continue
        if not state.closing.is_set():
            raise ConnectionResetError("client went away")
        if request.transport is not None:
            request.transport.abort()
        return web.Response()


class _Run:
    """One admitted generation: pacing, fault cut-offs and the final metrics."""

    __slots__ = (
        "arrival",
        "cut",
        "drop",
        "enc",
        "first_ns",
        "gap_s",
        "load_ns",
        "options",
        "reply",
        "req",
        "request",
        "start_ns",
        "state",
        "ttft_s",
    )

    def __init__(
        self,
        request: web.Request,
        state: NodeState,
        req: GenRequest,
        options: Options,
        reply: Reply,
        arrival: int,
        load_ns: int,
    ) -> None:
        self.request, self.state, self.req = request, state, req
        self.options, self.reply = options, reply
        self.arrival, self.load_ns = arrival, load_ns
        config, faults = state.config, state.faults
        factor = _PREFIX_HIT_FACTOR if state.prefix_hit(req.key, req.units) else 1.0
        self.ttft_s = state.delay_s(config.ttft_ms) * factor
        tps = config.tokens_per_second
        self.gap_s = state.delay_s(1000.0 / tps) if tps > 0 else 0.0
        self.enc = LineEncoder(req.kind, req.model, state.clock)
        n = len(reply.tokens)
        self.cut: int | None = None
        if faults.die_after_tokens is not None:
            self.cut = min(max(0, faults.die_after_tokens), n)
        elif faults.drop_mid_stream:
            self.cut = n // 2
        self.drop = faults.drop_mid_stream
        self.start_ns = self.first_ns = 0

    def _final(self, content: str) -> dict[str, Any]:
        req, reply, now = self.req, self.reply, time.perf_counter_ns()
        emitted = len(reply.tokens)
        metrics = {
            "total_duration": now - self.arrival,
            "load_duration": max(1, self.load_ns),
            "prompt_eval_count": req.prompt_tokens,
            "prompt_eval_duration": max(1, self.first_ns - self.start_ns),
            "eval_count": emitted,
            "eval_duration": max(1, now - self.first_ns),
        }
        context = None
        if req.kind != CHAT and not req.raw:
            context = context_ids(
                req.key, req.prompt, self.options.seed, req.prompt_tokens + emitted
            )
        reply_unit = f"assistant\0{reply.text}" if req.kind == CHAT else None
        self.state.remember(req.key, req.units, reply_unit)
        return self.enc.final(content, reply.done_reason, metrics, context)

    async def stream(self) -> web.StreamResponse:
        request, resp = self.request, web.StreamResponse(headers=NDJSON_HEADERS)
        pending: list[bytes] = []
        self.start_ns = time.perf_counter_ns()
        await _pause(request, self.ttft_s)
        self.first_ns = time.perf_counter_ns()
        tokens = self.reply.tokens if self.cut is None else self.reply.tokens[: self.cut]
        for i, token in enumerate(tokens):
            if i and self.gap_s > 0:
                await self._flush(resp, pending)
                await _pause(request, self.gap_s)
            elif _gone(request):
                raise ConnectionResetError("client went away")
            pending.append(self.enc.token(token))
        if self.cut is None:
            pending.append(done_line(self._final("")))
        elif not self.drop:
            pending.append(error_line(MID_STREAM_ERROR))
        await self._flush(resp, pending)
        if self.cut is None:
            self.state.stats.completed += 1
        elif self.drop and request.transport is not None:
            request.transport.abort()
        return resp

    async def _flush(self, resp: web.StreamResponse, pending: list[bytes]) -> None:
        if not resp.prepared:
            await resp.prepare(self.request)
        if pending:
            await resp.write(b"".join(pending))
            pending.clear()

    async def single(self) -> web.StreamResponse:
        request = self.request
        self.start_ns = time.perf_counter_ns()
        await _pause(request, self.ttft_s)
        self.first_ns = time.perf_counter_ns()
        count = len(self.reply.tokens) if self.cut is None else self.cut
        await _pause(request, self.gap_s * max(0, count - 1))
        if self.cut is not None:
            if self.drop:
                if request.transport is not None:
                    request.transport.abort()
                return web.Response()
            return json_response(error_body(MID_STREAM_ERROR), 500)
        body = json_body(self._final(self.reply.text))
        self.state.stats.completed += 1
        return json_response(body)
