"""Static checks of deploy/Dockerfile and .dockerignore: no Docker engine needed.

The image itself is not built here (no engine on CI); these hold the properties the
deployment relies on: a pinned base, a numeric non-root user that matches the pod's runAsUser,
exec-form ENTRYPOINT/CMD so SIGTERM reaches the router, a HEALTHCHECK, and a build context
that can carry no secret.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from tests.deploy.support import DEPLOY, ROOT, base_deployment, project_version

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SECRETISH = re.compile(r"(^|/)(\.env[^/]*|.*\.pem|.*\.key|id_[a-z0-9]+|.*secret.*|.*api-keys.*)$")


def parse(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuations joined, comments and blank lines dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


INSTRUCTIONS = parse(DOCKERFILE.read_text())


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in INSTRUCTIONS:
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


FINAL = stages()[-1]


def final(word: str) -> list[str]:
    return [args for w, args in FINAL if w == word]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form (a JSON array): {args}"
    return [str(v) for v in value]


def from_images() -> list[str]:
    names = {shlex.split(args)[-1] for w, args in INSTRUCTIONS if w == "FROM" and " AS " in args}
    images = [shlex.split(args)[0] for w, args in INSTRUCTIONS if w == "FROM"]
    return [image for image in images if image not in names]


def test_base_images_are_pinned_by_full_version_tag() -> None:
    images = from_images()
    assert images
    for image in images:
        name, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{image}: pin a tag"
        assert re.match(r"^\d+\.\d+\.\d+-slim-", tag), f"{image}: want python:X.Y.Z-slim-<debian>"
        assert "@" not in name
    # Wheels built in the builder must install in the runtime stage: same interpreter.
    assert len(set(images)) == 1, images


def test_final_stage_runs_as_the_pods_numeric_non_root_user() -> None:
    users = final("USER")
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER must be numeric (runAsNonRoot checks it)"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    pod = base_deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["containers"][0]["securityContext"]["runAsUser"] == int(uid)


def test_entrypoint_and_cmd_are_exec_form_and_match_the_pod() -> None:
    (entrypoint,) = final("ENTRYPOINT")
    (cmd,) = final("CMD")
    assert exec_form(entrypoint) == ["jarvis-router"]
    args = exec_form(cmd)
    assert args == ["serve", "--config", "/etc/jarvis/fleet.yaml"]
    container = base_deployment()["spec"]["template"]["spec"]["containers"][0]
    assert container.get("args", args) == args
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert args[-1] in mounts


def test_healthcheck_probes_healthz_without_curl() -> None:
    checks = final("HEALTHCHECK")
    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    assert "--timeout=" in options
    argv = exec_form(command)
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request" in argv[2] and "/healthz" in argv[2]


def test_exposes_the_router_port() -> None:
    assert "8080" in " ".join(final("EXPOSE")).split()


def env_vars(stage: list[tuple[str, str]]) -> dict[str, str]:
    result: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                result[key] = value
    return result


def test_python_needs_no_writable_root_filesystem() -> None:
    env = env_vars(FINAL)
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"


def test_installs_the_project_wheel_with_the_fast_and_coordination_extras() -> None:
    builder_runs = " ".join(args for stage in stages()[:-1] for w, args in stage if w == "RUN")
    assert "pip wheel" in builder_runs
    runtime_runs = " ".join(final("RUN"))
    assert "--no-index" in runtime_runs
    assert '"jarvis-router[fast,coordination]==${VERSION}"' in runtime_runs


def test_oci_labels_name_the_project_version() -> None:
    labels: dict[str, str] = {}
    for args in final("LABEL"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            labels[key] = value
    for key in ("title", "description", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{key}" in labels, key
    build_args = dict(a.partition("=")[::2] for a in final("ARG"))
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert build_args["VERSION"] == project_version()


def copy_sources() -> list[str]:
    """Build-context sources of COPY/ADD (not --from=stage ones)."""
    sources: list[str] = []
    for word, args in INSTRUCTIONS:
        if word in ("COPY", "ADD"):
            parts = shlex.split(args)
            if any(p.startswith("--from=") for p in parts):
                continue
            sources += [p for p in parts if not p.startswith("--")][:-1]
    return sources


def test_copies_nothing_secret_and_adds_nothing() -> None:
    assert not [w for w, _ in INSTRUCTIONS if w == "ADD"], "use COPY; ADD fetches and unpacks"
    sources = copy_sources()
    assert sources
    for source in sources:
        assert source not in (".", "./"), "copy named paths, not the whole context"
        assert not SECRETISH.search(source.rstrip("/")), source


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule (moby/patternmatcher): the last pattern matching the path or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:].strip() if negate else raw
        if negate != excluded:
            continue
        regex = _glob_regex(pattern.strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore() -> list[str]:
    assert DOCKERIGNORE.exists(), ".dockerignore at the project root (the build context)"
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".venv-deploy/bin/kubectl",
        ".env",
        "tests/conftest.py",
        "benchmarks/out/run.json",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        "deploy/kubernetes/overlays/production/api-keys.yaml",
        "router/__pycache__/app.cpython-311.pyc",
        "router/.env",
        "router/tls.key",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert dockerignore_excludes(path, dockerignore())


def test_dockerignore_lets_in_every_copied_source() -> None:
    patterns = dockerignore()
    for source in copy_sources():
        assert (ROOT / source).exists(), f"COPY {source}: not in the project"
        files = (
            [source]
            if (ROOT / source).is_file()
            else [str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*.py")]
        )
        assert files
        for file in files:
            if "__pycache__" not in file:
                assert not dockerignore_excludes(file, patterns), (
                    f"{file} is kept out of the context"
                )


@pytest.mark.parametrize(
    ("path", "patterns", "excluded"),
    [
        ("a/b.py", ["*"], True),
        ("a/b.py", ["*", "!a/"], False),
        ("a/__pycache__/c.pyc", ["*", "!a/", "**/__pycache__"], True),
        ("a/b.py", ["**/*.py"], True),
        ("b.py", ["**/*.py"], True),
        ("x/.env", ["**/.env"], True),
        ("keep.txt", ["*.md"], False),
    ],
    ids=[
        "star-parent",
        "negated",
        "double-star-dir",
        "double-star-deep",
        "double-star-top",
        "dotfile",
        "no-match",
    ],
)
def test_dockerignore_matcher(path: str, patterns: list[str], excluded: bool) -> None:
    """The matcher above, against Docker's documented behaviour."""
    assert dockerignore_excludes(path, patterns) is excluded
