"""The fleet file's `coordination:` section: opt-in, every key checked like the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from router.config import DEFAULT_REDIS_URL, ConfigError, CoordinationConfig, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "fleet.example.yaml"
BASE: dict[str, Any] = {
    "nodes": [{"name": "gpu-a", "url": "http://10.0.0.11:11434"}],
    "api_keys": [{"name": "team-a", "sha256": "a" * 64}],
}


def _load(section: object) -> CoordinationConfig | None:
    return parse_config({**BASE, "coordination": section}, env={}).coordination


def test_absent_or_empty_section_means_no_coordination() -> None:
    assert parse_config(BASE, env={}).coordination is None
    assert _load(None) is None


def test_an_empty_mapping_turns_it_on_with_the_defaults() -> None:
    assert _load({}) == CoordinationConfig(DEFAULT_REDIS_URL, 30.0, "jarvis", 30.0)


def test_every_key_is_read() -> None:
    section = {
        "redis_url": "rediss://user:secret@redis.internal:6380/2",
        "lease_ttl_s": 12,
        "key_prefix": "{jarvis-prod}",
        "wait_timeout_s": 0,
    }
    config = _load(section)
    assert config == CoordinationConfig(
        "rediss://user:secret@redis.internal:6380/2", 12.0, "{jarvis-prod}", 0.0
    )
    assert config is not None
    assert isinstance(config.lease_ttl_s, float)


BAD = [
    ({"redis_url": "http://redis:6379"}, "coordination.redis_url must be a redis://"),
    ({"redis_url": ""}, "coordination.redis_url must be a non-empty string"),
    ({"lease_ttl_s": 0.5}, "coordination.lease_ttl_s must be >= 1.0, got 0.5"),
    ({"wait_timeout_s": -1}, "coordination.wait_timeout_s must be >= 0.0, got -1"),
    ({"key_prefix": "has space"}, "coordination.key_prefix has an invalid value"),
    ({"redis_urls": "redis://x"}, "unknown key 'coordination.redis_urls' in coordination"),
    ("redis://x", "coordination must be a mapping, got str"),
]


@pytest.mark.parametrize(("section", "message"), BAD, ids=[m.split()[0] for _, m in BAD])
def test_bad_values_name_the_key(section: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(section)
    assert message in caught.value.message


def test_the_documented_example_section_is_valid() -> None:
    lines = EXAMPLE.read_text().splitlines()
    start = lines.index("# coordination:")
    block = ["coordination:"]
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        block.append("  " + line[4:])
    config = parse_config({**BASE, **yaml.safe_load("\n".join(block))}, env={})
    assert config.coordination == CoordinationConfig()
