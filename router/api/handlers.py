"""HTTP handlers: thin. Read the body → parse → dispatch → write.

Streams commit at `response.prepare()`: before it, any failure is an HTTP error (and failed
over inside dispatch); after it, a failure is one SSE error event and the stream closes.
Streamed and gathered answers both read a `upstream.generation.Generation`. `_route_model`,
`_relay` (the one SSE loop, for every streamed API: it takes the API's encoder; its per-token
part, `_pump`, runs in a task of its own) and `_json` are shared with the handlers of the other
APIs (`responses`, `messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from router.api import choices, edge, models_view, policy
from router.api.stamp import stamp
from router.api.state import STATE, RouterState
from router.context import CTX, RequestContext
from router.errors import ModelNotFound
from router.modelnames import canonical
from router.routing.affinity import session_key
from router.upstream.client import CHAT_PATH, GENERATE_PATH
from router.upstream.generation import Generation, fetch
from router.upstream.outcome import UpstreamError
from router.upstream.payloads import Build, Payloads
from router.wire import sse
from router.wire.openai import (
    ChatRequest,
    CompletionRequest,
    parse_chat,
    parse_completion,
)
from router.wire.translate import (
    ChatStream,
    CompletionStream,
    Usage,
    chat_completion,
    chat_payload,
    completion_payload,
    new_id,
    text_completion,
)

JSON = "application/json"
# Requests with the same session id prefer the node that served the conversation before.
SESSION_HEADER = "X-Session-ID"


class StreamEncoder(Protocol):
    """Ollama lines → one API's stream (ChatStream, CompletionStream, ResponsesStream,
    MessagesStream): what `_relay` needs, so every streamed API shares its one loop."""

    def start(self) -> bytes: ...
    def feed_all(self, lines: list[dict[str, Any]], out: list[bytes]) -> None: ...
    def finish(self, done: dict[str, Any]) -> tuple[bytes, Usage]: ...
    def error(self, message: str) -> bytes: ...


def _json_object(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON)


async def _route_model(state: RouterState, ctx: RequestContext, requested: str) -> str:
    """The canonical name to route on (a catalog entry, or a node model); refreshes the model
    map once before a 404. Known when some node was seen with any of the entry's targets."""
    ctx.model = requested
    model = canonical(requested)
    policy.require_model(ctx.key, model, requested)  # outside the key's allowlist: as absent
    entry = state.catalog.resolve(model)
    if not _known(state, entry.targets):
        await state.health.refresh()  # a model pulled a second ago is served at once
        if not _known(state, entry.targets):
            raise ModelNotFound(
                f"The model '{requested}' does not exist or no node serves it.", param="model"
            )
    ctx.model_label = entry.public_id
    return model


def _known(state: RouterState, targets: tuple[str, ...]) -> bool:
    """Whether some node was seen with one of `targets`. A loop, not `any()` over a generator:
    stopping a generator early closes it with an exception, on every request."""
    for target in targets:  # noqa: SIM110 (see the docstring)
        if state.fleet.knows(target):
            return True
    return False


def can_think(state: RouterState, target: str) -> bool:
    """Whether `think` may go to `target` (a node model): false only once a node's `/api/show`
    (cached, `catalog.facts`) said the model has no `thinking` capability, since Ollama answers
    400 to a model that cannot think when asked to. Unknown: true (nothing is fetched here)."""
    for node in state.fleet.candidates(target):
        facts = state.facts.cached(node, target)
        if facts is not None and facts.capabilities:
            return "thinking" in facts.capabilities
    return True


def payloads(state: RouterState, model: str, build: Build) -> bytes | Payloads:
    """The request's payload per node model of `model`'s entry, with the entry's options:
    `build(node model, overrides)`, e.g. `lambda m, o: chat_payload(req, m, o)`; built the
    first time a node of that target is tried (issue #15). An entry with one target (every
    model without a catalog entry) has one payload for every node: its bytes, built now."""
    entry = state.catalog.resolve(model)
    if len(entry.targets) == 1:
        return build(entry.targets[0], entry.overrides)
    return Payloads(entry, build)


