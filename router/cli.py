"""The `jarvis-router` command: argparse subcommands, logging set up once, errors → exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from router import __version__, cli_config, cli_models
from router.api.auth import new_key
from router.config import ConfigError, load_config
from router.obs.logs import configure_logging

KEY_ENV = cli_models.KEY_ENV


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """uvloop when installed (the `fast` extra), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def _serve(args: argparse.Namespace) -> int:
    from router.api.app import create_app, serve

    config = load_config(args.config)
    configure_logging(
        args.log_level or config.logging.level, args.log_format or config.logging.format
    )
    host = args.host or config.listen.host
    port = config.listen.port if args.port is None else args.port
    if args.workers != 1 and not args.worker:
        from router.api.workers import refusal, supervise

        reason = refusal(config, args.workers, port)
        if reason is not None:
            print(f"error: {reason}", file=sys.stderr)
            return 2
        worker = ["serve", "--config", args.config, "--host", host, "--port", str(port)]
        worker += ["--log-level", args.log_level] if args.log_level else []
        worker += ["--log-format", args.log_format] if args.log_format else []
        return supervise([*worker, "--worker"], args.workers)
    app = create_app(config, config_path=args.config)
    _run(serve(app, host, port, reuse_port=args.worker))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from router.api.app import create_app, serve
    from router.demo import demo_config, demo_nodes

    configure_logging(args.log_level, "text")
    key = new_key()

    async def main() -> None:
        nodes = demo_nodes()
        async with contextlib.AsyncExitStack() as stack:
            for node in nodes:
                await stack.enter_async_context(node)
            config = demo_config(nodes, key, args.host, args.port)

            def ready(port: int) -> None:
                base = f"http://{args.host}:{port}"
                print(_demo_banner(base, key, nodes), flush=True)

            await serve(create_app(config), args.host, args.port, on_ready=ready)

    _run(main())
    return 0


def _demo_banner(base: str, key: str, nodes: Sequence[Any]) -> str:
    lines = [
        "",
        f"Jarvis Router demo: {len(nodes)} emulated Ollama nodes behind {base}",
        *(f"  {n.name:6} {n.url}  models: {', '.join(n.config.models)}" for n in nodes),
        "",
        f"Demo API key (shown once): {key}",
        "",
        "Try it:",
        f"  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' "
        '-d \'{"model": "ollama/llama3", "messages": [{"role": "user", '
        '"content": "Hello!"}]}\'',
        "",
        f'  OpenAI SDK: OpenAI(base_url="{base}/v1", api_key="{key}")',
        "Ctrl-C stops it.",
        "",
    ]
    return "\n".join(lines)


