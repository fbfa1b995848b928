"""The fleet file's values: frozen dataclasses with the defaults of an absent key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
KEY_PREFIX = "jrv_"  # every key the router makes starts so; a config value that does is a leak


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """The listener's certificate chain and private key (PEM files), loaded at start."""

    cert_file: str
    key_file: str


@dataclass(frozen=True, slots=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    tls: TlsConfig | None = None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The edge: what one client may send and how long it may take (router.api.edge)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    shutdown_grace_s: float = 30.0
    # How often the fleet file is checked for changes (mtime, size, inode); 0: only on SIGHUP.
    reload_poll_s: float = 2.0
    # Below orjson's own limits (1024 to parse, 255 to write the node's payload).
    max_json_depth: int = 64
    max_messages: int = 10_000
    max_request_line_bytes: int = 8190
    max_header_bytes: int = 8190  # one header field, name and value
    max_headers: int = 128
    # A request head must be complete this long after its first byte; a body must have fully
    # arrived this long after the head; an idle keep-alive connection is closed after this.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keepalive_timeout_s: float = 75.0
    max_connections: int = 10_000


@dataclass(frozen=True, slots=True)
class ApiKeyConfig:
    """One key: its digest, and what it may use and how much (None: no limit)."""

    name: str
    sha256: str
    admin: bool = False
    # Allowlist of public model ids and globs (`ollama/llama3*`), normalised; empty: every model.
    models: tuple[str, ...] = ()
    rpm: int | None = None  # requests per minute (sliding window)
    tpm: int | None = None  # prompt + completion tokens per minute (sliding window)
    max_concurrency: int | None = None  # requests of this key in progress at once
    expires_at: datetime | None = None  # timezone-aware; from then on the key is refused

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.max_concurrency is not None


@dataclass(frozen=True, slots=True)
class HealthConfig:
    interval_s: float = 5.0
    timeout_s: float = 2.0
    # An unknown model triggers a refresh of every node's model list at most this often.
    refresh_min_interval_s: float = 1.0


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    max_attempts: int = 3
    request_timeout_s: float = 600.0
    connect_timeout_s: float = 5.0
    retry_after_s: int = 1
    max_connections_per_node: int = 4096
    strategy: str = "cost_aware"
    # Ollama sends nothing until the model is loaded and the first token exists: allow a cold load.
    first_token_timeout_s: float = 300.0
    token_gap_timeout_s: float = 60.0
    max_queue: int = 1024
    queue_timeout_s: float = 30.0
    affinity: bool = True
    affinity_balance: float = 1.25
    cold_load_s: float = 10.0
    # cost_aware: how much a full node's queue counts. A queued request also delays the ones
    # behind it, so 3 makes a free slower node worth it once requests wait for the fast ones.
    queue_weight: float = 3.0
    # How a client's non-streamed answer is read from the node: "stream" gathers Ollama's
    # stream (a hung node fails over after first_token_timeout_s, a stalled one after
    # token_gap_timeout_s); "whole" asks for Ollama's one JSON answer (cheaper per request,
    # but only request_timeout_s bounds a hung node). README "Non-streamed answers".
    gather: str = "stream"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 3
    base_backoff_s: float = 1.0
    max_backoff_s: float = 60.0


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"
    format: str = "json"
    access_log: bool = True


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    require_key: bool = False  # /metrics needs any key, /status an admin key
    port: int | None = None  # serve /metrics and /status only on this port (same host)


@dataclass(frozen=True, slots=True)
class CoordinationConfig:
    """Replicas share each node's slots through Redis; absent: each replica counts alone."""

    redis_url: str = DEFAULT_REDIS_URL
    lease_ttl_s: float = 30.0
    key_prefix: str = "jarvis"
    wait_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    url: str
    max_concurrency: int = 4
    # Models the node keeps in memory at once (its OLLAMA_MAX_LOADED_MODELS; Ollama's own
    # default is 3 per GPU): the warm pool loads a model only where one more fits.
    max_loaded_models: int = 3


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """One entry of `models:`: a public name, the node models behind it and the options every
    request for it carries (issue #15). Names are kept as written; `router.catalog` normalises."""

    name: str  # public id ollama/<name>
    targets: tuple[str, ...]  # node model names, most preferred first; default (name,)
    num_ctx: int | None = None  # sent as options.num_ctx; None: the node's default
    keep_alive: str | int | float | None = None  # a Go duration ("30m") or seconds; -1: forever
    min_loaded: int = 0  # keep it loaded on at least this many healthy nodes that have it
    truncate: bool = False  # false: an over-long prompt is a 400, never silently cut
    num_predict: int | None = None  # a cap on generated tokens; a client's lower max_tokens wins
    think: bool | str | None = None  # the default when the client does not say
    hide_raw: bool = False  # /models lists only the public name, not the targets' own ids


@dataclass(frozen=True, slots=True)
class FleetConfig:
    nodes: tuple[NodeConfig, ...]
    api_keys: tuple[ApiKeyConfig, ...]
    listen: ListenConfig = ListenConfig()
    server: ServerConfig = ServerConfig()
    api_keys_file: str | None = None
    health: HealthConfig = HealthConfig()
    routing: RoutingConfig = RoutingConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    coordination: CoordinationConfig | None = None
    breaker: BreakerConfig = BreakerConfig()
    models: tuple[ModelConfig, ...] = ()
