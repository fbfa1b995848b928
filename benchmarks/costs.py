"""What each per-request choice of the router costs, in µs of one core, measured in-process.

The router's own work for one request, piece by piece, on the body S1 sends (and on a longer
conversation where the length matters), each timed alone with the router's real code: what
the README's "Choices we made" weighs against what each buys. The end-to-end cost of reading
a non-streamed answer as a stream rather than whole is S1's `router` against `router-whole`
(`make bench-relay`); its Python part is timed here too.

    python -m benchmarks.costs            # a markdown table on stdout, ~20 s
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import logging
import random
import time
import timeit
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from router.api.auth import KeyRing, digest, new_key
from router.config import ApiKeyConfig, NodeConfig
from router.context import RequestContext
from router.fleet.registry import Fleet, NodeState
from router.obs.logs import REQUEST_LOGGER, RequestLog, configure_logging, request_fields
from router.obs.metrics import Metrics
from router.routing.affinity import session_key
from router.upstream.lines import LineReader, parse_line
from router.upstream.retrying import Failover, no_sleep
from router.wire.limits import check_body
from router.wire.ollama import Gathered
from router.wire.openai import parse_chat
from router.wire.to_ollama import chat_payload
from router.wire.to_openai import chat_completion

BODY = orjson.dumps(
    {
        "model": "ollama/llama3",
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "stream": False,
        "max_tokens": 8,
    }
)
TURN = "A sentence of about the length people write in a chat, give or take a few words. " * 4
LONG = {
    "model": "ollama/llama3",
    "messages": [{"role": "system", "content": TURN}]
    + [{"role": ("user", "assistant")[i % 2], "content": TURN} for i in range(20)],
}
TOKENS = [f" tok{i}" for i in range(8)]


def _lines() -> tuple[list[bytes], bytes]:
    """An 8-token answer as Ollama streams it (a line per token, then the done line) and as
    its one JSON answer (`stream: false`)."""
    head = {"model": "llama3", "created_at": "2026-12-05T01:02:03.456789Z"}
    stream = [
        orjson.dumps({**head, "message": {"role": "assistant", "content": t}, "done": False})
        for t in TOKENS
    ]
    stats = {
        "done_reason": "length", "total_duration": 5191566, "load_duration": 2154,
        "prompt_eval_count": 26, "prompt_eval_duration": 383809, "eval_count": 8,
        "eval_duration": 4799921,
    }  # fmt: skip
    done = {**head, "message": {"role": "assistant", "content": ""}, "done": True, **stats}
    stream.append(orjson.dumps(done))
    whole = {**done, "message": {"role": "assistant", "content": "".join(TOKENS)}}
    return stream, orjson.dumps(whole)


async def _line_reader() -> LineReader:
    return LineReader(Any, NodeState(NodeConfig("node-0", "http://127.0.0.1:1")))


def _us(fn: Callable[[], object], number: int) -> float:
    """The best of 5 runs of `number` calls, in µs per call (the least disturbed run)."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _finished_ctx(ring: KeyRing) -> RequestContext:
    ctx = RequestContext(
        request_id="0" * 32, start=time.perf_counter(), endpoint="/chat/completions"
    )
    ctx.api, ctx.key, ctx.model, ctx.model_label = "chat", ring.authenticate(None, None), "x", "x"
    ctx.node, ctx.served_model, ctx.status, ctx.attempts = "node-0", "llama3:latest", 200, 1
    ctx.ttft_s, ctx.upstream_s, ctx.prompt_tokens, ctx.completion_tokens = 0.01, 0.02, 26, 8
    return ctx


def _log_cost(ctx: RequestContext, scale: float) -> float:
    """One access-log line, as the router writes it: built per request, written to the stream
    once per event-loop pass (here: once for all of a run's lines, to a buffer)."""
    configure_logging("info", "json")
    handler = logging.root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())
    lines = RequestLog(logging.getLogger(REQUEST_LOGGER))

    async def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            lines.write(request_fields(ctx, ctx.start + 0.02))
        lines.flush()
        return (time.perf_counter() - start) / n * 1e6

    return min(asyncio.run(run(max(1, int(20_000 * scale)))) for _ in range(5))


