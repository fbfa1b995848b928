"""One builder per section of the fleet file: the root `Section` in, that section's config out.

A builder reads its keys (checked by `router.config.validate`), refuses unknown ones, and checks
what relates keys of its own section. What relates sections is checked in `parse_config`.
"""

from __future__ import annotations

import importlib.util
import re
from urllib.parse import urlsplit

from router.config import models_section
from router.config.model import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_REDIS_URL,
    BreakerConfig,
    CoordinationConfig,
    HealthConfig,
    ListenConfig,
    LoggingConfig,
    MetricsConfig,
    ModelConfig,
    NodeConfig,
    RoutingConfig,
    ServerConfig,
    TlsConfig,
)
from router.config.validate import ConfigError, Section, read

STRATEGIES = ("cost_aware", "least_loaded", "round_robin", "random")
GATHER_MODES = ("stream", "whole")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Braces allowed so a prefix can be a Redis Cluster hash tag, e.g. "{jarvis}".
_KEY_PREFIX_RE = re.compile(r"^[A-Za-z0-9{][A-Za-z0-9{}:._-]{0,62}$")
_REDIS_SCHEMES = ("redis", "rediss", "unix")
_LOG_LEVELS = ("debug", "info", "warning", "error")
_LOG_FORMATS = ("json", "text")


def listen(root: Section) -> ListenConfig:
    return read(
        root.section("listen"),
        lambda s: ListenConfig(
            s.string("host", "127.0.0.1"),
            s.integer("port", 8080, minimum=0, maximum=65535),
            None if s.raw("tls") is None else read(s.section("tls"), _tls),
        ),
    )


def _tls(s: Section) -> TlsConfig:
    # The files are read at start, not here: `check-config` runs where a Secret is not mounted.
    return TlsConfig(s.string("cert_file"), s.string("key_file"))


def server(root: Section) -> ServerConfig:
    return read(
        root.section("server"),
        lambda s: ServerConfig(
            s.integer("max_body_bytes", DEFAULT_MAX_BODY_BYTES, minimum=1024),
            s.number("shutdown_grace_s", 30.0, minimum=0),
            s.number("reload_poll_s", 2.0, minimum=0, maximum=3600),
            s.integer("max_json_depth", 64, minimum=2, maximum=200),
            s.integer("max_messages", 10_000, minimum=1),
            s.integer("max_request_line_bytes", 8190, minimum=256, maximum=1 << 20),
            s.integer("max_header_bytes", 8190, minimum=256, maximum=1 << 20),
            s.integer("max_headers", 128, minimum=8, maximum=10_000),
            s.number("header_timeout_s", 10.0, minimum=0.01, maximum=3600),
            s.number("body_timeout_s", 60.0, minimum=0.01, maximum=3600),
            s.number("keepalive_timeout_s", 75.0, minimum=0.01, maximum=86400),
            s.integer("max_connections", 10_000, minimum=1),
        ),
    )


def health(root: Section) -> HealthConfig:
    config = read(
        root.section("health"),
        lambda s: HealthConfig(
            s.number("interval_s", 5.0, minimum=0.05),
            s.number("timeout_s", 2.0, minimum=0.01),
            s.number("refresh_min_interval_s", 1.0, minimum=0),
        ),
    )
    if config.timeout_s > config.interval_s:
        raise ConfigError(
            root.file,
            f"health.timeout_s must be <= health.interval_s, "
            f"got {config.timeout_s} > {config.interval_s}",
        )
    return config


