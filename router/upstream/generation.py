"""One generation: a node's answer to one request, from taking its slot to its end.

Where a stream ends
-------------------
In `Generation._end`, exactly once per attempt, whichever way it goes:

- **the done line arrived**: the node is recorded well and its timings teach the cost model
  (`Dispatcher.completed`); the connection goes back to the keep-alive pool once the body has
  ended (`LineReader.finish`);
- **the node failed**: an error line, invalid JSON, no line within the first-token timeout, a
  gap longer than the between-token timeout, a dropped connection, or a body that ended without
  a done line (each one `UpstreamError`, raised by `_open` or the iterator): the connection is
  closed and the failure recorded against the node (`Dispatcher.record_failure`: breaker,
  health);
- **the client left** (its handler was cancelled, or a write found its socket closed) or the
  consumer stopped reading: the connection is closed so the node stops generating, and the
  attempt counts as `client_cancelled` (`Dispatcher.record_cancel`), never the node's fault.

In every case the slot (`Lease`) is given back there. `__aenter__` runs dispatch's failover
(choose → lease → open → first line), so a node that fails before its first line costs the
client nothing: the attempt ends and another node is tried. After that, a failure is the
consumer's to show: the streamed handler sends one SSE error event and closes (bytes went out,
nothing is replayed); `fetch` (a gathered answer, nothing sent yet) reads the whole generation
inside the failover, so a failure anywhere before the end tries another node.

The first line is awaited under `asyncio.timeout` (once per attempt); the reads after it are
timed by the reader's one lazy watchdog (`LineReader.watch`: the between-token gap and the rest
of `request_timeout_s`), so no timer is armed per token (issue #16).

Timing is written here too, once: `ctx.ttft_s` (request start → the first line that carries
output), `ctx.tpot_s` (streams only: the mean gap between tokens, from the done line's count)
and `ctx.upstream_s` (time spent on generations: from opening each attempt to its end, summed).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from router.context import RequestContext
from router.fleet.registry import Lease
from router.upstream.dispatch import Dispatcher
from router.upstream.lines import LineReader, has_token
from router.upstream.outcome import Outcome, UpstreamError
from router.upstream.payloads import Payloads, payload_for
from router.wire.ollama import Gathered

Lines = list[dict[str, Any]]


class Generation:
    """`async with Generation(...) as g: async for lines in g: ...`: the node's parsed lines,
    as many as each network read brought (one write per burst for a relay), up to and
    including the done line. Iteration ends after the done line; a failure raises."""

    __slots__ = (
        "_ctx",
        "_d",
        "_ended_at",
        "_failure",
        "_first",
        "_first_at",
        "_lease",
        "_model",
        "_path",
        "_payload",
        "_reader",
        "_started_at",
        "_whole",
        "done",
    )

    def __init__(
        self,
        dispatcher: Dispatcher,
        ctx: RequestContext,
        model: str,
        path: str,
        payload: bytes | Payloads,
        lease: Lease | None = None,
        *,
        whole: bool = False,
    ) -> None:
        """Without `lease`, entering fails over across nodes; with one, it is one attempt on it
        (and owns it from here: entering gives it back on failure, leaving always does).
        `model` is the name routed on; `payload` the bytes for any node, or per target.
        `whole`: the payload asks for Ollama's one JSON answer (`stream: false`), which comes
        at the end: no first-token timeout (the request timeout bounds it) and no TTFT."""
        self._d, self._ctx, self._model, self._whole = dispatcher, ctx, model, whole
        self._path, self._payload, self._lease = path, payload, lease
        self._reader: LineReader | None = None
        self._first: Lines | None = None
        self.done: dict[str, Any] | None = None  # the done line (usage, timings), once here
        self._failure: UpstreamError | None = None
        self._first_at = self._started_at = self._ended_at = 0.0

    async def __aenter__(self) -> Generation:
        lease = self._lease
        if lease is None:
            await self._d.failover(self._ctx, self._model, self._open)
        else:
            await self._open(lease)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end(exc)

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> Lines:
        """The lines of the next read, parsed: the one place a read's lines are judged."""
        first = self._first
        if first is not None:  # the lines that came with the first one, read while opening
            self._first = None
            return first
        if self.done is not None:
            raise StopAsyncIteration
        if self._failure is not None:  # a bad line after good ones in the last read
            raise self._failure
        reader = self._reader
        assert reader is not None, "iterated before entering"
        try:
            raws = await reader.lines()
            if not raws:  # the body ended, and a stream without done:true failed (pitfall 3)
                raise UpstreamError(
                    Outcome.PROTOCOL_ERROR,
                    f"node {reader.node.name} ended the answer without a done line",
                )
            lines, failure = reader.parse_lines(raws)
            if failure is not None:
                if not lines:
                    raise failure
                self._failure = failure  # raised by the next read: the good lines go first
        except UpstreamError as exc:
            self._failure = exc
            raise
        if not self._first_at and not self._whole and has_token(lines):
            self._first_at = now = self._d.clock()
            self._ctx.ttft_s = now - self._ctx.start
        last = lines[-1]
        if last.get("done"):
            reader.unwatch()  # the answer is whole: no read left to time
            self._finished(last)
        return lines

    async def _open(self, lease: Lease) -> None:
        """One attempt: open the answer on the lease's node and read its first lines within the
        first-token timeout (a node that accepts connections but never answers fails over like
        a dead one), then hand the reads to the reader's watchdog: the between-token timeout
        and what is left of the request timeout. A failure ends the attempt here."""
        d, ctx, node = self._d, self._ctx, lease.node
        upstream = d.upstream
        self._lease, self._reader, self._first, self._failure = lease, None, None, None
        d.in_use[lease.model or self._model] += 1  # given back in `_end`
        self.done, self._first_at = None, 0.0
        ctx.ttft_s = None  # the first token of the answer the client gets counts
        self._started_at = d.clock()
        opened = asyncio.get_running_loop().time()
        total_by = opened + upstream.request_timeout_s  # aiohttp's `total` is not set (client)
        # A whole answer comes at its end: only the request timeout bounds it.
        first_by = total_by if self._whole else opened + d.first_token_timeout_s
        try:
            try:
                async with asyncio.timeout_at(min(first_by, total_by)):
                    ctx.served_model = lease.model or self._model
                    payload = payload_for(self._payload, ctx.served_model)
                    resp = await upstream.open_stream(node, self._path, payload, ctx.request_id)
                    self._reader = reader = LineReader(resp, node)
                    first = await self.__anext__()
            except TimeoutError as exc:
                first_token = first_by <= total_by and not self._whole
                raise _timed_out(node.name, d.first_token_timeout_s, first_token) from exc
        except BaseException as exc:
            if isinstance(exc, UpstreamError):
                self._failure = exc
            self._end(exc)
            raise
        self._first = first
        if self.done is None:
            reader.watch(d.token_gap_timeout_s, total_by)

    def _finished(self, done: dict[str, Any]) -> None:
        self.done, self._ended_at = done, self._d.clock()
        ctx, tokens = self._ctx, int(done.get("eval_count") or 0)
        # Streams only (docs/metrics.md): the mean inter-token latency the client saw.
        if ctx.stream and self._first_at and tokens > 1:
            ctx.tpot_s = (self._ended_at - self._first_at) / (tokens - 1)

    def _end(self, exc: BaseException | None) -> None:
        """The attempt is over: see the module docstring. Never awaits, so a cancelled request
        always gets here."""
        lease = self._lease
        if lease is None:  # already ended
            return
        self._lease = None
        d, node, reader, done = self._d, lease.node, self._reader, self.done
        model = lease.model or self._model  # the node model it ran (a catalog target)
        d.in_use[model] -= 1
        if not d.in_use[model]:
            del d.in_use[model]
        try:
            end = self._ended_at if done is not None else d.clock()
            self._ctx.upstream_s += end - self._started_at
            if done is not None:
                assert reader is not None
                reader.finish()
                d.completed(node, model, done)
                return
            if reader is not None:
                reader.close()
            if self._failure is not None:
                d.record_failure(node, model, self._failure)
            elif exc is None or isinstance(exc, asyncio.CancelledError | ConnectionError):
                d.record_cancel(node)
        finally:
            lease.release()


def _timed_out(node: str, first_token_timeout_s: float, first_token: bool) -> UpstreamError:
    if first_token:
        return UpstreamError(
            Outcome.TIMEOUT, f"node {node} sent no token within {first_token_timeout_s:g} s"
        )
    return UpstreamError(Outcome.TIMEOUT, f"node {node} timed out")  # the request timeout


async def fetch(
    dispatcher: Dispatcher,
    ctx: RequestContext,
    model: str,
    path: str,
    payload: bytes | Payloads,
    *,
    whole: bool = False,
) -> Gathered:
    """A whole answer, gathered from the node's stream (or, `whole`, its one JSON answer).
    Each attempt reads its generation to the end inside the failover: a failure anywhere
    before the end tries another node (the client has seen nothing yet)."""

    async def attempt_on(lease: Lease) -> Gathered:
        gathered = Gathered()
        generation = Generation(dispatcher, ctx, model, path, payload, lease, whole=whole)
        async with generation:
            async for lines in generation:
                gathered.feed_all(lines)
                if generation.done is not None:  # no read is left (nor a StopAsyncIteration)
                    break
        return gathered

    return await dispatcher.failover(ctx, model, attempt_on)
