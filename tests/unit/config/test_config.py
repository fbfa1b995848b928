"""The fleet file: good files load with the right values, bad ones name the key that is wrong.

Bad files carry their expectation in their first lines: `# expect: <part of the message>` and,
when the error is in another file (a keys file), `# file: <the file the error names>`.
Paths inside fleet files are relative to the working directory, so the tests run from
`tests/fixtures/fleets`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from router.api.auth import KeyRing
from router.config import (
    DEFAULT_MAX_BODY_BYTES,
    KEYS_FILE_ENV,
    ApiKeyConfig,
    ConfigError,
    FleetConfig,
    HealthConfig,
    ListenConfig,
    LoggingConfig,
    MetricsConfig,
    NodeConfig,
    RoutingConfig,
    ServerConfig,
    load_config,
    parse_config,
)

FLEETS = Path(__file__).resolve().parents[2] / "fixtures" / "fleets"
EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "fleet.example.yaml"

TEAM_A = ApiKeyConfig("team-a", "975aa9f8b23ec4f0e29c45c55eef3b858d97efe0f1d273bd7714de3de0925160")
TEAM_B = ApiKeyConfig("team-b", "ed133df1f8da80117c32de003e9a8e9e6f02d8a010227d6b886a17a18168355b")
OPS = ApiKeyConfig(
    "ops", "c0f59a7fb95d7e8bbfe27df28712e497e0f0e853a1cb1bfbb0bb8edac8c1d4db", admin=True
)
LIST_1 = ApiKeyConfig("list-1", "572363cdb8af4fbad5b05fdb96c3899ee0ec642b9348cfedd7c7474b4515fbe9")
LIST_2 = ApiKeyConfig(
    "list-2", "8c16739be46ea70949f204ec31626207336ddc1be8352245edc9b5d7c36b2afd", admin=True
)
MAP_1 = ApiKeyConfig("map-1", "394934e10c27f8dc88ab4ce770b91974c0c6efa228e19d32ab3d2490cbeb673f")
GPU_A = NodeConfig("gpu-a", "http://10.0.0.11:11434")

GOOD = {
    "minimal.yaml": FleetConfig(nodes=(GPU_A,), api_keys=(TEAM_A,)),
    "null-sections.yaml": FleetConfig(
        nodes=(NodeConfig("gpu-a", "http://127.0.0.1:11434"),), api_keys=(TEAM_A,)
    ),
    "full.yaml": FleetConfig(
        nodes=(
            NodeConfig("gpu-a", "http://10.0.0.11:11434", max_concurrency=8),
            NodeConfig("gpu_b.rack-2", "https://ollama.example.com", max_concurrency=1),
        ),
        api_keys=(TEAM_A, OPS),
        listen=ListenConfig("0.0.0.0", 9000),
        server=ServerConfig(max_body_bytes=2048, shutdown_grace_s=7.5),
        health=HealthConfig(interval_s=10.0, timeout_s=10.0, refresh_min_interval_s=0.0),
        routing=RoutingConfig(
            max_attempts=5,
            request_timeout_s=120.0,
            connect_timeout_s=0.5,
            retry_after_s=0,
            max_connections_per_node=64,
        ),
        logging=LoggingConfig(level="debug", format="text", access_log=False),
        metrics=MetricsConfig(require_key=True),
    ),
    "keys-file-only.yaml": FleetConfig(
        nodes=(GPU_A,), api_keys=(LIST_1, LIST_2), api_keys_file="good/../keys/list.yaml"
    ),
    "keys-file-and-inline.yaml": FleetConfig(
        nodes=(GPU_A,), api_keys=(TEAM_A, MAP_1), api_keys_file="good/../keys/mapping.yaml"
    ),
}
BAD = sorted(p.name for p in (FLEETS / "bad").glob("*.yaml"))


@pytest.fixture(autouse=True)
def in_fleets_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FLEETS)


def expectation(path: Path) -> tuple[str, str]:
    """(expected message part, file the error names) from a bad file's header comments."""
    meta = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        meta[key] = value
    assert "expect" in meta, f"{path.name} lacks its '# expect:' line"
    return meta["expect"], meta.get("file", f"bad/{path.name}")


def test_every_good_file_has_an_expectation() -> None:
    assert sorted(p.name for p in (FLEETS / "good").glob("*.yaml")) == sorted(GOOD)


@pytest.mark.parametrize("name", sorted(GOOD), ids=sorted(GOOD))
def test_good_file_loads_with_its_values(name: str) -> None:
    assert load_config(f"good/{name}", env={}) == GOOD[name]


def test_defaults_match_the_documented_ones() -> None:
    config = load_config("good/minimal.yaml", env={})
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8080)
    assert config.server.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 10 * 1024 * 1024
    assert config.server.shutdown_grace_s == 30.0
    assert (config.health.interval_s, config.health.timeout_s) == (5.0, 2.0)
    assert config.health.refresh_min_interval_s == 1.0
    assert config.routing.max_attempts == 3
    assert config.routing.request_timeout_s == 600.0
    assert config.routing.connect_timeout_s == 5.0
    assert config.routing.retry_after_s == 1
    assert config.routing.max_connections_per_node == 4096
    assert (config.logging.level, config.logging.format) == ("info", "json")
    assert config.logging.access_log is True
    assert config.metrics.require_key is False
    assert config.nodes[0].max_concurrency == 4
    assert config.api_keys[0].admin is False
    assert config.api_keys_file is None


