"""The fleet file's `models:` section: good entries load with their values and defaults, a bad
entry is refused naming its key path, in the library and through `jarvis-router check-config`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from router import cli
from router.config import ConfigError, ModelConfig, load_config, parse_config

ROOT = Path(__file__).resolve().parents[3]
BASE: dict[str, Any] = {
    "nodes": [{"name": "gpu-a", "url": "http://10.0.0.11:11434"}],
    "api_keys": [{"name": "team-a", "sha256": "a" * 64}],
}


def models(*entries: dict[str, Any]) -> tuple[ModelConfig, ...]:
    return parse_config({**BASE, "models": list(entries)}, "fleet.yaml", env={}).models


GOOD: list[tuple[str, list[dict[str, Any]], tuple[ModelConfig, ...]]] = [
    ("absent", [], ()),
    ("name-only", [{"name": "mistral"}], (ModelConfig("mistral", ("mistral",)),)),
    (
        "the-issue-example",
        [
            {
                "name": "llama3",
                "targets": ["llama3:70b", "llama3:8b"],
                "num_ctx": 8192,
                "keep_alive": "30m",
            },
            {"name": "mistral", "num_ctx": 2048, "min_loaded": 2},
        ],
        (
            ModelConfig("llama3", ("llama3:70b", "llama3:8b"), num_ctx=8192, keep_alive="30m"),
            ModelConfig("mistral", ("mistral",), num_ctx=2048, min_loaded=2),
        ),
    ),
    (
        "every-key",
        [
            {
                "name": "qwen",
                "targets": ["qwen3:32b"],
                "num_ctx": 32768,
                "keep_alive": -1,
                "min_loaded": 1,
                "truncate": True,
                "num_predict": 1024,
                "think": "high",
                "hide_raw": True,
            }
        ],
        (
            ModelConfig(
                "qwen",
                ("qwen3:32b",),
                num_ctx=32768,
                keep_alive=-1,
                min_loaded=1,
                truncate=True,
                num_predict=1024,
                think="high",
                hide_raw=True,
            ),
        ),
    ),
    (
        "keep-alive-seconds",
        [{"name": "m", "keep_alive": 300}],
        (ModelConfig("m", ("m",), keep_alive=300),),
    ),
    (
        "keep-alive-zero-string",
        [{"name": "m", "keep_alive": "0"}],
        (ModelConfig("m", ("m",), keep_alive="0"),),
    ),
    (
        "keep-alive-go-duration",
        [{"name": "m", "keep_alive": "1h30m"}],
        (ModelConfig("m", ("m",), keep_alive="1h30m"),),
    ),
    (
        "keep-alive-forever-string",
        [{"name": "m", "keep_alive": "-1m"}],
        (ModelConfig("m", ("m",), keep_alive="-1m"),),
    ),
    ("think-false", [{"name": "m", "think": False}], (ModelConfig("m", ("m",), think=False),)),
    (
        "registry-names",
        [{"name": "coder", "targets": ["hf.co/org/repo:Q4_K_M", "localhost:5000/team/m:7b"]}],
        (ModelConfig("coder", ("hf.co/org/repo:Q4_K_M", "localhost:5000/team/m:7b")),),
    ),
    (
        "shared-target-same-options",
        [
            {"name": "chat", "targets": ["llama3:8b"], "num_ctx": 8192, "think": True},
            {"name": "fast", "targets": ["llama3:8b"], "num_ctx": 8192, "num_predict": 64},
        ],
        (
            ModelConfig("chat", ("llama3:8b",), num_ctx=8192, think=True),
            ModelConfig("fast", ("llama3:8b",), num_ctx=8192, num_predict=64),
        ),
    ),
    (
        "name-that-is-another-entrys-target-standing-for-itself",
        [
            {"name": "llama3", "targets": ["llama3:70b", "llama3:8b"], "num_ctx": 8192},
            {"name": "llama3:70b", "num_ctx": 8192, "min_loaded": 1},
        ],
        (
            ModelConfig("llama3", ("llama3:70b", "llama3:8b"), num_ctx=8192),
            ModelConfig("llama3:70b", ("llama3:70b",), num_ctx=8192, min_loaded=1),
        ),
    ),
]


@pytest.mark.parametrize(("entries", "expected"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_models_load_with_their_values(
    entries: list[dict[str, Any]], expected: tuple[ModelConfig, ...]
) -> None:
    assert models(*entries) == expected


def test_defaults_are_the_documented_ones() -> None:
    (m,) = models({"name": "mistral"})
    assert m.targets == ("mistral",)
    assert (m.num_ctx, m.keep_alive, m.num_predict, m.think) == (None, None, None, None)
    assert (m.min_loaded, m.truncate, m.hide_raw) == (0, False, False)


def test_example_fleet_file_has_the_issues_models() -> None:
    config = load_config(str(ROOT / "config" / "fleet.example.yaml"), env={})
    llama3, mistral = config.models
    assert (llama3.name, llama3.targets) == ("llama3", ("llama3:70b", "llama3:8b"))
    assert (llama3.num_ctx, llama3.keep_alive, llama3.hide_raw) == (8192, "30m", True)
    assert (mistral.targets, mistral.num_ctx, mistral.min_loaded) == (("mistral",), 2048, 2)
    assert config.nodes[0].max_loaded_models == 3


BAD: list[tuple[str, object, str]] = [
    ("not-a-list", {"name": "m"}, "models must be a list, got dict"),
    ("entry-not-a-mapping", ["llama3"], "models[0] must be a mapping, got str"),
    ("name-missing", [{"num_ctx": 2048}], "models[0].name is required"),
    ("name-not-a-string", [{"name": 3}], "models[0].name must be an Ollama model name"),
    ("name-with-space", [{"name": "llama 3"}], "models[0].name must be an Ollama model name"),
    (
        "name-with-prefix",
        [{"name": "ollama/llama3"}],
        "models[0].name is given without the ollama/ prefix",
    ),
    ("unknown-key", [{"name": "m", "num_gpu": 1}], "unknown key 'models[0].num_gpu'"),
    (
        "targets-empty",
        [{"name": "m", "targets": []}],
        "models[0].targets must be a non-empty list of node model names, got an empty list",
    ),
    (
        "targets-string",
        [{"name": "m", "targets": "m:7b"}],
        "models[0].targets must be a non-empty list of node model names, got str",
    ),
    (
        "target-bad",
        [{"name": "m"}, {"name": "n", "targets": ["ok", "bad name"]}],
        "models[1].targets[1] must be an Ollama model name",
    ),
    (
        "target-twice",
        [{"name": "m", "targets": ["m:7b", "M:7B"]}],
        "models[0].targets[1] 'M:7B' is listed twice",
    ),
    ("num-ctx-zero", [{"name": "m", "num_ctx": 0}], "models[0].num_ctx must be >= 1, got 0"),
    (
        "num-ctx-string",
        [{"name": "m", "num_ctx": "8k"}],
        "models[0].num_ctx must be a whole number, got str",
    ),
    (
        "num-predict-float",
        [{"name": "m", "num_predict": 1.5}],
        "models[0].num_predict must be a whole number, got float",
    ),
    (
        "min-loaded-negative",
        [{"name": "m", "min_loaded": -1}],
        "models[0].min_loaded must be >= 0, got -1",
    ),
    (
        "keep-alive-no-unit",
        [{"name": "m", "keep_alive": "300"}],
        "models[0].keep_alive must be a duration with a unit",
    ),
    (
        "keep-alive-minus-one-string",
        [{"name": "m", "keep_alive": "-1"}],
        "models[0].keep_alive must be a duration with a unit",
    ),
    (
        "keep-alive-bad-unit",
        [{"name": "m", "keep_alive": "30 minutes"}],
        "models[0].keep_alive must be a duration with a unit",
    ),
    (
        "keep-alive-negative",
        [{"name": "m", "keep_alive": -5}],
        "models[0].keep_alive must be >= 0 seconds, or -1",
    ),
    (
        "keep-alive-bool",
        [{"name": "m", "keep_alive": True}],
        "models[0].keep_alive must be a duration such as 30m, or seconds, got bool",
    ),
    (
        "think-unknown",
        [{"name": "m", "think": "extreme"}],
        "models[0].think must be true, false or one of low, medium, high, max, got 'extreme'",
    ),
    (
        "truncate-string",
        [{"name": "m", "truncate": "no"}],
        "models[0].truncate must be true or false, got str",
    ),
    (
        "duplicate-name",
        [{"name": "llama3"}, {"name": "LLAMA3:latest"}],
        "models[1].name 'LLAMA3:latest' is also models[0].name",
    ),
    (
        "shared-target-other-num-ctx",
        [
            {"name": "a", "targets": ["llama3:8b"], "num_ctx": 8192},
            {"name": "b", "targets": ["x", "llama3:8b"], "num_ctx": 4096},
        ],
        "models[1].targets[1] 'llama3:8b' is also a target of models[0] (a) "
        "with another num_ctx or keep_alive",
    ),
    (
        "shared-target-other-keep-alive",
        [{"name": "a", "targets": ["m:1"], "keep_alive": "5m"}, {"name": "b", "targets": ["m:1"]}],
        "models[1].targets[0] 'm:1' is also a target of models[0] (a)",
    ),
    (
        "name-is-another-entrys-target-but-routes-elsewhere",
        [
            {"name": "llama3", "targets": ["llama3:70b"]},
            {"name": "llama3:70b", "targets": ["llama3:70b-q4"]},
        ],
        "models[1].name 'llama3:70b' is a target of models[0] (llama3): "
        "as a name it may only stand for that node model",
    ),
]


@pytest.mark.parametrize(("section", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_entry_is_refused_with_its_key_path(section: object, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, "models": section}, "fleet.yaml", env={})
    assert expected in caught.value.message
    assert caught.value.path == "fleet.yaml"


BAD_FILE = """\
nodes: [{name: gpu-a, url: 'http://10.0.0.11:11434'}]
api_keys: [{name: team-a, sha256: %s}]
models:
  - name: llama3
    targets: [llama3:70b, llama3:8b]
  - name: mistral
    keep_alive: "300"
""" % ("a" * 64)


def test_cli_check_config_refuses_a_bad_models_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(BAD_FILE)
    assert cli.main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: models[1].keep_alive must be a duration with a unit" in err


def test_check_config_subprocess_exits_1_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(BAD_FILE)
    result = subprocess.run(
        [sys.executable, "-m", "router", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "models[1].keep_alive" in result.stderr
    assert "Traceback" not in result.stderr
