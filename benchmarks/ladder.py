"""Where a non-streamed request's CPU goes under load: the router built up one stage at a time.

S1 at c=64 (wrk) asks the router for ≥ 0.70x the bare relay's req/s (issue #16). This sets the
budget that leaves and shows what each stage of the router's own path spends of it, measured
the way S1 measures (router and relay each pinned to the proxy core, the node and wrk on the
other, CPU µs per request of the proxy process from /proc), in one process and one run.

The stages are routes added to the router's real app (`create_app` on a real fleet file), so
each request passes the real middleware (auth, body checks, key policy, metrics, access log)
and each stage adds one piece of the real chat path to the one before:

    middleware   the middleware, then a fixed chat.completion body
    +parse       + parse and validate the request, resolve the model, the affinity key and
                   the Ollama payload (no I/O)
    +post        + one POST of that payload to the node through the router's own client
                   session, its body read to the end: no slot, no timeout, no line parsed
    +slot        + a slot taken from the slot store (the routing decision) and given back
    +generation  + the slot handed to a `Generation`: first-token timeout, the lines parsed
                   and gathered, the node's outcome and timings recorded
    +failover    + tenacity's failover around the generation (`fetch`, as the handler calls it)
    router       POST /v1/chat/completions as shipped (+ the answer's body and Server-Timing)

    python -m benchmarks.ladder                  # a markdown table on stdout, ~2 min
    python -m benchmarks.ladder --repeats 3 --duration 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from benchmarks import targets as tg
from benchmarks import wrk
from benchmarks.procs import Cores, Proc, Sampler, free_port, running, wait_http
from router.api.auth import new_key

Stage = Callable[[web.Request], Awaitable[web.StreamResponse]]
STAGES = ("middleware", "+parse", "+post", "+slot", "+generation", "+failover")
TARGET_RATIO = 0.70  # issue #16: req/s at c=64 ≥ 0.70x the relay's


def _stages() -> dict[str, Stage]:
    """The staged handlers (imported in the server process only)."""
    import orjson

    from router.api.handlers import chat_request, payloads
    from router.api.state import STATE
    from router.context import CTX
    from router.fleet.registry import Lease, NodeState
    from router.upstream.client import CHAT_PATH
    from router.upstream.generation import Generation, fetch
    from router.upstream.payloads import payload_for
    from router.wire.ollama import Gathered
    from router.wire.to_ollama import chat_payload

    fixed = orjson.dumps(
        {
            "id": "chatcmpl-ladder",
            "object": "chat.completion",
            "created": 0,
            "model": tg.MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "eight tokens of a fixed answer"},
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 8, "total_tokens": 17},
        }
    )

    def answer() -> web.Response:
        return web.Response(body=fixed, content_type="application/json")

    async def parsed(request: web.Request) -> tuple[str, bytes]:
        """The chat handler's first half, then the routed model's payload (one target)."""
        req, model = await chat_request(request)
        payload = payloads(
            request.app[STATE], model, lambda m, o: chat_payload(req, m, o, stream=True)
        )
        return model, payload_for(payload, model)

    async def middleware(request: web.Request) -> web.StreamResponse:
        return answer()

    async def parse(request: web.Request) -> web.StreamResponse:
        await parsed(request)
        return answer()

    async def read_whole(request: web.Request, node: NodeState, payload: bytes) -> None:
        """The node's answer through the router's client session, read to its end."""
        upstream, ctx = request.app[STATE].dispatcher.upstream, request[CTX]
        resp = await upstream.open_stream(node, CHAT_PATH, payload, ctx.request_id)
        await resp.read()
        resp.release()

    async def post(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        model, payload = await parsed(request)
        node = state.fleet.candidates(state.catalog.resolve(model).targets[0])[0]
        await read_whole(request, node, payload)
        return answer()

    async def slot(request: web.Request) -> web.StreamResponse:
        model, payload = await parsed(request)
        lease = await _take(request, model)
        try:
            await read_whole(request, lease.node, payload)
        finally:
            lease.release()
        return answer()

    async def generation(request: web.Request) -> web.StreamResponse:
        state, ctx = request.app[STATE], request[CTX]
        model, payload = await parsed(request)
        lease = await _take(request, model)
        gathered = Gathered()
        async with Generation(state.dispatcher, ctx, model, CHAT_PATH, payload, lease) as g:
            async for lines in g:
                gathered.feed_all(lines)
        return answer()

    async def failover(request: web.Request) -> web.StreamResponse:
        state, ctx = request.app[STATE], request[CTX]
        model, payload = await parsed(request)
        await fetch(state.dispatcher, ctx, model, CHAT_PATH, payload)
        return answer()

    async def _take(request: web.Request, model: str) -> Lease:
        state, ctx = request.app[STATE], request[CTX]
        lease = await state.dispatcher.slots.take(
            state.catalog.resolve(model).targets,
            set(),
            key=ctx.key.name if ctx.key else "",
            session=ctx.session,
            max_tokens=ctx.max_tokens,
        )
        assert lease is not None, "the node is healthy and has slots"
        return lease

    handlers = (middleware, parse, post, slot, generation, failover)
    return dict(zip(STAGES, handlers, strict=True))


def serve(config_path: str) -> None:
    """The router's app on `config_path`, with a POST route per stage: /ladder/<n>."""
    from router.api.app import create_app
    from router.api.app import serve as serve_app
    from router.cli import _run
    from router.config import load_config
    from router.obs.logs import configure_logging

    config = load_config(config_path)
    configure_logging(config.logging.level, config.logging.format)
    app = create_app(config, config_path=config_path)
    for i, handler in enumerate(_stages().values()):
        app.router.add_post(f"/ladder/{i}", handler)
    _run(serve_app(app, config.listen.host, config.listen.port))