def test_numbers_are_floats_where_the_unit_is_seconds() -> None:
    config = load_config("good/full.yaml", env={})
    assert isinstance(config.health.interval_s, float)
    assert isinstance(config.routing.request_timeout_s, float)
    assert isinstance(config.listen.port, int)


def test_example_fleet_file_in_the_repo_loads() -> None:
    config = load_config(str(EXAMPLE), env={})
    assert [n.name for n in config.nodes] == ["gpu-a", "gpu-b"]
    assert [k.name for k in config.api_keys] == ["team-a"]


def test_config_objects_are_frozen() -> None:
    config = load_config("good/minimal.yaml", env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.routing.max_attempts = 10  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.nodes[0].url = "http://elsewhere:11434"  # type: ignore[misc]
    assert isinstance(config.nodes, tuple)
    assert isinstance(config.api_keys, tuple)


def test_there_are_enough_bad_files() -> None:
    assert len(BAD) >= 12


@pytest.mark.parametrize("name", BAD, ids=[n.removesuffix(".yaml") for n in BAD])
def test_bad_file_names_the_wrong_key(name: str) -> None:
    expected, file = expectation(FLEETS / "bad" / name)
    with pytest.raises(ConfigError) as caught:
        load_config(f"bad/{name}", env={})
    assert expected in caught.value.message
    assert caught.value.path == file
    assert str(caught.value).startswith(f"{file}: ")


def test_missing_fleet_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("good/no-such-fleet.yaml", env={})
    assert caught.value.path == "good/no-such-fleet.yaml"
    assert "cannot read file" in caught.value.message


def test_invalid_yaml_error_gives_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("bad/invalid-yaml.yaml", env={})
    assert "line 8" in caught.value.message


# -- keys file and environment --------------------------------------------------------------
NODES = [{"name": "gpu-a", "url": "http://10.0.0.11:11434"}]


def fleet(**extra: object) -> dict[str, object]:
    return {"nodes": NODES, **extra}


def inline(key: ApiKeyConfig) -> dict[str, object]:
    return {"name": key.name, "sha256": key.sha256, "admin": key.admin}


def test_env_keys_file_wins_over_the_fleet_key() -> None:
    config = parse_config(
        fleet(api_keys_file="keys/does-not-exist.yaml"),
        env={KEYS_FILE_ENV: "keys/list.yaml"},
    )
    assert config.api_keys == (LIST_1, LIST_2)
    assert config.api_keys_file == "keys/list.yaml"


def test_empty_env_var_falls_back_to_the_fleet_key() -> None:
    config = parse_config(fleet(api_keys_file="keys/mapping.yaml"), env={KEYS_FILE_ENV: ""})
    assert config.api_keys == (MAP_1,)
    assert config.api_keys_file == "keys/mapping.yaml"


def test_env_keys_file_adds_to_inline_keys() -> None:
    config = parse_config(
        fleet(api_keys=[inline(TEAM_B)]), env={KEYS_FILE_ENV: "keys/mapping.yaml"}
    )
    assert config.api_keys == (TEAM_B, MAP_1)


def test_env_keys_file_alone_is_enough() -> None:
    config = parse_config(fleet(), env={KEYS_FILE_ENV: "keys/list.yaml"})
    assert [k.name for k in config.api_keys] == ["list-1", "list-2"]


def test_env_pointing_at_a_missing_file_names_that_file() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(fleet(api_keys=[inline(TEAM_A)]), env={KEYS_FILE_ENV: "keys/gone.yaml"})
    assert caught.value.path == "keys/gone.yaml"
    assert "cannot read file" in caught.value.message


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_FILE_ENV, "keys/list.yaml")
    assert parse_config(fleet()).api_keys == (LIST_1, LIST_2)


def test_explicit_env_ignores_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_FILE_ENV, "keys/gone.yaml")
    assert parse_config(fleet(api_keys=[inline(TEAM_A)]), env={}).api_keys == (TEAM_A,)


def test_parse_config_names_its_source_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"nodes": NODES}, "fleet.yaml", env={})
    assert str(caught.value).startswith("fleet.yaml: api_keys: no API keys configured")
    assert KEYS_FILE_ENV in caught.value.message


def test_loaded_keys_authenticate_their_clients() -> None:
    ring = KeyRing(load_config("good/full.yaml", env={}).api_keys)
    ops = ring.authenticate("Bearer jrv_ops")  # the upper-case digest in the file
    assert ops is not None
    assert (ops.name, ops.admin) == ("ops", True)
    team = ring.authenticate("Bearer jrv_team-a")
    assert team is not None
    assert team.name == "team-a"
    assert ring.authenticate("Bearer jrv_team-b") is None