def _gathers_stream(state: RouterState) -> bool:
    """Whether a non-streamed answer is gathered from the node's stream (`routing.gather`)."""
    return state.config.routing.gather == "stream"


def _json(body: bytes, ctx: RequestContext, state: RouterState) -> web.Response:
    own_ms = (state.clock() - ctx.start - ctx.upstream_s) * 1000
    timing = f"upstream;dur={ctx.upstream_s * 1000:.2f}, router;dur={own_ms:.2f}"
    # X-Request-ID is added by the middleware, as on every answer not yet sent.
    return web.Response(body=body, headers={"Content-Type": JSON, "Server-Timing": timing})


async def chat_request(request: web.Request) -> tuple[ChatRequest, str]:
    """The chat request parsed, the model to route on, and the request's context filled in
    (tokens asked, affinity key): the first half of `chat_completions` (and of the stages of
    `benchmarks.ladder`)."""
    state, ctx = request.app[STATE], request[CTX]
    ctx.api = "chat"
    req = parse_chat(await edge.json_body(request))
    model = await _route_model(state, ctx, req.model)
    ctx.max_tokens = req.sampling.max_tokens
    if state.config.routing.affinity:
        ctx.session = session_key(
            session_id=request.headers.get(SESSION_HEADER), user=req.user, messages=req.messages
        )
    return req, model


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    req, model = await chat_request(request)
    id_, created = new_id("chatcmpl-"), int(time.time())
    if not req.plain:
        return await _choices(request, state, ctx, model, CHAT_PATH, req, id_, created)
    stream = req.stream or _gathers_stream(state)
    payload = payloads(state, model, lambda m, o: chat_payload(req, m, o, stream=stream))
    if req.stream:
        encoder = ChatStream(req.model, id_, created, req.include_usage)
        return await _relay(request, state, ctx, model, CHAT_PATH, payload, encoder)
    gathered = await fetch(state.dispatcher, ctx, model, CHAT_PATH, payload, whole=not stream)
    body, usage = chat_completion(gathered.chat(), req.model, id_, created)
    ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    return _json(body, ctx, state)


