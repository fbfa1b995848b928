"""The fleet file: YAML → validated, frozen config objects.

Every key is checked at load time, so nothing on the request path parses or guesses config.
Unknown keys and bad values raise `ConfigError` naming the key path, e.g.
`routing.max_attempts must be >= 1, got 0`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

KEYS_FILE_ENV = "JARVIS_API_KEYS_FILE"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Braces allowed so a prefix can be a Redis Cluster hash tag, e.g. "{jarvis}".
_KEY_PREFIX_RE = re.compile(r"^[A-Za-z0-9{][A-Za-z0-9{}:._-]{0,62}$")
_REDIS_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_LOG_LEVELS = ("debug", "info", "warning", "error")
_LOG_FORMATS = ("json", "text")
STRATEGIES = ("cost_aware", "least_loaded", "round_robin", "random")
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

T = TypeVar("T")


class ConfigError(Exception):
    """A fleet file that cannot be used; `path` names the file, the message names the key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class ServerConfig:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    shutdown_grace_s: float = 30.0
    # How often the fleet file is checked for changes (mtime, size, inode); 0: only on SIGHUP.
    reload_poll_s: float = 2.0


@dataclass(frozen=True, slots=True)
class ApiKeyConfig:
    name: str
    sha256: str
    admin: bool = False


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


class _Section:
    """Reads one mapping of the file, remembering which keys were used."""

    def __init__(self, file: str, data: object, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(file, f"{path or 'the file'} must be a mapping, got {_kind(data)}")
        self.file, self.data, self.path = file, data, path
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.file, f"{self.key(name)} {message}")

    def raw(self, name: str) -> object:
        self._used.add(name)
        return self.data.get(name)

    def section(self, name: str) -> _Section:
        return _Section(self.file, self.raw(name), self.key(name))

    def string(
        self,
        name: str,
        default: str | None = None,
        *,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] = (),
    ) -> str:
        value = self.raw(name)
        if value is None:
            if default is None:
                raise self.fail(name, "is required")
            return default
        if not isinstance(value, str) or not value:
            raise self.fail(name, f"must be a non-empty string, got {_kind(value)}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(name, f"has an invalid value {value!r}")
        if choices and value not in choices:
            raise self.fail(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int = 2**31) -> int:
        return self._number(name, default, int, minimum, maximum)

    def number(self, name: str, default: float, *, minimum: float, maximum: float = 1e9) -> float:
        return float(self._number(name, default, float, minimum, maximum))

    def _number(self, name: str, default: T, kind: type, minimum: float, maximum: float) -> T:
        value = self.raw(name)
        if value is None:
            return default
        allowed = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise self.fail(
                name, f"must be a {'whole ' if kind is int else ''}number, got {_kind(value)}"
            )
        if value < minimum:
            raise self.fail(name, f"must be >= {minimum}, got {value}")
        if value > maximum:
            raise self.fail(name, f"must be <= {maximum}, got {value}")
        return value  # type: ignore[return-value]

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, got {_kind(value)}")
        return value

    def items(self, name: str) -> list[_Section]:
        value = self.raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(name, f"must be a list, got {_kind(value)}")
        return [_Section(self.file, item, f"{self.key(name)}[{i}]") for i, item in enumerate(value)]

    def done(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self._used)
        if unknown:
            where = f" in {self.path}" if self.path else ""
            raise ConfigError(self.file, f"unknown key {self.key(unknown[0])!r}{where}")


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: str) -> object:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read file: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"invalid YAML: {exc}") from None


def _read(section: _Section, build: Callable[[_Section], T]) -> T:
    result = build(section)
    section.done()
    return result


def _api_key(s: _Section) -> ApiKeyConfig:
    digest = s.string("sha256").lower()
    if not _SHA256_RE.match(digest):
        raise s.fail("sha256", "must be 64 hex characters (the SHA-256 of the whole key)")
    return ApiKeyConfig(s.string("name", pattern=_NAME_RE), digest, s.boolean("admin", False))


def _node(s: _Section) -> NodeConfig:
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
    )


def _coordination(s: _Section) -> CoordinationConfig:
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


