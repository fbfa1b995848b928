"""Paths and readers shared by the deployment tests; fixtures live in conftest.py."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_check", DEPLOY / "check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _load_check()
TREES: dict[str, Path] = check.kustomize_trees()


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def base_deployment() -> dict[str, Any]:
    """The base Deployment as written (no render needed)."""
    loaded: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "kubernetes" / "base" / "deployment.yaml").read_text()
    )
    return loaded


def fleet_source(tree: str) -> Path:
    """The fleet file a tree puts into its ConfigMap: its own, else the base's."""
    own = TREES[tree] / "fleet.yaml"
    return own if own.exists() else TREES["base"] / "fleet.yaml"


def keys_source(tree: str) -> Path:
    own = TREES[tree] / "api-keys.yaml"
    return own if own.exists() else TREES["base"] / "api-keys.yaml"


class Render:
    """One rendered tree, with lookups by kind."""

    def __init__(self, name: str, objects: list[dict[str, Any]]) -> None:
        self.name, self.objects = name, objects

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.all(kind)
        assert len(found) == 1, f"{self.name}: expected one {kind}, found {len(found)}"
        return found[0]

    @property
    def pod(self) -> dict[str, Any]:
        """The Deployment's pod template."""
        template: dict[str, Any] = self.one("Deployment")["spec"]["template"]
        return template

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["spec"]["containers"]
        assert len(containers) == 1
        return dict(containers[0])
