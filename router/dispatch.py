"""Getting one request onto one node: slot → open → first line, with failover.

All retrying lives here (tenacity). An attempt fails over to another node on connection
errors, timeouts before the first byte, 5xx, "busy" and "model not here"; a 4xx is the
request's own fault and goes back to the client. Nothing is retried once the client has
received a byte: that is the handler's commit point, after `open_stream` returns.
A slot comes from the `SlotStore` (`coordination`): the least loaded node, held as a `Lease`
that each attempt gives back on every path, or hands to the caller with the open stream.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from router.context import RequestContext
from router.coordination import NoFreeSlot, SlotStore
from router.errors import ModelNotFound, ServiceUnavailable, UpstreamRejected
from router.fleet import Fleet, Lease, NodeState
from router.metrics import Metrics
from router.upstream import NODE_DOWN, Outcome, Upstream, UpstreamError

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

    async def _failover(
        self, ctx: RequestContext, model: str, attempt_on: Callable[[Lease], Awaitable[T]]
    ) -> T:
        tried: set[str] = set()
        last: UpstreamError | None = None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            reraise=True,
            retry=retry_if_exception(_retryable),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        lease = await self.slots.take(model, tried)
                    except NoFreeSlot:
                        raise ServiceUnavailable(
                            f"Every node that serves '{ctx.model}' is at capacity; try again.",
                            retry_after_s=self.retry_after_s,
                            code="capacity_exhausted",
                        ) from None
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
                        self.metrics.failovers.labels(ctx.model_label).inc()
                    tried.add(node.name)
                    ctx.node, ctx.attempts = node.name, ctx.attempts + 1
                    try:
                        result = await attempt_on(lease)
                    except UpstreamError as exc:
                        self._record_failure(node, model, exc)
                        last = exc
                        raise
        except UpstreamError as exc:
            raise self._give_up(ctx, model, exc) from exc
        return result

    def _record_failure(self, node: NodeState, model: str, exc: UpstreamError) -> None:
        self.metrics.upstream.labels(node.name, exc.outcome.value).inc()
        if exc.outcome in NODE_DOWN:
            self.fleet.mark_unhealthy(node.name, exc.message)
        elif exc.outcome is Outcome.MODEL_MISSING:
            self.fleet.forget_model(node.name, model)

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

    async def fetch(
        self, ctx: RequestContext, model: str, path: str, payload: bytes
    ) -> dict[str, Any]:
        """A whole non-streamed answer; failures anywhere before it is read fail over."""

        async def attempt_on(lease: Lease) -> dict[str, Any]:
            async with lease as node:
                started = self.clock()
                resp = await self.upstream.open(node, path, payload, ctx.request_id)
                try:
                    data = await self.upstream.read_body(resp, node)
                except BaseException:
                    resp.close()
                    raise
                resp.release()  # the body was read whole: keep the connection alive
                ctx.upstream_s += self.clock() - started
            self.metrics.upstream.labels(node.name, Outcome.OK.value).inc()
            return data

        return await self._failover(ctx, model, attempt_on)

    async def open_stream(
        self, ctx: RequestContext, model: str, path: str, payload: bytes
    ) -> OpenStream:
        """An open stream whose first line has arrived; the caller must `aclose()` it."""

        async def attempt_on(lease: Lease) -> OpenStream:
            node = lease.node
            resp: aiohttp.ClientResponse | None = None
            try:
                resp = await self.upstream.open(node, path, payload, ctx.request_id)
                first = await self.upstream.read_line(resp, node)
                if first is None:
                    raise UpstreamError(
                        Outcome.PROTOCOL_ERROR, f"node {node.name} closed the stream without a line"
                    )
            except BaseException:
                if resp is not None:
                    resp.close()
                lease.release()
                raise
            return OpenStream(node, lease, resp, first)

        return await self._failover(ctx, model, attempt_on)


@dataclass(slots=True)
class OpenStream:
    node: NodeState
    lease: Lease
    response: aiohttp.ClientResponse
    first: dict[str, Any]

    async def aclose(self, *, completed: bool) -> None:
        """Free the slot; unless the stream completed, close the connection so the node stops
        generating (a finished one goes back to the keep-alive pool)."""
        if completed:
            self.response.release()
        else:
            self.response.close()
        self.lease.release()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.retryable
