"""The fleet and API-key files that the ConfigMap and Secret are generated from.

`check-config` runs them through the router's own validation, with JARVIS_API_KEYS_FILE standing
in for the Secret mounted in the pod. The other checks tie the files to deployment.yaml.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import ROOT, TREES, base_deployment, fleet_source, keys_source

KEYS_PATH = "/etc/jarvis/keys/api-keys.yaml"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def check_config(fleet: Path, keys: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JARVIS_API_KEYS_FILE": str(keys)}
    return subprocess.run(
        [sys.executable, "-m", "router", "check-config", str(fleet)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("tree", sorted(TREES))
def test_fleet_file_passes_check_config(tree: str) -> None:
    result = check_config(fleet_source(tree), keys_source(tree))
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_config_would_catch_a_bad_key(tmp_path: Path) -> None:
    """The check above is not vacuous: a typo in the fleet file fails it, naming the key."""
    fleet = load(fleet_source("base"))
    fleet["routing"]["max_attemps"] = 3
    bad = tmp_path / "fleet.yaml"
    bad.write_text(yaml.safe_dump(fleet))
    result = check_config(bad, keys_source("base"))
    assert result.returncode == 1
    assert "routing.max_attemps" in result.stdout + result.stderr


@pytest.mark.parametrize("tree", sorted(TREES))
def test_keys_come_from_the_secret_not_the_configmap(tree: str) -> None:
    fleet = load(fleet_source(tree))
    assert fleet["api_keys_file"] == KEYS_PATH
    assert not fleet.get("api_keys"), "inline keys would land in the ConfigMap"


@pytest.mark.parametrize("tree", sorted(TREES))
def test_keys_file_holds_digests_only(tree: str) -> None:
    entries = load(keys_source(tree))
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert set(entry) <= {"name", "sha256", "admin"}, entry
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), entry["name"]


@pytest.mark.parametrize("tree", sorted(TREES))
def test_kubelet_waits_longer_than_the_router_drains(tree: str) -> None:
    """The kubelet's SIGKILL must not cut a stream the router would still let finish."""
    fleet = load(fleet_source(tree))
    pod = base_deployment()["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = fleet["server"]["shutdown_grace_s"]
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + grace + 10
    # A request that runs up to the timeout can finish inside the drain.
    assert grace >= fleet["routing"]["request_timeout_s"]


@pytest.mark.parametrize("tree", sorted(TREES))
def test_fleet_listens_where_the_pod_expects(tree: str) -> None:
    fleet = load(fleet_source(tree))
    container = base_deployment()["spec"]["template"]["spec"]["containers"][0]
    assert fleet["listen"] == {"host": "0.0.0.0", "port": container["ports"][0]["containerPort"]}
