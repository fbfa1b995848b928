"""`jarvis-router keys new`, `keys list` and `check-config` on key files, as a user runs them
(`router.cli.main`, the console script's entry point): the key is printed once, digests never;
a fleet file whose keys file is not mounted yet passes; a plaintext key is refused."""

from __future__ import annotations

import hashlib
import re
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from router.api.auth import digest, new_key
from router.cli import main
from router.config import load_config, parse_keys

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
KEY = re.compile(r"jrv_[A-Za-z0-9_-]{32,}")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_fleet(tmp_path: Path, **extra: object) -> Path:
    fleet = {
        "nodes": [{"name": "gpu-a", "url": "http://127.0.0.1:11434"}],
        "api_keys": [
            {"name": "team-a", "sha256": digest(new_key()), "models": ["ollama/llama3*"]},
        ],
        **extra,
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path


def test_keys_new_prints_the_key_once_and_an_entry_the_router_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys,
        "keys", "new", "team-b",
        "--models", "ollama/llama3*,mistral",
        "--rpm", "60", "--tpm", "50000", "--max-concurrency", "4",
        "--expires", "2027-01-31T00:00:00Z", "--admin",
    )  # fmt: skip
    assert code == 0
    keys = KEY.findall(out)
    assert len(keys) == 1
    entry = yaml.safe_load(textwrap.dedent(out[out.index("  - name:") :]))
    assert entry[0]["sha256"] == hashlib.sha256(keys[0].encode()).hexdigest()
    (key,) = parse_keys(entry, "pasted")
    assert (key.name, key.models, key.rpm, key.tpm, key.max_concurrency, key.admin) == (
        "team-b",
        ("ollama/llama3*", "ollama/mistral"),
        60,
        50000,
        4,
        True,
    )
    assert key.expires_at is not None and key.expires_at.isoformat() == "2027-01-31T00:00:00+00:00"
    # Pasted under api_keys of a fleet file, it loads.
    fleet = write_fleet(tmp_path)
    data = yaml.safe_load(fleet.read_text())
    data["api_keys"] += entry
    fleet.write_text(yaml.safe_dump(data))
    assert [k.name for k in load_config(str(fleet), env={}).api_keys] == ["team-a", "team-b"]


def test_keys_new_refuses_a_bad_policy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keys", "new", "x", "--expires", "soon")
    assert code == 1 and "expires_at must be an RFC 3339 time" in err
    assert not KEY.search(out + err)  # no key is printed for an entry that cannot be used


def test_keys_list_shows_policies_never_secrets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(
        yaml.safe_dump(
            [
                {"name": "ops", "sha256": digest(new_key()), "admin": True},
                {
                    "name": "batch",
                    "sha256": digest(new_key()),
                    "rpm": 10,
                    "tpm": 9000,
                    "expires_at": "2020-01-01T00:00:00Z",
                },
            ]
        )
    )
    fleet = write_fleet(tmp_path, api_keys_file="keys.yaml")
    code, out, _ = run(capsys, "keys", "list", "--config", str(fleet))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ADMIN", "MODELS", "RPM", "TPM", "CONCURRENCY", "EXPIRES"]
    assert lines[1].split() == ["team-a", "no", "ollama/llama3*", "-", "-", "-", "never"]
    assert lines[2].split() == ["ops", "yes", "all", "-", "-", "-", "never"]
    expired = ["batch", "no", "all", "10", "9000", "-", "2020-01-01T00:00:00Z", "(expired)"]
    assert lines[3].split() == expired
    assert not HEX64.search(out) and "jrv_" not in out
    # A keys file on its own is listed the same way.
    code, out, _ = run(capsys, "keys", "list", "--config", str(keys_file))
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["NAME", "ops", "batch"]


def test_check_config_passes_a_fleet_file_whose_keys_file_is_not_mounted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fleet = write_fleet(tmp_path, api_keys_file="/etc/jarvis/keys/api-keys.yaml")
    code, out, err = run(capsys, "check-config", str(fleet))
    assert code == 0, err
    assert "/etc/jarvis/keys/api-keys.yaml: not present here, so its keys were not checked" in out
    # Without any inline key, too (all keys come from the Secret).
    data = yaml.safe_load(fleet.read_text())
    del data["api_keys"]
    fleet.write_text(yaml.safe_dump(data))
    assert run(capsys, "check-config", str(fleet))[0] == 0
    code, out, _ = run(capsys, "keys", "list", "--config", str(fleet))
    assert code == 0 and "is not present here" in out


def test_check_config_checks_a_keys_file_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys_file = tmp_path / "api-keys.yaml"
    keys_file.write_text(yaml.safe_dump([{"name": "ops", "sha256": digest(new_key())}]))
    for argv in (["--keys-file", str(keys_file)], [str(keys_file)]):
        code, out, err = run(capsys, "check-config", *argv)
        assert code == 0, err
        assert out.startswith(f"{keys_file}: OK, a keys file with 1 API keys")
        assert not HEX64.search(out)
    # With a fleet file, --keys-file stands in for the mounted Secret and is checked.
    keys_file.write_text(yaml.safe_dump([{"name": "ops", "sha256": digest(new_key()), "rpm": 0}]))
    fleet = write_fleet(tmp_path, api_keys_file="/etc/jarvis/keys/api-keys.yaml")
    code, _, err = run(capsys, "check-config", str(fleet), "--keys-file", str(keys_file))
    assert code == 1 and f"{keys_file}: [0].rpm must be >= 1" in err


@pytest.mark.parametrize(
    "entry",
    [{"name": "ops", "key": "KEY"}, {"name": "ops", "sha256": "KEY"}],
    ids=["key-field", "key-as-digest"],
)
def test_check_config_refuses_a_plaintext_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, entry: dict[str, str]
) -> None:
    key = new_key()
    keys_file = tmp_path / "api-keys.yaml"
    keys_file.write_text(yaml.safe_dump([{k: key if v == "KEY" else v for k, v in entry.items()}]))
    code, out, err = run(capsys, "check-config", "--keys-file", str(keys_file))
    field = "key" if "key" in entry else "sha256"
    assert code == 1
    assert f"{keys_file}: [0].{field} holds a plaintext API key" in err
    assert key not in out + err


def test_keys_new_expires_after_a_duration(capsys: pytest.CaptureFixture[str]) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    code, out, _ = run(capsys, "keys", "new", "trial", "--expires", "30d")
    after = datetime.now(UTC)
    assert code == 0
    (key,) = parse_keys(yaml.safe_load(textwrap.dedent(out[out.index("  - name:") :])), "out")
    assert key.expires_at is not None
    assert before + timedelta(days=30) <= key.expires_at <= after + timedelta(days=30)