def _unique(file: str, what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(file, f"{what}[{i}].name {name!r} is used twice")
        seen.add(name)


def load_keys_file(path: str) -> tuple[ApiKeyConfig, ...]:
    """A keys file holds a list of {name, sha256, admin} (or a mapping with `api_keys:`)."""
    data = _read_yaml(path)
    if isinstance(data, Mapping):
        root = _Section(path, data, "")
        keys = [_read(item, _api_key) for item in root.items("api_keys")]
        root.done()
    elif isinstance(data, list):
        keys = [_read(_Section(path, item, f"[{i}]"), _api_key) for i, item in enumerate(data)]
    else:
        raise ConfigError(path, f"must be a list of API keys, got {_kind(data)}")
    return tuple(keys)


def parse_config(
    data: object, file: str = "<fleet>", *, env: Mapping[str, str] | None = None
) -> FleetConfig:
    """Validate a parsed fleet file. `env` supplies JARVIS_API_KEYS_FILE (default: os.environ)."""
    root = _Section(file, data, "")
    listen = _read(
        root.section("listen"),
        lambda s: ListenConfig(
            s.string("host", "127.0.0.1"), s.integer("port", 8080, minimum=0, maximum=65535)
        ),
    )
    server = _read(
        root.section("server"),
        lambda s: ServerConfig(
            s.integer("max_body_bytes", DEFAULT_MAX_BODY_BYTES, minimum=1024),
            s.number("shutdown_grace_s", 30.0, minimum=0),
            s.number("reload_poll_s", 2.0, minimum=0, maximum=3600),
        ),
    )
    health = _read(
        root.section("health"),
        lambda s: HealthConfig(
            s.number("interval_s", 5.0, minimum=0.05),
            s.number("timeout_s", 2.0, minimum=0.01),
            s.number("refresh_min_interval_s", 1.0, minimum=0),
        ),
    )
    routing = _read(
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
        ),
    )
    breaker = _read(
        root.section("breaker"),
        lambda s: BreakerConfig(
            s.integer("failure_threshold", 3, minimum=1, maximum=1000),
            s.number("base_backoff_s", 1.0, minimum=0.01),
            s.number("max_backoff_s", 60.0, minimum=0.01),
        ),
    )
    if breaker.max_backoff_s < breaker.base_backoff_s:
        raise ConfigError(
            file,
            f"breaker.max_backoff_s must be >= breaker.base_backoff_s, "
            f"got {breaker.max_backoff_s} < {breaker.base_backoff_s}",
        )
    logging_ = _read(
        root.section("logging"),
        lambda s: LoggingConfig(
            s.string("level", "info", choices=_LOG_LEVELS),
            s.string("format", "json", choices=_LOG_FORMATS),
            s.boolean("access_log", True),
        ),
    )
    metrics = _read(
        root.section("metrics"),
        lambda s: MetricsConfig(
            s.boolean("require_key", False),
            None if s.raw("port") is None else s.integer("port", 0, minimum=0, maximum=65535),
        ),
    )
    # Opt-in: without the section (or with it left empty) each replica counts on its own.
    coordination = (
        None
        if root.raw("coordination") is None
        else _read(root.section("coordination"), _coordination)
    )
    keys = [_read(item, _api_key) for item in root.items("api_keys")]
    keys_file = root.raw("api_keys_file")
    if keys_file is not None and (not isinstance(keys_file, str) or not keys_file):
        raise root.fail("api_keys_file", f"must be a file path, got {_kind(keys_file)}")
    if keys_file:  # relative to the fleet file, like an include; the env var to the cwd
        keys_file = os.path.join(os.path.dirname(file), keys_file)
    keys_file = (env if env is not None else os.environ).get(KEYS_FILE_ENV) or keys_file
    if keys_file:
        keys.extend(load_keys_file(keys_file))
    nodes = [_read(item, _node) for item in root.items("nodes")]
    root.done()
    if not nodes:
        raise ConfigError(file, "nodes must list at least one Ollama node")
    if not keys:
        raise ConfigError(
            file,
            f"api_keys: no API keys configured (add api_keys, api_keys_file "
            f"or set {KEYS_FILE_ENV})",
        )
    _unique(file, "nodes", [n.name for n in nodes])
    _unique(file, "api_keys", [k.name for k in keys])
    if metrics.port and metrics.port == listen.port:
        raise ConfigError(file, f"metrics.port must differ from listen.port, got {metrics.port}")
    if health.timeout_s > health.interval_s:
        raise ConfigError(
            file,
            f"health.timeout_s must be <= health.interval_s, "
            f"got {health.timeout_s} > {health.interval_s}",
        )
    return FleetConfig(
        nodes=tuple(nodes),
        api_keys=tuple(keys),
        listen=listen,
        server=server,
        api_keys_file=keys_file or None,
        health=health,
        routing=routing,
        logging=logging_,
        metrics=metrics,
        coordination=coordination,
        breaker=breaker,
    )


def load_config(path: str, *, env: Mapping[str, str] | None = None) -> FleetConfig:
    return parse_config(_read_yaml(path), path, env=env)
