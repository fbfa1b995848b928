"""The targets of one run and how each starts.

direct   the load generator talks to the node's native API (NDJSON);
floor    benchmarks/floor.py, a bare aiohttp pass-through (native API);
router   `python -m router serve` on a temporary fleet file, as shipped (OpenAI API);
router-responses, router-messages
         the same router process asked through the Responses and the Messages API (S6);
nginx    benchmarks/nginx.conf, a pure pass-through (native API), when nginx is installed;
litellm  LiteLLM's proxy with an `ollama_chat/` model (OpenAI API), when `.venv-litellm` exists.
router-before
         the router of another checkout, named by `BENCH_BEFORE_TREE=<dir>` (say an older
         commit's clone), in the same run as `router`: a before and after of the router alone,
         with the node, the load generator and the harness the same for both.
Every proxy runs alone on the proxy core; nodes and the load generator share the others.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from benchmarks import litellm
from benchmarks.procs import Cores, Proc, free_port, wait_http
from router.api.auth import digest, new_key

HERE = Path(__file__).resolve().parent
MODEL = "llama3"
PROMPT = "Why is the sky blue?"
ALL_TARGETS = ("direct", "floor", "router", "nginx", "litellm")
# The router with `routing.gather: whole` (non-streamed answers as Ollama's one JSON answer):
# only when asked for (`--targets ...,router-whole`), as it differs from `router` only in S1.
ROUTER_WHOLE = "router-whole"
ROUTER_BEFORE = "router-before"
BEFORE_TREE = "BENCH_BEFORE_TREE"
NATIVE_PATH, OPENAI_PATH = "/api/chat", "/v1/chat/completions"
PATHS = {
    "native": NATIVE_PATH,
    "openai": OPENAI_PATH,
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}
# The router's other client APIs, as targets that share the router's process (S6).
API_TARGETS = {"responses": "router-responses", "messages": "router-messages"}


@dataclass(slots=True)
class Target:
    name: str
    base: str
    protocol: str  # "native" | "openai" | "responses" | "messages" (a key of PATHS)
    proc: Proc | None = None  # the proxy whose CPU and RSS the tables show
    headers: dict[str, str] = field(default_factory=dict)
    # None: the scenario says whether to stream; True: always (`direct-stream`: the node's
    # streamed answer, which is what the router asks of the node for a non-streamed request).
    stream: bool | None = None

    @property
    def url(self) -> str:
        return self.base + PATHS[self.protocol]

    def body(self, tokens: int, stream: bool, model: str = MODEL) -> str:
        messages = [{"role": "user", "content": PROMPT}]
        data: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        if self.protocol == "native":
            data["options"] = {"num_predict": tokens}
        elif self.protocol == "responses":
            data = {"model": model, "input": PROMPT, "stream": stream}
            data["max_output_tokens"] = tokens
        else:  # OpenAI chat and Anthropic Messages alike
            data["max_tokens"] = tokens
        return orjson.dumps(data).decode()


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )


def available(wanted: tuple[str, ...] = ALL_TARGETS) -> tuple[str, ...]:
    have = {"direct", "floor", "router", ROUTER_WHOLE}
    if os.environ.get(BEFORE_TREE):
        have.add(ROUTER_BEFORE)
    if nginx_binary() is not None:
        have.add("nginx")
    if litellm.executable() is not None:
        have.add("litellm")
    return tuple(t for t in wanted if t in have)


@dataclass(slots=True)
class NodeSpec:
    tokens: int
    tokens_per_second: float = 0.0
    max_parallel: int = 1024
    count: int = 1
    models: tuple[str, ...] = (MODEL,)


def start_nodes(
    run_dir: Path, cores: Cores, spec: NodeSpec, name: str = "node"
) -> tuple[Proc, list[str]]:
    ready = run_dir / f"{name}.ports.json"
    ready.unlink(missing_ok=True)
    argv = [
        *cores.prefix(proxy=False), sys.executable, "-m", "benchmarks.node",
        "--models", ",".join(spec.models), "--tokens", str(spec.tokens),
        "--tokens-per-second", str(spec.tokens_per_second),
        "--max-parallel", str(spec.max_parallel), "--count", str(spec.count),
        "--ready-file", str(ready),
    ]  # fmt: skip
    proc = Proc(name, argv, stdout=run_dir / f"{name}.log")
    deadline = time.monotonic() + 60
    while not ready.exists():
        if not proc.alive() or time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"{name} did not start:\n{proc.tail()}")
        time.sleep(0.05)
    urls = [f"http://127.0.0.1:{p}" for p in json.loads(ready.read_text())]
    return proc, urls


def write_fleet(
    path: Path,
    port: int,
    node_urls: list[str],
    key: str,
    capacity: int,
    health_interval_s: float,
    gather: str = "stream",
) -> None:
    fleet = {
        "listen": {"host": "127.0.0.1", "port": port},
        "api_keys": [{"name": "bench", "sha256": digest(key)}],
        "health": {"interval_s": health_interval_s, "timeout_s": min(2.0, health_interval_s)},
        # The default pool (4096 per node) would queue S4's 5,000 streams inside the router.
        # `gather` is written only when it is not the default, which an older router reads too.
        "routing": {"max_connections_per_node": 8192}
        | ({} if gather == "stream" else {"gather": gather}),
        "logging": {"level": "info", "format": "json", "access_log": True},
        "nodes": [
            {"name": f"node-{i}", "url": url, "max_concurrency": capacity}
            for i, url in enumerate(node_urls)
        ],
    }
    path.write_text(yaml.safe_dump(fleet, sort_keys=False))


def start_router(
    run_dir: Path, cores: Cores, node_urls: list[str], *, capacity: int = 1024,
    health_interval_s: float = 5.0, gather: str = "stream", before: bool = False,
    name: str | None = None, tree: str | None = None, wrap: Sequence[str] = (),
    ready_timeout_s: float = 120.0,
) -> Target:  # fmt: skip
    """The router as shipped: auth, metrics, request log on; its stdout goes to router.log.
    `gather="whole"`: the `router-whole` target (`routing.gather: whole`); `before`: the
    `router-before` target, this router's code taken from `$BENCH_BEFORE_TREE`. `name`, `tree`
    (a checkout whose router runs) and `wrap` (a command the router runs under, e.g.
    valgrind's) serve `benchmarks.instructions`."""
    key, port = new_key(), free_port()
    if name is None:
        name = ROUTER_BEFORE if before else "router" if gather == "stream" else ROUTER_WHOLE
    fleet = run_dir / f"{name}-fleet.yaml"
    write_fleet(fleet, port, node_urls, key, capacity, health_interval_s, gather)
    argv = [
        *cores.prefix(proxy=True),
        *wrap,
        sys.executable,
        "-m",
        "router",
        "serve",
        "--config",
        str(fleet),
    ]
    if before:
        tree = os.environ[BEFORE_TREE]
    env = os.environ | {"PYTHONPATH": tree} if tree else None  # `python -m router`: its cwd
    proc = Proc(
        name, argv, stdout=run_dir / f"{name}.log", env=env, cwd=Path(tree) if tree else None
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/readyz", proc, timeout_s=ready_timeout_s)
    return Target(
        name,
        base,
        "openai",
        proc,
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


def router_api(router: Target, api: str) -> Target:
    """The running router asked through another client API: same process, same key (sent the
    way that API's SDK sends it)."""
    headers = dict(router.headers)
    if api == "messages":
        key = headers.pop("Authorization").removeprefix("Bearer ")
        headers |= {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return Target(API_TARGETS[api], router.base, api, router.proc, headers)


def start_floor(run_dir: Path, cores: Cores, node_url: str) -> Target:
    port = free_port()
    argv = [
        *cores.prefix(proxy=True),
        sys.executable,
        "-m",
        "benchmarks.floor",
        "--port",
        str(port),
        "--upstream",
        node_url,
    ]
    proc = Proc("floor", argv, stdout=run_dir / "floor.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc)
    return Target("floor", base, "native", proc, {"Content-Type": "application/json"})


def start_nginx(run_dir: Path, cores: Cores, node_url: str) -> Target:
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (apt-get install -y nginx)")
    port, home = free_port(), run_dir / "nginx"
    home.mkdir(exist_ok=True)
    conf = (HERE / "nginx.conf").read_text()
    for name, value in (
        ("@DIR@", str(home)),
        ("@PORT@", str(port)),
        ("@UPSTREAM@", node_url.removeprefix("http://")),
    ):
        conf = conf.replace(name, value)
    (home / "nginx.conf").write_text(conf)
    argv = [
        *cores.prefix(proxy=True),
        binary,
        "-p",
        str(home),
        "-c",
        str(home / "nginx.conf"),
        "-e",
        str(home / "error.log"),
    ]
    proc = Proc("nginx", argv, stdout=run_dir / "nginx.out")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/", proc)
    return Target("nginx", base, "native", proc, {"Content-Type": "application/json"})


def start_litellm(run_dir: Path, cores: Cores, node_url: str) -> Target:
    port, key = free_port(), litellm.MASTER_KEY_PREFIX + new_key()
    config = litellm.write_config(run_dir / "litellm.yaml", MODEL, node_url, key)
    argv = [*cores.prefix(proxy=True), *litellm.argv(config, port)]
    proc = Proc("litellm", argv, stdout=run_dir / "litellm.log", env=litellm.env(), cwd=run_dir)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health/liveliness", proc, timeout_s=180)
    return Target(
        "litellm",
        base,
        "openai",
        proc,
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


def direct(node_url: str, name: str = "direct", stream: bool | None = None) -> Target:
    headers = {"Content-Type": "application/json"}
    return Target(name, node_url, "native", None, headers, stream)
