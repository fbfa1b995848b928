"""Getting one request onto one node: slot → open → first line, with failover.

All retrying lives here (tenacity). An attempt fails over to another node on connection
errors, timeouts before the first byte, 5xx, "busy" and "model not here"; a 4xx is the
request's own fault and goes back to the client. Nothing is retried once the client has
received a byte: that is the handler's commit point, after `open_stream` returns.
A slot comes from the `SlotStore` (`coordination`): the least loaded node, held as a `Lease`
that each attempt gives back on every path, or hands to the caller with the open stream.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from router.context import RequestContext
from router.errors import ModelNotFound, RateLimited, ServiceUnavailable, UpstreamRejected
from router.fleet.registry import Fleet, Lease, NodeState
from router.obs.metrics import Metrics
from router.routing.admission import AdmissionRejected
from router.routing.redis_slots import NoFreeSlot, SlotStore
from router.routing.scoring import SpeedStats
from router.upstream.client import (
    NODE_DOWN,
    NODE_FAULT,
    LineReader,
    Outcome,
    Upstream,
    UpstreamError,
)
from router.wire.ollama import Gathered

T = TypeVar("T")


@dataclass(slots=True)
class Dispatcher:
    fleet: Fleet
    upstream: Upstream
    metrics: Metrics
    rng: random.Random
    clock: Callable[[], float]
    max_attempts: int
    retry_after_s: int
    slots: SlotStore
    speeds: SpeedStats
    first_token_timeout_s: float
    token_gap_timeout_s: float

    async def _failover(
        self, ctx: RequestContext, model: str, attempt_on: Callable[[Lease], Awaitable[T]]
    ) -> T:
        tried: set[str] = set()
        last: UpstreamError | None = None

        async def attempt() -> T:
            nonlocal last
            lease = await self._take(ctx, model, tried)
            if lease is None:
                if last is not None:  # every candidate failed: say how the last did
                    raise self._give_up(ctx, model, last)
                raise ServiceUnavailable(
                    f"No healthy node serves '{ctx.model}' right now; try again.",
                    retry_after_s=self.retry_after_s,
                    code="no_healthy_node",
                )
            node = lease.node
            if tried:
                self.metrics.count_failover(ctx.model_label)
            tried.add(node.name)
            ctx.node, ctx.attempts = node.name, ctx.attempts + 1
            try:
                return await attempt_on(lease)
            except UpstreamError as exc:
                self._record_failure(node, model, exc)
                last = exc
                raise

        # The first attempt runs bare: tenacity's bookkeeping (about 20 µs a request) is paid
        # only once an attempt has failed and another node is worth trying.
        try:
            return await attempt()
        except UpstreamError as exc:
            if not exc.retryable or self.max_attempts == 1:
                raise self._give_up(ctx, model, exc) from exc
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts - 1),
            reraise=True,
            retry=retry_if_exception(_retryable),
        )
        try:
            async for retry in retrying:
                with retry:
                    result = await attempt()
        except UpstreamError as exc:
            raise self._give_up(ctx, model, exc) from exc
        return result

    async def _take(self, ctx: RequestContext, model: str, tried: set[str]) -> Lease | None:
        try:
            return await self.slots.take(
                model,
                tried,
                key=ctx.key.name if ctx.key else "",
                session=ctx.session,
                max_tokens=ctx.max_tokens,
            )
        except (NoFreeSlot, AdmissionRejected) as exc:
            ctx.error = "queue_" + type(exc).__name__.lower()
            raise RateLimited(
                f"Every node that serves '{ctx.model}' is busy and the queue is full or the "
                "wait ran out; try again.",
                retry_after_s=self.retry_after_s,
            ) from None

    def _record_failure(self, node: NodeState, model: str, exc: UpstreamError) -> None:
        self.record_failure(node, exc)
        if exc.outcome is Outcome.MODEL_MISSING:
            self.fleet.forget_model(node.name, model)

    def record_failure(self, node: NodeState, exc: UpstreamError) -> None:
        """Count a failed attempt; the node's faults feed its circuit breaker."""
        self.metrics.count_upstream(node.name, exc.outcome.value)
        if exc.outcome in NODE_FAULT:
            self.fleet.record_failure(node)
        if exc.outcome in NODE_DOWN:
            self.fleet.mark_unhealthy(node.name, exc.message)

    def completed(self, node: NodeState, model: str, done: dict[str, Any]) -> None:
        """A generation finished: recorded (`_completed`) as soon as the current step of the
        event loop is over, which is after the answer's last byte went out: bookkeeping the
        client need not wait for (the next request routed sees it all the same)."""
        asyncio.get_running_loop().call_soon(self._completed, node, model, done)

    def _completed(self, node: NodeState, model: str, done: dict[str, Any]) -> None:
        """The node is well, and its own timings teach the cost model (prompt and decode
        durations exclude queueing and loading, which it models itself)."""
        self.metrics.count_upstream(node.name, Outcome.OK.value)
        self.fleet.record_success(node)
        prompt_ns, eval_ns = done.get("prompt_eval_duration"), done.get("eval_duration")
        self.speeds.observe(
            node.name,
            model,
            ttft_s=prompt_ns / 1e9 if isinstance(prompt_ns, int | float) else None,
            tokens=int(done.get("eval_count") or 0),
            decode_s=eval_ns / 1e9 if isinstance(eval_ns, int | float) else None,
            capped=done.get("done_reason") == "length",
        )
        if node.loaded is not None and model not in node.loaded:
            load_ns = done.get("load_duration")
            if isinstance(load_ns, int | float):  # it was cold here: how long loading took
                self.speeds.observe_load(node.name, load_ns / 1e9)
            node.loaded = node.loaded | {model}

    async def _open(
        self, ctx: RequestContext, node: NodeState, path: str, payload: bytes
    ) -> Opened:
        """Open a generation and read its first line, within the first-token timeout (a node
        that accepts connections but never answers fails over like a dead one)."""
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(self.first_token_timeout_s):
                resp = await self.upstream.open(node, path, payload, ctx.request_id)
                reader = LineReader(resp, node)
                raws = await reader.lines(None)
            if not raws:
                raise UpstreamError(
                    Outcome.PROTOCOL_ERROR, f"node {node.name} closed the stream without a line"
                )
            first = reader.parse(raws[0])
        except TimeoutError as exc:
            if resp is not None:
                resp.close()
            raise UpstreamError(
                Outcome.TIMEOUT,
                f"node {node.name} sent no token within {self.first_token_timeout_s:g} s",
            ) from exc
        except BaseException:
            if resp is not None:
                resp.close()
            raise
        return Opened(resp, reader, first, raws[1:])

    def _give_up(self, ctx: RequestContext, model: str, exc: UpstreamError) -> Exception:
        ctx.error = exc.outcome.value
        if exc.outcome is Outcome.HTTP_4XX:
            return UpstreamRejected(exc.status or 400, exc.message)
        if exc.outcome is Outcome.MODEL_MISSING and not self.fleet.candidates(model):
            return ModelNotFound(
                f"The model '{ctx.model}' does not exist or no node serves it.", param="model"
            )
        return ServiceUnavailable(
            f"No node could serve the request after {ctx.attempts} attempt(s): {exc.message}",
            retry_after_s=self.retry_after_s,
            code="upstream_failed",
        )

    async def fetch(self, ctx: RequestContext, model: str, path: str, payload: bytes) -> Gathered:
        """A whole answer, gathered from the node's stream; a failure anywhere before its end
        fails over (the client has seen nothing yet)."""

        async def attempt_on(lease: Lease) -> Gathered:
            async with lease as node:
                started = self.clock()
                opened = await self._open(ctx, node, path, payload)
                gathered, reader = Gathered(), opened.reader
                try:
                    done = gathered.feed(opened.first)
                    raws = opened.rest
                    while not done:
                        lines, failure = reader.parse_lines(raws)
                        if failure is not None:
                            raise failure
                        done = gathered.feed_all(lines)
                        if ctx.ttft_s is None and gathered.started:
                            ctx.ttft_s = self.clock() - ctx.start
                        if not done:
                            raws = await reader.lines(self.token_gap_timeout_s)
                            if not raws:
                                raise UpstreamError(
                                    Outcome.PROTOCOL_ERROR,
                                    f"node {node.name} ended the answer early",
                                )
                except BaseException:
                    opened.response.close()
                    raise
                reader.finish()  # read to the end: keep the connection alive
                ctx.upstream_s += self.clock() - started
            assert gathered.done is not None
            self.completed(node, model, gathered.done)
            return gathered

        return await self._failover(ctx, model, attempt_on)

    async def open_stream(
        self, ctx: RequestContext, model: str, path: str, payload: bytes
    ) -> OpenStream:
        """An open stream whose first line has arrived; the caller must `close()` it."""

        async def attempt_on(lease: Lease) -> OpenStream:
            try:
                opened = await self._open(ctx, lease.node, path, payload)
            except BaseException:
                lease.release()
                raise
            return OpenStream(lease.node, lease, opened)

        return await self._failover(ctx, model, attempt_on)


@dataclass(slots=True)
class Opened:
    """A generation whose first line has arrived; `rest` are lines that came with it."""

    response: aiohttp.ClientResponse
    reader: LineReader
    first: dict[str, Any]
    rest: list[bytes]


@dataclass(slots=True)
class OpenStream:
    node: NodeState
    lease: Lease
    opened: Opened

    def close(self, *, completed: bool) -> None:
        """Free the slot; unless the stream completed, close the connection so the node stops
        generating (a finished one goes back to the keep-alive pool once its body has ended)."""
        if completed:
            self.opened.reader.finish()
        else:
            self.opened.response.close()
        self.lease.release()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.retryable
