"""One admitted generation: pacing, fault cut-offs, the lines it writes and the final metrics.

Text-only lines go through `LineEncoder.token` (pre-encoded pieces, the benchmarks' hot path);
lines with thinking, tool calls or logprobs are built as dicts (`LineEncoder.line`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from .lines import LineEncoder, done_line, error_body, error_line, json_body
from .parse import CHAT, GenRequest, Options
from .state import NodeState
from .textgen import context_ids
from .turn import Turn

MID_STREAM_ERROR = "an error was encountered while running the model: unexpected EOF"
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
NDJSON_HEADERS = {"Content-Type": "application/x-ndjson"}
_POLL_S = 0.05
_PREFIX_HIT_FACTOR = 0.2


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, headers=JSON_HEADERS)


def gone(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def pause(request: web.BaseRequest, seconds: float) -> None:
    """Sleep, checking the socket, so a departed client is noticed even without cancellation."""
    end = time.monotonic() + seconds
    while seconds > 0:
        await asyncio.sleep(min(seconds, _POLL_S))
        if gone(request):
            raise ConnectionResetError("client went away")
        seconds = end - time.monotonic()


class Run:
    __slots__ = (
        "arrival",
        "cut",
        "drop",
        "enc",
        "first_ns",
        "gap_s",
        "load_ns",
        "options",
        "prompt_tokens",
        "req",
        "request",
        "start_ns",
        "state",
        "ttft_s",
        "turn",
    )

    def __init__(
        self,
        request: web.Request,
        state: NodeState,
        req: GenRequest,
        options: Options,
        turn: Turn,
        times: tuple[int, int],
        prompt_tokens: int,
    ) -> None:
        """`times`: (arrival, load duration) in perf-counter nanoseconds."""
        self.request, self.state, self.req = request, state, req
        self.options, self.turn, self.prompt_tokens = options, turn, prompt_tokens
        self.arrival, self.load_ns = times
        config, faults = state.config, state.faults
        factor = _PREFIX_HIT_FACTOR if state.prefix_hit(req.key, req.units) else 1.0
        self.ttft_s = state.delay_s(config.ttft_ms) * factor
        tps = config.tokens_per_second
        self.gap_s = state.delay_s(1000.0 / tps) if tps > 0 else 0.0
        self.enc = LineEncoder(req.kind, req.model, state.clock)
        n = len(turn.pieces)
        self.cut: int | None = None
        if faults.die_after_tokens is not None:
            self.cut = min(max(0, faults.die_after_tokens), n)
        elif faults.drop_mid_stream:
            self.cut = n // 2
        self.drop = faults.drop_mid_stream
        self.start_ns = self.first_ns = 0

    def _final(self, whole: bool) -> dict[str, Any]:
        """The done line (`whole`: the non-stream body, with all text, calls and logprobs)."""
        req, turn, now = self.req, self.turn, time.perf_counter_ns()
        metrics = {
            "total_duration": now - self.arrival,
            "load_duration": max(1, self.load_ns),
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": max(1, self.first_ns - self.start_ns),
            "eval_count": turn.eval_count,
            "eval_duration": max(1, now - self.first_ns),
        }
        context = None
        if req.kind != CHAT and not req.raw:
            context = context_ids(
                req.key, req.prompt, self.options.seed, self.prompt_tokens + turn.eval_count
            )
        reply_unit = f"assistant\0{turn.content}" if req.kind == CHAT else None
        self.state.remember(req.key, req.units, reply_unit)
        calls = list(turn.tool_calls) if whole or turn.calls_on_done else None
        return self.enc.final(
            turn.content if whole else "",
            turn.done_reason,
            metrics,
            context,
            thinking=turn.thinking if whole else "",
            tool_calls=calls,
            logprobs=list(turn.logprobs) if whole and turn.logprobs else None,
        )

    def _lines(self, count: int) -> Iterator[bytes]:
        """Encoded lazily, so each line's `created_at` is the time it is written."""
        enc, turn = self.enc, self.turn
        for i, piece in enumerate(turn.pieces[:count]):
            if turn.logprobs is None and not piece.thinking:
                yield enc.token(piece.text)
                continue
            logprobs = [turn.logprobs[i]] if turn.logprobs is not None else None
            if piece.thinking:
                yield enc.line("", thinking=piece.text, logprobs=logprobs)
            else:
                yield enc.line(piece.text, logprobs=logprobs)

    async def stream(self) -> web.StreamResponse:
        request, resp = self.request, web.StreamResponse(headers=NDJSON_HEADERS)
        pending: list[bytes] = []
        self.start_ns = time.perf_counter_ns()
        await pause(request, self.ttft_s)
        self.first_ns = time.perf_counter_ns()
        lines = self._lines(len(self.turn.pieces) if self.cut is None else self.cut)
        for i, line in enumerate(lines):
            if i and self.gap_s > 0:
                await self._flush(resp, pending)
                await pause(request, self.gap_s)
            elif gone(request):
                raise ConnectionResetError("client went away")
            pending.append(line)
        if self.cut is None:
            if self.turn.tool_calls and not self.turn.calls_on_done:
                pending.append(self.enc.line("", tool_calls=list(self.turn.tool_calls)))
            pending.append(done_line(self._final(False)))
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
        await pause(request, self.ttft_s)
        self.first_ns = time.perf_counter_ns()
        count = len(self.turn.pieces) if self.cut is None else self.cut
        await pause(request, self.gap_s * max(0, count - 1))
        if self.cut is not None:
            if self.drop:
                if request.transport is not None:
                    request.transport.abort()
                return web.Response()
            return json_response(error_body(MID_STREAM_ERROR), 500)
        body = json_body(self._final(True))
        self.state.stats.completed += 1
        return json_response(body)