async def completions(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    ctx.api = "completions"
    req = parse_completion(await edge.json_body(request))
    model = await _route_model(state, ctx, req.model)
    ctx.max_tokens = req.sampling.max_tokens
    if state.config.routing.affinity:
        ctx.session = session_key(
            session_id=request.headers.get(SESSION_HEADER),
            user=req.user,
            messages=None,
            prompt=req.prompt,
        )
    id_, created = new_id("cmpl-"), int(time.time())
    if not req.plain:
        return await _choices(request, state, ctx, model, GENERATE_PATH, req, id_, created)
    stream = req.stream or _gathers_stream(state)
    payload = payloads(state, model, lambda m, o: completion_payload(req, m, o, stream=stream))
    if req.stream:
        encoder = CompletionStream(req.model, id_, created, req.include_usage)
        return await _relay(request, state, ctx, model, GENERATE_PATH, payload, encoder)
    gathered = await fetch(state.dispatcher, ctx, model, GENERATE_PATH, payload, whole=not stream)
    body, usage = text_completion(gathered.generate(), req.model, id_, created)
    ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    return _json(body, ctx, state)


async def _choices(
    request: web.Request,
    state: RouterState,
    ctx: RequestContext,
    model: str,
    path: str,
    req: ChatRequest | CompletionRequest,
    id_: str,
    created: int,
) -> web.StreamResponse:
    """`n` > 1, logprobs or one call at most: one generation per choice (`api.choices`)."""
    each = [_payloads(state, choices.seeded(req, i), model) for i in range(req.n)]
    if req.stream:
        frame, encoders = choices.encoders(req, id_, created)
        return await choices.streamed(
            request, state, ctx, model, path, each, frame, encoders, req.include_usage
        )
    body = await choices.gathered(state, ctx, model, path, each, req, id_, created)
    return _json(body, ctx, state)


def _payloads(
    state: RouterState, req: ChatRequest | CompletionRequest, model: str
) -> bytes | Payloads:
    if isinstance(req, ChatRequest):
        return payloads(state, model, lambda m, o: chat_payload(req, m, o))
    return payloads(state, model, lambda m, o: completion_payload(req, m, o))


async def _relay(
    request: web.Request,
    state: RouterState,
    ctx: RequestContext,
    model: str,
    path: str,
    payload: bytes | Payloads,
    encoder: StreamEncoder,
) -> web.StreamResponse:
    """Ollama NDJSON → the encoder's SSE, one write per read of whatever lines have arrived.
    Where the generation (slot and node connection) ends, and what it records:
    `upstream.generation`."""
    ctx.stream = True
    generation = Generation(state.dispatcher, ctx, model, path, payload)
    response = web.StreamResponse(headers=sse.HEADERS)
    out: list[bytes] = []  # chunks not yet written
    try:
        async with generation:  # fails over until a node's first line has arrived
            stamp(request, response)
            await response.prepare(request)  # the commit point: from here nothing is replayed
            ctx.status, ctx.committed = 200, True
            start = encoder.start()  # e.g. chat's role chunk, response.created, message_start
            if start:
                out.append(start)
            await asyncio.create_task(_pump(generation, encoder, response, out))
        done = generation.done
        assert done is not None  # the iteration ends at the done line, or raises
        tail, usage = encoder.finish(done)
        out.append(tail)
        ctx.prompt_tokens, ctx.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        await response.write_eof(b"".join(out))  # the last chunk and the end, one send
    except UpstreamError as exc:  # after the commit: the node failed mid-stream
        ctx.error = exc.outcome.value
        # What arrived before the failure still goes out, then the error event.
        error = encoder.error(f"The stream failed: {exc.message}")
        await _write_quietly(response, b"".join(out) + error)
    except asyncio.CancelledError:  # the client left (aiohttp cancels the handler)
        _client_left(ctx)
        raise
    except ConnectionResetError:  # the client left and a write noticed first
        _client_left(ctx)
    return response


async def _pump(
    generation: Generation, encoder: StreamEncoder, response: web.StreamResponse, out: list[bytes]
) -> None:
    """The per-token loop, in a task of its own: each token resumes this task's 5 frames, not
    the handler's 12 (aiohttp's, the middleware's), issue #16: S6's CPU per token went from
    1.28x to 1.17x the bare relay's (median of 6 paired runs each).
    The handler awaits it, so cancelling the handler cancels it first, and its errors are the
    handler's; `out` keeps what arrived and was not sent yet."""
    async for lines in generation:
        encoder.feed_all(lines, out)
        if generation.done is not None:  # the last lines go out with the end; no read is left
            break
        if out:
            await response.write(b"".join(out))
            out.clear()


def _client_left(ctx: RequestContext) -> None:
    ctx.client_disconnected, ctx.status = True, 499


async def _write_quietly(response: web.StreamResponse, data: bytes) -> None:
    with contextlib.suppress(ConnectionResetError):
        await response.write(data)


async def list_models(request: web.Request) -> web.StreamResponse:
    data = await models_view.model_list(request.app[STATE], request[CTX].key)
    return _json_object({"object": "list", "data": data})


async def get_model(request: web.Request) -> web.StreamResponse:
    state, ctx = request.app[STATE], request[CTX]
    requested = request.match_info["model"]
    found = models_view.find(state, ctx.key, requested)
    if found is None:
        ctx.model = requested
        raise ModelNotFound(
            f"The model '{requested}' does not exist or no healthy node serves it.", param="model"
        )
    return _json_object(await models_view.model_object(state, *found))


async def healthz(request: web.Request) -> web.StreamResponse:
    return _json_object({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    healthy = sum(1 for n in request.app[STATE].fleet.nodes.values() if n.healthy)
    if healthy:
        return _json_object({"status": "ready", "healthy_nodes": healthy})
    return _json_object({"status": "no healthy node", "healthy_nodes": 0}, status=503)


async def metrics(request: web.Request) -> web.StreamResponse:
    body = generate_latest(request.app[STATE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
