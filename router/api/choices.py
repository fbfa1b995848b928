"""Chat and completions answers the single-choice fast path does not serve: `n` > 1,
`logprobs`, `parallel_tool_calls: false` (`ChatRequest.plain` says which).

Each choice is its own generation (its own failover and slot, on one node or several), all
run concurrently. Gathered: every choice read to its end (`fetch`), then one body with every
choice (`router.wire.choices.merged_body`). Streamed: every generation is opened (failed over
until its first line) before the commit point, so a node that fails early costs the client
nothing; then one task per choice feeds a queue that the handler turns into chunks, each
carrying its choice's `index`, written as they come. A choice that fails after the commit
ends the answer with one SSE error event; the other generations are closed (their slots come
back, counted as cancelled, never the node's fault). Pure encoding: `router.wire.choices`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from aiohttp import web

from router.api.stamp import stamp
from router.api.state import RouterState
from router.api.together import all_of
from router.context import RequestContext
from router.upstream.generation import Generation, fetch
from router.upstream.outcome import UpstreamError
from router.upstream.payloads import Payloads
from router.wire import sse
from router.wire.choices import (
    ChatChoiceStream,
    CompletionChoiceStream,
    StreamFrame,
    chat_choice,
    completion_choice,
    merged_body,
    total_usage,
)
from router.wire.openai import ChatRequest, CompletionRequest
from router.wire.to_openai import Usage

Encoder = ChatChoiceStream | CompletionChoiceStream
Lines = list[dict[str, Any]]


def seeded(req: ChatRequest | CompletionRequest, index: int) -> ChatRequest | CompletionRequest:
    """With a `seed`, choice i samples with seed + i: the choices differ, and the same request
    gives the same choices again."""
    seed = req.sampling.seed
    if seed is None or index == 0:
        return req
    return replace(req, sampling=replace(req.sampling, seed=seed + index))


async def gathered(
    state: RouterState,
    ctx: RequestContext,
    model: str,
    path: str,
    payloads: Sequence[bytes | Payloads],
    req: ChatRequest | CompletionRequest,
    id_: str,
    created: int,
) -> bytes:
    """The whole answer with one choice per payload."""
    answers = await all_of([fetch(state.dispatcher, ctx, model, path, p) for p in payloads])
    choices, usages = [], []
    for i, answer in enumerate(answers):
        if isinstance(req, ChatRequest):
            max_calls = req.tool_plan().max_calls
            choice, usage = chat_choice(
                answer.chat(), i, logprobs=req.logprobs, max_calls=max_calls
            )
        else:
            choice, usage = completion_choice(answer.generate(), i, logprobs=req.logprobs)
        choices.append(choice)
        usages.append(usage)
    _count(ctx, usages)
    name = "chat.completion" if isinstance(req, ChatRequest) else "text_completion"
    return merged_body(name, choices, usages, model=req.model, id_=id_, created=created)


def encoders(
    req: ChatRequest | CompletionRequest, id_: str, created: int
) -> tuple[StreamFrame, list[Encoder]]:
    if isinstance(req, ChatRequest):
        frame = StreamFrame("chat.completion.chunk", model=req.model, id_=id_, created=created)
        max_calls = req.tool_plan().max_calls
        chat: list[Encoder] = [
            ChatChoiceStream(frame, i, logprobs=req.logprobs, max_calls=max_calls)
            for i in range(req.n)
        ]
        return frame, chat
    frame = StreamFrame("text_completion", model=req.model, id_=id_, created=created)
    return frame, [CompletionChoiceStream(frame, i, logprobs=req.logprobs) for i in range(req.n)]


async def streamed(
    request: web.Request,
    state: RouterState,
    ctx: RequestContext,
    model: str,
    path: str,
    payloads: Sequence[bytes | Payloads],
    frame: StreamFrame,
    encoders: Sequence[Encoder],
    include_usage: bool,
) -> web.StreamResponse:
    ctx.stream = True
    response = web.StreamResponse(headers=sse.HEADERS)
    generations = [Generation(state.dispatcher, ctx, model, path, p) for p in payloads]
    out: list[bytes] = []
    async with contextlib.AsyncExitStack() as stack:
        # Every generation fails over until its first line, before anything is sent.
        await all_of([stack.enter_async_context(g) for g in generations])
        try:
            stamp(request, response)
            await response.prepare(request)  # the commit point: from here nothing is replayed
            ctx.status, ctx.committed = 200, True
            out.extend(e.start() for e in encoders)
            usages = await _relay(response, generations, encoders, out)
            out.append(frame.close(usages, include_usage))
            _count(ctx, usages)
            await response.write_eof(b"".join(out))
        except UpstreamError as exc:  # after the commit: a node failed mid-stream
            ctx.error = exc.outcome.value
            error = sse.error_event(f"The stream failed: {exc.message}")
            with contextlib.suppress(ConnectionResetError):
                await response.write(b"".join(out) + error)
        except asyncio.CancelledError:  # the client left
            ctx.client_disconnected, ctx.status = True, 499
            raise
        except ConnectionResetError:
            ctx.client_disconnected, ctx.status = True, 499
    return response


async def _relay(
    response: web.StreamResponse,
    generations: Sequence[Generation],
    encoders: Sequence[Encoder],
    out: list[bytes],
) -> list[Usage]:
    """Chunks of every choice as their lines arrive; each choice's usage once it ended."""
    queue: asyncio.Queue[tuple[int, Lines | UpstreamError | None]] = asyncio.Queue()

    async def pump(index: int, generation: Generation) -> None:
        try:
            async for lines in generation:
                queue.put_nowait((index, lines))
            queue.put_nowait((index, None))
        except UpstreamError as exc:
            queue.put_nowait((index, exc))

    tasks = [asyncio.create_task(pump(i, g)) for i, g in enumerate(generations)]
    usages: list[Usage | None] = [None] * len(generations)
    try:
        while any(u is None for u in usages):
            index, item = await queue.get()
            if isinstance(item, UpstreamError):
                raise item
            encoder = encoders[index]
            if item is None:
                done = generations[index].done
                assert done is not None  # the iteration ends at the done line, or raises
                chunk, usages[index] = encoder.finish(done)
                out.append(chunk)
                continue
            out.extend(encoder.feed(line) for line in item)
            if queue.empty() and any(u is None for u in usages):
                await response.write(b"".join(out))
                out.clear()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return [u for u in usages if u is not None]


def _count(ctx: RequestContext, usages: Sequence[Usage]) -> None:
    total = total_usage(usages)
    ctx.prompt_tokens, ctx.completion_tokens = total.prompt_tokens, total.completion_tokens