def _measure(
    cores: Cores, proc: Proc, url: str, lua: Path, duration_s: float, warmup_s: float
) -> tuple[float, float]:
    """req/s and the proxy's CPU µs per request at c=64, after a warm-up."""
    if warmup_s:
        wrk.run(cores, url, lua, connections=64, duration_s=warmup_s)
    with Sampler(proc.pid) as sampler:
        start = time.monotonic()
        res = wrk.run(cores, url, lua, connections=64, duration_s=duration_s)
    usage = sampler.usage(start + 0.2, start + duration_s)
    if res.failed or not res.requests or usage is None:
        raise RuntimeError(f"{url}: {res.failed} failed of {res.requests}")
    return res.rps, usage.cpu_pct / 100 * 1e6 / res.rps


def run(repeats: int, duration_s: float, warmup_s: float = 1.0) -> str:
    cores = Cores.plan()
    cores.pin_self()
    with tempfile.TemporaryDirectory(prefix="jarvis-ladder-") as tmp, running([]) as procs:
        out = Path(tmp)
        node_proc, urls = tg.start_nodes(out, cores, tg.NodeSpec(8))
        procs.append(node_proc)
        floor = tg.start_floor(out, cores, urls[0])
        procs.append(floor.proc)
        key, port = new_key(), free_port()
        fleet = out / "ladder-fleet.yaml"
        tg.write_fleet(fleet, port, urls, key, 1024, 5.0)
        argv = [*cores.prefix(proxy=True), sys.executable, "-m", "benchmarks.ladder"]
        ladder = Proc("ladder", [*argv, "serve", str(fleet)], stdout=out / "ladder.log")
        procs.append(ladder)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/readyz", ladder, timeout_s=120)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        body = tg.Target("router", base, "openai", None, headers).body(8, False)
        lua = wrk.script(out / "router.lua", body, headers)
        flua = wrk.script(out / "floor.lua", floor.body(8, False), floor.headers)
        paths = [f"/ladder/{i}" for i in range(len(STAGES))] + ["/v1/chat/completions"]
        names = [*STAGES, "router"]
        rows: dict[str, list[tuple[float, float]]] = {n: [] for n in ["relay", *names]}
        for _ in range(repeats):  # interleaved: a slow moment of the machine hits every row
            assert floor.proc is not None
            rows["relay"].append(_measure(cores, floor.proc, floor.url, flua, duration_s, warmup_s))
            for name, path in zip(names, paths, strict=True):
                rows[name].append(_measure(cores, ladder, base + path, lua, duration_s, warmup_s))
    return _table(rows, cores, repeats, duration_s)


def _table(
    rows: dict[str, list[tuple[float, float]]], cores: Cores, repeats: int, duration_s: float
) -> str:
    relay_rps = statistics.median(r for r, _ in rows["relay"])
    relay_cpu = statistics.median(c for _, c in rows["relay"])
    budget = relay_cpu / TARGET_RATIO
    lines = [
        f"S1 at c=64 (wrk, 8-token non-streamed answers), {repeats} x {duration_s:g} s, "
        f"medians; {cores.describe()}.",
        f"Budget for {TARGET_RATIO:.2f}x the relay's req/s: {budget:.0f} µs of CPU per request "
        f"(the relay's {relay_cpu:.0f} / {TARGET_RATIO:.2f}).",
        "",
        "| stage | req/s | vs relay | CPU µs/request | added by the stage |",
        "|---|---|---|---|---|",
        f"| relay (floor) | {relay_rps:,.0f} | 1.00x | {relay_cpu:.0f} | |",
    ]
    previous: float | None = None
    for name, measures in rows.items():
        if name == "relay":
            continue
        rps = statistics.median(r for r, _ in measures)
        cpu = statistics.median(c for _, c in measures)
        added = "" if previous is None else f"{cpu - previous:+.0f}"
        lines.append(f"| {name} | {rps:,.0f} | {rps / relay_rps:.2f}x | {cpu:.0f} | {added} |")
        previous = cpu
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ladder", description=__doc__)
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="(internal) the staged router on a fleet file")
    s.add_argument("config")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--duration", type=int, default=5, help="seconds of load per row")
    p.add_argument("--warmup", type=int, default=1, help="seconds of load before each row")
    args = p.parse_args(argv)
    if args.command == "serve":
        serve(args.config)
        return
    print(run(args.repeats, args.duration, args.warmup))


if __name__ == "__main__":
    main()
