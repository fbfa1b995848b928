"""`POST /api/chat` and `POST /api/generate`: validation order, faults, slots, context.

Order follows Ollama's handlers: decode (400) → top_logprobs (400) → model (400/404) → unload →
thinking (400) → capability (400 for an embedding model) → options (500) → queue (503) → load
(a different `num_ctx` reloads) → format (500, in the runner) → context (400 when `truncate` is
false, else the prompt is cut) → wait for a parallel slot → stream (`run.Run`). Headers go out
only with the first line. A client that leaves is noticed by a failed write, a closing
transport between tokens, or task cancellation; the in-flight count is always given back.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web

from .gojson import WireError, check_types, go_quote, load_json
from .lines import LineEncoder, error_body, json_body
from .parse import (
    CHAT,
    GENERATE,
    SPECS,
    GenRequest,
    Options,
    build_request,
    check_model,
    check_top_logprobs,
    parse_format,
)
from .parse import parse_options as parse_opts
from .run import JSON_HEADERS, Run, gone, json_response
from .state import NodeState
from .textgen import make_reply
from .turn import make_turn

STATE = web.AppKey("emulator_state", NodeState)
PATHS = {CHAT: "/api/chat", GENERATE: "/api/generate"}
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
RUNNER_CRASH = "llama runner process has terminated: exit status 2"
# gin keeps the NDJSON handler's bare `application/json` for errors raised before the first line.
STREAM_ERROR_HEADERS = {"Content-Type": "application/json"}
_POLL_S = 0.05

__all__ = ["BUSY_MESSAGE", "STATE", "handle", "json_response"]


def error_response(exc: WireError, *, streaming: bool = False) -> web.Response:
    headers = STREAM_ERROR_HEADERS if streaming else JSON_HEADERS
    return web.Response(status=exc.status, body=error_body(exc.message), headers=headers)


def overflow_error(prompt_tokens: int, ctx: int) -> WireError:
    """llama-server's refusal, passed on by Ollama v0.30+ as its error string (5.6)."""
    inner = {
        "code": 400,
        "message": f"request ({prompt_tokens} tokens) exceeds the available context size "
        f"({ctx} tokens), try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": prompt_tokens,
        "n_ctx": ctx,
    }
    return WireError(400, orjson.dumps({"error": inner}).decode())


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
        faulted = await fault(request, state)
        if faulted is not None:
            return faulted
    try:
        typed = check_types(body, SPECS[kind])
        check_top_logprobs(typed)
        key = check_model(kind, typed)
        info = state.catalog.get(key)
        if info is None:
            raise WireError(404, f"model '{typed['model']}' not found")
        req = build_request(kind, typed, key, thinking=info.thinking)
        if req.is_load and req.keep_alive_s == 0:
            state.unload(key)
            stats.completed += 1
            return json_response(done_line_body(state, req, "unload"))
        if info.embedding_only:
            raise WireError(400, f"{go_quote(req.model)} does not support {kind}")
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
            ctx = await state.ensure_loaded(req.key, req.keep_alive_s, options.num_ctx)
            load_ns = time.perf_counter_ns() - arrival
            if req.is_load:
                state.stats.completed += 1
                return json_response(done_line_body(state, req, "load"))
            try:
                fmt = parse_format(req.format_raw)
                prompt_tokens = req.prompt_tokens
                if prompt_tokens > ctx:
                    if not req.truncate:
                        raise overflow_error(prompt_tokens, ctx)
                    prompt_tokens = ctx  # Ollama drops old messages / cuts the prompt silently
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
            native = state.config.tool_call_path == "native"
            turn = make_turn(req, reply, options.seed, native_tools=native)
            run = Run(request, state, req, options, turn, (arrival, load_ns), prompt_tokens)
            async with state.semaphore:
                return await (run.stream() if req.stream else run.single())
    except ConnectionResetError:
        return web.Response()  # never sent: aiohttp sees the closed transport and drops it


async def fault(request: web.Request, state: NodeState) -> web.StreamResponse | None:
    """The switched-on fault's answer, or None to serve normally (chat, generate, embed)."""
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
        while not gone(request):
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
