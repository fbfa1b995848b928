"""Getting one request onto one node, with failover: choose → lease → attempt, again elsewhere.

All retrying lives here, and tenacity drives every attempt. `Dispatcher.failover` takes a slot
from the `SlotStore` (the best node not tried yet, held as a `Lease`) and hands it to one
attempt: a `Generation` (module `generation`) that opens the node's answer and reads its first
line, or, for a gathered answer, reads it to the end (the client has seen nothing yet). A
retryable `UpstreamError` (connection errors, timeouts, 5xx, "busy", "model not here", a broken
answer the client has not seen) moves to another node; a 4xx is the request's own fault and
goes back to the client. The attempt gives its lease back and records its outcome itself
(`record_failure`, `record_cancel`, `completed`, all called from `Generation._end`); this module
decides whether to try again, and what the client is told when nothing worked.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import retry_if_exception, stop_after_attempt

from router.catalog.entries import Catalog
from router.catalog.warm import is_warm
from router.context import RequestContext
from router.errors import ModelNotFound, RateLimited, ServiceUnavailable, UpstreamRejected
from router.fleet.registry import Fleet, Lease, NodeState
from router.obs.metrics import Metrics
from router.routing.admission import AdmissionRejected
from router.routing.scoring import SpeedStats
from router.routing.slots import NoFreeSlot, SlotStore
from router.upstream.client import Upstream
from router.upstream.outcome import NODE_DOWN, NODE_FAULT, Outcome, UpstreamError
from router.upstream.retrying import Failover, no_sleep
from router.wire.overflow import context_length_exceeded, parse_overflow

T = TypeVar("T")
# The request field an over-long prompt is in, by endpoint (OpenAI names it in `param`).
_PROMPT_PARAM = {"/completions": "prompt", "/embeddings": "input", "/responses": "input"}


class Dispatcher:
    __slots__ = (
        "_max_attempts",
        "_retrying",
        "catalog",
        "clock",
        "first_token_timeout_s",
        "fleet",
        "in_use",
        "metrics",
        "retry_after_s",
        "rng",
        "slots",
        "speeds",
        "token_gap_timeout_s",
        "upstream",
    )

    def __init__(
        self,
        fleet: Fleet,
        upstream: Upstream,
        metrics: Metrics,
        rng: random.Random,
        clock: Callable[[], float],
        max_attempts: int,
        retry_after_s: int,
        slots: SlotStore,
        speeds: SpeedStats,
        first_token_timeout_s: float,
        token_gap_timeout_s: float,
        catalog: Catalog | None = None,
    ) -> None:
        self.fleet, self.upstream, self.metrics = fleet, upstream, metrics
        # Names → node models in order of preference; a reload swaps it.
        self.catalog = catalog or Catalog()
        self.in_use: Counter[str] = Counter()  # node model → generations running now
        self.rng, self.clock = rng, clock
        self.max_attempts = max_attempts  # builds the retry policy
        self.retry_after_s = retry_after_s
        self.slots, self.speeds = slots, speeds
        self.first_token_timeout_s = first_token_timeout_s
        self.token_gap_timeout_s = token_gap_timeout_s

    @property
    def max_attempts(self) -> int:
        return self._max_attempts

    @max_attempts.setter
    def max_attempts(self, value: int) -> None:
        # Built once (and again when a reload changes it); every request's run shares it, each
        # with a call state of its own (`Failover`). The synchronous `Retrying`'s decisions
        # drive the async attempts: failover never sleeps between nodes, and AsyncRetrying
        # re-inspects every callback for coroutines on every attempt (~2x the cost per request,
        # measured).
        self._max_attempts = value
        self._retrying = Failover(
            stop=stop_after_attempt(value),
            reraise=True,
            retry=retry_if_exception(_retryable),
            sleep=no_sleep,
        )

    async def failover(
        self, ctx: RequestContext, model: str, attempt_on: Callable[[Lease], Awaitable[T]]
    ) -> T:
        """`attempt_on(lease)` on the best node not tried yet, until one succeeds, the error is
        not worth another node, or `max_attempts` ran out. `attempt_on` owns the lease: it gives
        it back and records the outcome on every path."""
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
            node = lease.node.name
            if tried:
                self.metrics.count_failover(ctx.model_label)
            tried.add(node)
            ctx.node, ctx.attempts = node, ctx.attempts + 1
            try:
                return await attempt_on(lease)
            except UpstreamError as exc:
                last = exc
                raise

        try:
            return await self._retrying.run(attempt)
        except UpstreamError as exc:
            raise self._give_up(ctx, model, exc) from exc

    async def _take(self, ctx: RequestContext, model: str, tried: set[str]) -> Lease | None:
        try:
            return await self.slots.take(
                self.catalog.resolve(model).targets,
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

    def record_failure(self, node: NodeState, model: str, exc: UpstreamError) -> None:
        """Count a failed attempt; the node's faults feed its circuit breaker."""
        self.metrics.count_upstream(node.name, exc.outcome.value)
        if exc.outcome in NODE_FAULT:
            self.fleet.record_failure(node)
        if exc.outcome in NODE_DOWN:
            self.fleet.mark_unhealthy(node.name, exc.message)
        if exc.outcome is Outcome.MODEL_MISSING:
            self.fleet.forget_model(node.name, model)

    def record_cancel(self, node: NodeState) -> None:
        """The client left before the node's answer ended: never the node's fault, so no
        breaker and no health mark."""
        self.metrics.count_upstream(node.name, Outcome.CLIENT_CANCELLED.value)

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
        num_ctx, loaded = self.catalog.resolve(model).num_ctx, node.loaded
        if loaded is None or (
            model in loaded
            and (
                num_ctx is None
                or is_warm(node.contexts, model, num_ctx, parallel=node.config.max_concurrency)
            )
        ):
            return  # not known yet, or it was warm here
        load_ns = done.get("load_duration")
        if isinstance(load_ns, int | float):  # it was cold here: how long loading took
            self.speeds.observe_load(node.name, load_ns / 1e9)
        # It runs at the catalog's context now (the node's own, when none is set).
        node.loaded = loaded | {model}
        node.contexts = {**node.contexts, model: num_ctx}

    def _give_up(self, ctx: RequestContext, model: str, exc: UpstreamError) -> Exception:
        ctx.error = exc.outcome.value
        entry = self.catalog.resolve(model)
        if exc.outcome is Outcome.HTTP_4XX:
            overflow = parse_overflow(exc.message) if exc.status == 400 else None
            if overflow is not None:  # the prompt is longer than the context: the client's
                ctx.error = "context_length_exceeded"
                param = _PROMPT_PARAM.get(ctx.endpoint, "messages")
                return context_length_exceeded(overflow, num_ctx=entry.num_ctx, param=param)
            return UpstreamRejected(exc.status or 400, exc.message)
        if exc.outcome is Outcome.MODEL_MISSING and not any(
            self.fleet.candidates(t) for t in entry.targets
        ):
            return ModelNotFound(
                f"The model '{ctx.model}' does not exist or no node serves it.", param="model"
            )
        return ServiceUnavailable(
            f"No node could serve the request after {ctx.attempts} attempt(s): {exc.message}",
            retry_after_s=self.retry_after_s,
            code="upstream_failed",
        )


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.retryable
