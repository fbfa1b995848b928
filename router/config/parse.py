"""A parsed fleet file → `FleetConfig`: every section's builder, then what spans sections."""

from __future__ import annotations

import os
from collections.abc import Mapping

from router.config import keys as keys_section
from router.config import sections
from router.config.keys import KEYS_FILE_ENV
from router.config.model import ApiKeyConfig, FleetConfig, ListenConfig, MetricsConfig, NodeConfig
from router.config.validate import ConfigError, Section, read_yaml, unique


def parse_config(
    data: object,
    file: str = "<fleet>",
    *,
    env: Mapping[str, str] | None = None,
    require_keys_file: bool = True,
) -> FleetConfig:
    """Validate a parsed fleet file. `env` supplies JARVIS_API_KEYS_FILE (default: os.environ).
    `require_keys_file=False` accepts a keys file that is not there (CI, before the Secret is
    mounted): its keys are then not checked, nor is "no keys at all"."""
    root = Section(file, data, "")
    listen = sections.listen(root)
    server = sections.server(root)
    health = sections.health(root)
    routing = sections.routing(root)
    breaker = sections.breaker(root)
    logging_ = sections.logging_(root)
    metrics = sections.metrics(root)
    coordination = sections.coordination(root)
    keys, keys_file, keys_missing = keys_section.api_keys(
        root, os.environ if env is None else env, require_file=require_keys_file
    )
    nodes = sections.nodes(root)
    models = sections.models(root)
    root.done()  # an unknown top-level key (a typo of `nodes`?) before "nodes must list..."
    _check_fleet(file, nodes, keys, listen, metrics, keys_missing=keys_missing)
    return FleetConfig(
        nodes=tuple(nodes),
        api_keys=tuple(keys),
        listen=listen,
        server=server,
        api_keys_file=keys_file,
        health=health,
        routing=routing,
        logging=logging_,
        metrics=metrics,
        coordination=coordination,
        breaker=breaker,
        models=tuple(models),
    )


def _check_fleet(
    file: str,
    nodes: list[NodeConfig],
    keys: list[ApiKeyConfig],
    listen: ListenConfig,
    metrics: MetricsConfig,
    *,
    keys_missing: bool,
) -> None:
    if not nodes:
        raise ConfigError(file, "nodes must list at least one Ollama node")
    if not keys and not keys_missing:
        raise ConfigError(
            file,
            f"api_keys: no API keys configured (add api_keys, api_keys_file "
            f"or set {KEYS_FILE_ENV})",
        )
    unique(file, "nodes", [n.name for n in nodes])
    unique(file, "api_keys", [k.name for k in keys])
    if metrics.port and metrics.port == listen.port:
        raise ConfigError(file, f"metrics.port must differ from listen.port, got {metrics.port}")


def load_config(
    path: str, *, env: Mapping[str, str] | None = None, require_keys_file: bool = True
) -> FleetConfig:
    return parse_config(read_yaml(path), path, env=env, require_keys_file=require_keys_file)