def _emulate(args: argparse.Namespace) -> int:
    from router.emulator import EmulatorConfig, Faults, serve_forever

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    config = EmulatorConfig(
        models=models,
        tokens_per_second=args.tokens_per_second,
        ttft_ms=args.ttft_ms,
        max_parallel=args.max_parallel,
        max_queue=args.max_queue,
        default_tokens=args.default_tokens,
        load_ms=args.load_ms,
        max_loaded_models=args.max_loaded_models,
        preloaded=not args.cold,
        prefix_cache=args.prefix_cache,
    )
    faults = Faults()
    faults.mode = args.fault
    faults.error_rate = args.error_rate
    faults.die_after_tokens = args.die_after_tokens
    faults.drop_mid_stream = args.drop_mid_stream
    faults.slow_factor = args.slow_factor
    print(
        f"emulated Ollama node on http://{args.host}:{args.port} with {', '.join(models)}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        _run(serve_forever(config, args.host, args.port, faults=faults))
    return 0


def _admin_call(args: argparse.Namespace, path: str, method: str = "GET") -> Any:
    """The JSON answer of an admin endpoint, or an exit code after printing why not."""
    import json

    response = cli_models.admin_open(args, path, method=method)
    if isinstance(response, int):
        return response
    with response:
        return json.load(response)


def _status(args: argparse.Namespace) -> int:
    from router.api.admin import format_table
    from router.api.admin_models import format_models

    view = _admin_call(args, "/admin/nodes")
    if isinstance(view, int):
        return view
    print(format_table(view))
    models = _admin_call(args, "/admin/models")
    if isinstance(models, int):
        return models
    print()
    print(format_models(models))
    return 0


def _drain(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    action = "drain" if args.drain else "undrain"
    node = _admin_call(args, f"/admin/nodes/{quote(args.node, safe='')}/{action}", "POST")
    if isinstance(node, int):
        return node
    if args.drain:
        print(
            f"{node['name']} is draining: no new requests; "
            f"{node['in_flight']} in flight will finish"
        )
    else:
        print(f"{node['name']} is back in rotation ({node['status']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jarvis-router", description="OpenAI-compatible router for Ollama fleets"
    )
    parser.add_argument("--version", action="version", version=f"jarvis-router {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the router on a fleet file")
    p.add_argument("--config", required=True, help="fleet file (YAML)")
    p.add_argument("--host", help="listen address (default: listen.host)")
    p.add_argument("--port", type=int, help="listen port (default: listen.port)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", choices=("json", "text"))
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on one port (SO_REUSEPORT), sharing slots through coordination's Redis",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of --workers
    p.set_defaults(func=_serve)

    p = sub.add_parser("demo", help="emulated Ollama nodes + the router, on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=_demo)

    p = sub.add_parser("emulate", help="one emulated Ollama node")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=11434)
    p.add_argument("--models", default="llama3", help="comma-separated model names")
    p.add_argument("--tokens-per-second", type=float, default=0.0, help="0 = no delay")
    p.add_argument("--ttft-ms", type=float, default=0.0)
    p.add_argument("--max-parallel", type=int, default=4, help="generations at once")
    p.add_argument("--max-queue", type=int, default=512, help="waiting requests before 503")
    p.add_argument("--default-tokens", type=int, help="reply length (default: 8..40 by prompt)")
    p.add_argument("--load-ms", type=float, default=0.0, help="time to load a cold model")
    p.add_argument("--max-loaded-models", type=int, default=0, help="0 = unlimited")
    p.add_argument("--cold", action="store_true", help="start with no model loaded")
    p.add_argument("--prefix-cache", action="store_true", help="faster TTFT for seen prefixes")
    faults = p.add_argument_group("faults")
    faults.add_argument(
        "--fault",
        default="ok",
        choices=("ok", "error", "busy", "hang", "drop"),
        help="every generation: 500, 503 busy, never answer, or drop the connection",
    )
    faults.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500")
    faults.add_argument("--die-after-tokens", type=int, help="end streams with an error line")
    faults.add_argument(
        "--drop-mid-stream",
        action="store_true",
        help="with --die-after-tokens: drop the connection instead",
    )
    faults.add_argument("--slow-factor", type=float, default=1.0, help="multiply every delay")
    p.set_defaults(func=_emulate)

    cli_config.add_parsers(sub)  # check-config, keys new, keys list
    cli_models.add_parsers(sub)  # models load, unload, pull

    p = sub.add_parser("status", help="a running router's nodes and models (admin key)")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="the router's base URL")
    p.add_argument("--key", help=f"an admin API key (default: ${KEY_ENV}, kept out of `ps`)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds")
    p.set_defaults(func=_status)

    for name, drain, text in (
        ("drain", True, "take a node out of rotation; its in-flight requests finish"),
        ("undrain", False, "put a drained node back in rotation"),
    ):
        p = sub.add_parser(name, help=f"{text} (admin key)")
        p.add_argument("node", help="the node's name in the fleet file")
        p.add_argument("--url", default="http://127.0.0.1:8080", help="the router's base URL")
        p.add_argument("--key", help=f"an admin API key (default: ${KEY_ENV})")
        p.add_argument("--timeout", type=float, default=10.0, help="seconds")
        p.set_defaults(func=_drain, drain=drain)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result