def measure(scale: float = 1.0) -> list[tuple[str, str, float]]:
    """(piece, what it buys, µs per request); `scale` shrinks every run (a smoke test's)."""
    ring_keys = [ApiKeyConfig(f"team-{i}", digest(new_key())) for i in range(100)]
    key = new_key()
    ring = KeyRing([ApiKeyConfig("bench", digest(key)), *ring_keys])
    header = f"Bearer {key}"
    # More distinct headers than the digest cache holds: each is hashed when presented.
    fresh = itertools.cycle([f"Bearer {new_key()}" for _ in range(4096)])
    body = orjson.loads(BODY)
    req = parse_chat(body)
    long_req = parse_chat(LONG)
    fleet = Fleet([NodeConfig("node-0", "http://127.0.0.1:1")], clock=time.perf_counter)
    metrics = Metrics(CollectorRegistry(), fleet)
    ctx = _finished_ctx(KeyRing([ApiKeyConfig("bench", digest(key))]))
    ctx.key = ring.authenticate(header, None)
    failover = Failover(stop=lambda s: s.attempt_number >= 3, reraise=True,
                         retry=lambda s: False, sleep=no_sleep)  # fmt: skip
    streamed, whole = _lines()
    reader = asyncio.run(_line_reader())  # a reader takes its loop (only `parse_lines` is timed)
    node = reader.node
    done = parse_line(whole, node)

    async def one() -> int:
        return 1

    def attempt() -> int:
        # The run's coroutine driven by hand (no event loop to time): it never suspends.
        try:
            failover.run(one).send(None)
        except StopIteration as stop:
            return int(stop.value)
        raise AssertionError("the run suspended")

    def gather_stream() -> object:
        gathered = Gathered()
        lines, _ = reader.parse_lines(streamed)
        gathered.feed_all(lines)
        return gathered.chat()

    def gather_whole() -> object:
        gathered = Gathered()
        gathered.feed_all([parse_line(whole, node)])
        return gathered.chat()

    rng = random.Random(1)
    id_ = f"chatcmpl-{rng.getrandbits(96):024x}"
    msgs, long_msgs = req.messages, long_req.messages
    timed: list[tuple[str, str, Callable[[], object], int]] = [
        ("auth: a known key's header, digest cached (101 keys configured)",
         "keys stored and looked up only as digests",
         lambda: ring.authenticate(header, None), 50_000),
        ("auth: a header seen for the first time (SHA-256, then the lookup)", "as above",
         lambda: ring.authenticate(next(fresh), None), 20_000),
        ("body checks: JSON depth and message count (S1 body)",
         "a 400 for a body built to exhaust the parser",
         lambda: check_body(BODY, max_depth=64, max_messages=2048), 50_000),
        ("parse and validate the chat request (S1 body)",
         "OpenAI's 400s, with `param`, before a node is asked",
         lambda: parse_chat(orjson.loads(BODY)), 20_000),
        ("affinity: the conversation's digest (S1 body, 1 message)",
         "later turns go where the prompt is cached",
         lambda: session_key(session_id=None, user=None, messages=msgs), 20_000),
        ("affinity: the conversation's digest (21 messages, 7 KB)", "as above",
         lambda: session_key(session_id=None, user=None, messages=long_msgs), 20_000),
        ("translate to Ollama's /api/chat (S1 body)",
         "Ollama's native API: options, think, tools",
         lambda: chat_payload(req, "llama3:latest"), 20_000),
        ("tenacity: one successful attempt", "one retry policy drives every attempt",
         attempt, 20_000),
        ("read the answer: 9 NDJSON lines gathered (the Python part)",
         "first-token and between-token timeouts, TTFT", gather_stream, 20_000),
        ("read the answer: Ollama's one JSON answer (`gather: whole`)", "-",
         gather_whole, 20_000),
        ("build the chat.completion body", "what the SDK parses",
         lambda: chat_completion(done, "ollama/llama3", id_, 0), 20_000),
        ("metrics: one request observed (counters, histograms, tokens)",
         "latency, TTFT, tokens per model, node and key",
         lambda: metrics.observe(ctx, ctx.start + 0.02), 20_000),
    ]  # fmt: skip
    rows = [(piece, buys, _us(fn, max(1, int(n * scale)))) for piece, buys, fn, n in timed]
    rows.append(("access log: one JSON line", "one line per request", _log_cost(ctx, scale)))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.costs")
    p.add_argument("--scale", type=float, default=1.0, help="shrink every run (smoke tests)")
    rows = measure(p.parse_args(argv).scale)
    print("| per request | what it buys | µs |")
    print("|---|---|---|")
    for piece, buys, us in rows:
        print(f"| {piece} | {buys} | {us:.1f} |")
    print(
        f"\nPython {'.'.join(map(str, __import__('sys').version_info[:3]))}; best of 5 runs each."
    )


if __name__ == "__main__":
    main()
