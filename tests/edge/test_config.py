"""The edge's keys in the fleet file: defaults, values, and errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from router.config import ConfigError, ServerConfig, TlsConfig, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "fleet.example.yaml"
KEY = {"name": "a", "sha256": "0" * 64}


def _parse(**sections: Any) -> Any:
    return parse_config(
        {"nodes": [{"name": "n", "url": "http://127.0.0.1:1"}], "api_keys": [KEY], **sections}
    )


def test_defaults() -> None:
    config = _parse()
    assert config.server == ServerConfig()
    assert config.server.max_json_depth == 64
    assert config.server.max_connections == 10_000
    assert config.listen.tls is None


def test_values_are_read() -> None:
    config = _parse(
        server={"max_json_depth": 10, "header_timeout_s": 0.5, "max_connections": 3},
        listen={"tls": {"cert_file": "c.pem", "key_file": "k.pem"}},
    )
    assert (config.server.max_json_depth, config.server.header_timeout_s) == (10, 0.5)
    assert config.server.max_connections == 3
    assert config.listen.tls == TlsConfig("c.pem", "k.pem")


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"server": {"max_json_depth": 500}}, "server.max_json_depth must be <= 200"),
        ({"server": {"header_timeout_s": 0}}, "server.header_timeout_s must be >= 0.01"),
        ({"server": {"max_connections": 0}}, "server.max_connections must be >= 1"),
        ({"listen": {"tls": {"cert_file": "c.pem"}}}, "listen.tls.key_file is required"),
        ({"listen": {"tls": {"cert_file": "c", "key_file": "k", "ca": "x"}}}, "'listen.tls.ca'"),
    ],
    ids=["depth", "timeout", "connections", "tls-key", "tls-unknown"],
)
def test_bad_values_name_the_key(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(**sections)
    assert message in str(info.value)


def test_the_example_file_states_the_defaults() -> None:
    assert load_config(str(EXAMPLE), env={}).server == ServerConfig()
