"""Key entries: policies read and normalised; a plaintext key refused, naming where it is and
never repeating it; a fleet file whose keys file is absent accepted only when asked."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from router.api.auth import digest, new_key
from router.config import ApiKeyConfig, ConfigError, model_pattern, parse_config, parse_keys

DIGEST = "a" * 64
NODES = [{"name": "a", "url": "http://127.0.0.1:11434"}]


def entry(**fields: Any) -> dict[str, Any]:
    return {"name": "team", "sha256": DIGEST, **fields}


def test_a_full_policy_is_read() -> None:
    (key,) = parse_keys(
        [
            entry(
                models=["ollama/llama3*", "Mistral", "phi3:latest"],
                rpm=60,
                tpm=1000,
                max_concurrency=2,
                expires_at="2027-01-31T12:00:00+01:00",
                admin=True,
            )
        ],
        "keys.yaml",
    )
    assert key == ApiKeyConfig(
        "team",
        DIGEST,
        admin=True,
        models=("ollama/llama3*", "ollama/mistral", "ollama/phi3"),
        rpm=60,
        tpm=1000,
        max_concurrency=2,
        expires_at=datetime(2027, 1, 31, 11, 0, tzinfo=UTC),
    )
    assert key.limited


def test_no_policy_means_no_limit() -> None:
    (key,) = parse_keys([entry()], "keys.yaml")
    assert (key.models, key.rpm, key.tpm, key.max_concurrency, key.expires_at) == (
        (),
        None,
        None,
        None,
        None,
    )
    assert not key.limited


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("2027-01-01T00:00:00Z", datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2027, 1, 1).date(), datetime(2027, 1, 1, tzinfo=UTC)),
    ],
    ids=["yaml-timestamp", "string", "date"],
)
def test_expires_at_forms(value: object, expected: datetime) -> None:
    (key,) = parse_keys([entry(expires_at=value)], "keys.yaml")
    assert key.expires_at == expected


@pytest.mark.parametrize(
    ("given", "pattern"),
    [
        ("llama3", "ollama/llama3"),
        ("ollama/llama3:latest", "ollama/llama3"),
        ("LLAMA3:70b", "ollama/llama3:70b"),
        ("llama3*", "ollama/llama3*"),
        ("ollama/llama3:*", "ollama/llama3:*"),
    ],
    ids=["bare", "tagged-latest", "other-tag", "glob-bare", "glob-tag"],
)
def test_model_patterns_are_public_ids(given: str, pattern: str) -> None:
    assert model_pattern(given) == pattern


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"rpm": 0}, "[0].rpm must be >= 1"),
        ({"tpm": "many"}, "[0].tpm must be a whole number"),
        ({"max_concurrency": 1.5}, "[0].max_concurrency must be a whole number"),
        ({"models": []}, "[0].models must be a non-empty list"),
        ({"models": "llama3"}, "[0].models must be a non-empty list"),
        ({"models": ["llama3", 3]}, "[0].models[1] must be a model id"),
        ({"expires_at": "next tuesday"}, "[0].expires_at must be an RFC 3339 time"),
        ({"expires_at": "2027-01-01T00:00:00"}, "[0].expires_at must be an RFC 3339 time"),
        ({"admin": "yes"}, "[0].admin must be true or false"),
        ({"colour": "red"}, "unknown key '[0].colour'"),
    ],
    ids=[
        "rpm-zero",
        "tpm-text",
        "concurrency-float",
        "models-empty",
        "models-string",
        "models-number",
        "expires-text",
        "expires-naive",
        "admin-text",
        "unknown",
    ],
)
def test_bad_policies_name_the_key(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_keys([entry(**fields)], "keys.yaml")
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("where", "build"),
    [
        ("[0].key", lambda key: {"name": "team", "key": key}),
        ("[0].api_key", lambda key: {"name": "team", "api_key": key, "sha256": digest(key)}),
        ("[0].sha256", lambda key: {"name": "team", "sha256": key}),
    ],
    ids=["key-field", "api-key-field", "key-in-sha256"],
)
def test_a_plaintext_key_is_refused_without_repeating_it(where: str, build: Any) -> None:
    key = new_key()
    with pytest.raises(ConfigError) as caught:
        parse_keys([build(key)], "secret/keys.yaml")
    message = str(caught.value)
    assert message.startswith(f"secret/keys.yaml: {where} holds a plaintext API key")
    assert "sha256" in message and "keys new" in message
    assert key not in message and key[4:] not in message


def test_a_fleet_file_names_the_plaintext_key_path() -> None:
    key = new_key()
    fleet = {"nodes": NODES, "api_keys": [entry(), {"name": "leak", "sha256": key}]}
    with pytest.raises(ConfigError, match=r"fleet.yaml: api_keys\[1\].sha256 holds a plaintext"):
        parse_config(fleet, "fleet.yaml", env={})


def test_an_absent_keys_file_is_accepted_only_when_asked(tmp_path: Path) -> None:
    fleet = {"nodes": NODES, "api_keys_file": "keys.yaml"}
    path = str(tmp_path / "fleet.yaml")
    with pytest.raises(ConfigError, match="cannot read file"):
        parse_config(fleet, path, env={})
    config = parse_config(fleet, path, env={}, require_keys_file=False)
    assert config.api_keys == ()
    assert config.api_keys_file == str(tmp_path / "keys.yaml")
    # Present, it is read and checked as always.
    (tmp_path / "keys.yaml").write_text(f"- {{name: team, sha256: '{DIGEST}', rpm: 0}}\n")
    with pytest.raises(ConfigError, match=r"\[0\].rpm must be >= 1"):
        parse_config(fleet, path, env={}, require_keys_file=False)