def routing(root: Section) -> RoutingConfig:
    return read(
        root.section("routing"),
        lambda s: RoutingConfig(
            s.integer("max_attempts", 3, minimum=1, maximum=100),
            s.number("request_timeout_s", 600.0, minimum=0.1),
            s.number("connect_timeout_s", 5.0, minimum=0.01),
            s.integer("retry_after_s", 1, minimum=0, maximum=120),
            s.integer("max_connections_per_node", 4096, minimum=1),
            s.string("strategy", "cost_aware", choices=STRATEGIES),
            s.number("first_token_timeout_s", 300.0, minimum=0.01),
            s.number("token_gap_timeout_s", 60.0, minimum=0.01),
            s.integer("max_queue", 1024, minimum=0),
            s.number("queue_timeout_s", 30.0, minimum=0.01),
            s.boolean("affinity", True),
            s.number("affinity_balance", 1.25, minimum=1.0, maximum=10.0),
            s.number("cold_load_s", 10.0, minimum=0.0),
            s.number("queue_weight", 3.0, minimum=0.0, maximum=100.0),
            s.string("gather", "stream", choices=GATHER_MODES),
        ),
    )


def breaker(root: Section) -> BreakerConfig:
    config = read(
        root.section("breaker"),
        lambda s: BreakerConfig(
            s.integer("failure_threshold", 3, minimum=1, maximum=1000),
            s.number("base_backoff_s", 1.0, minimum=0.01),
            s.number("max_backoff_s", 60.0, minimum=0.01),
        ),
    )
    if config.max_backoff_s < config.base_backoff_s:
        raise ConfigError(
            root.file,
            f"breaker.max_backoff_s must be >= breaker.base_backoff_s, "
            f"got {config.max_backoff_s} < {config.base_backoff_s}",
        )
    return config


def logging_(root: Section) -> LoggingConfig:
    return read(
        root.section("logging"),
        lambda s: LoggingConfig(
            s.string("level", "info", choices=_LOG_LEVELS),
            s.string("format", "json", choices=_LOG_FORMATS),
            s.boolean("access_log", True),
        ),
    )


def metrics(root: Section) -> MetricsConfig:
    return read(
        root.section("metrics"),
        lambda s: MetricsConfig(
            s.boolean("require_key", False),
            None if s.raw("port") is None else s.integer("port", 0, minimum=0, maximum=65535),
        ),
    )


def coordination(root: Section) -> CoordinationConfig | None:
    # Opt-in: without the section (or with it left empty) each replica counts on its own.
    if root.raw("coordination") is None:
        return None
    return read(root.section("coordination"), _coordination)


def _coordination(s: Section) -> CoordinationConfig:
    url = s.string("redis_url", DEFAULT_REDIS_URL)
    if urlsplit(url).scheme not in _REDIS_SCHEMES:
        raise s.fail("redis_url", f"must be a redis://, rediss:// or unix:// URL, got {url!r}")
    if importlib.util.find_spec("redis") is None:
        raise s.fail(
            "redis_url", "needs the redis package: pip install 'jarvis-router[coordination]'"
        )
    return CoordinationConfig(
        redis_url=url,
        lease_ttl_s=s.number("lease_ttl_s", 30.0, minimum=1.0, maximum=3600.0),
        key_prefix=s.string("key_prefix", "jarvis", pattern=_KEY_PREFIX_RE),
        wait_timeout_s=s.number("wait_timeout_s", 30.0, minimum=0.0, maximum=3600.0),
    )


def nodes(root: Section) -> list[NodeConfig]:
    return [read(item, _node) for item in root.items("nodes")]


def _node(s: Section) -> NodeConfig:
    url = s.string("url").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise s.fail("url", f"must be an http:// or https:// URL with a host, got {url!r}")
    if parts.query or parts.fragment:
        raise s.fail("url", f"must not have a query or fragment, got {url!r}")
    try:
        _ = parts.port
    except ValueError:
        raise s.fail("url", f"has an invalid port, got {url!r}") from None
    return NodeConfig(
        name=s.string("name", pattern=_NAME_RE),
        url=url,
        max_concurrency=s.integer("max_concurrency", 4, minimum=1, maximum=100_000),
        max_loaded_models=s.integer("max_loaded_models", 3, minimum=1, maximum=1000),
    )


def models(root: Section) -> list[ModelConfig]:
    """The model catalog (issue #15); its entries' rules are in `router.config.models_section`."""
    entries = [read(item, models_section.entry) for item in root.items("models")]
    models_section.check(root, entries)
    return entries
