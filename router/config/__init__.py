"""The fleet file: YAML → validated, frozen config objects.

Every key is checked at load time, so nothing on the request path parses or guesses config.
Unknown keys and bad values raise `ConfigError` naming the key path, e.g.
`routing.max_attempts must be >= 1, got 0`.

`model` holds the frozen dataclasses, `validate` the typed getters (and the strict YAML
reader), `sections` one builder per section, `parse` the whole file. Pure of the router's I/O:
it reads the fleet file and a keys file, and imports nothing else of the router.
"""

from router.config.keys import KEYS_FILE_ENV, load_keys_file, model_pattern, parse_keys
from router.config.model import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_REDIS_URL,
    KEY_PREFIX,
    ApiKeyConfig,
    BreakerConfig,
    CoordinationConfig,
    FleetConfig,
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
from router.config.parse import load_config, parse_config
from router.config.sections import STRATEGIES
from router.config.validate import ConfigError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_REDIS_URL",
    "KEYS_FILE_ENV",
    "KEY_PREFIX",
    "STRATEGIES",
    "ApiKeyConfig",
    "BreakerConfig",
    "ConfigError",
    "CoordinationConfig",
    "FleetConfig",
    "HealthConfig",
    "ListenConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ModelConfig",
    "NodeConfig",
    "RoutingConfig",
    "ServerConfig",
    "TlsConfig",
    "load_config",
    "load_keys_file",
    "model_pattern",
    "parse_config",
    "parse_keys",
]
