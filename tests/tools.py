"""System tools the tests run (redis-server, promtool, chromium, wrk, nginx): found, or a loud
fail or skip carrying scripts/system-deps' own line, the one `make test` prints.

A missing tool fails the test where it could have been installed (root with apt-get: `make test`
would have) and under `CI=true`; elsewhere it skips with the line, which `-ra` lists at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_DEPS = ROOT / "scripts" / "system-deps"


def find(tool: str) -> str | None:
    """On PATH, or in /usr/sbin (nginx), which a non-root PATH leaves out."""
    found = shutil.which(tool)
    if found is None and Path("/usr/sbin", tool).is_file():
        found = str(Path("/usr/sbin", tool))
    return found


def hint() -> str:
    """scripts/system-deps' line: what is missing and what to run."""
    done = subprocess.run(
        [str(SYSTEM_DEPS), "--hint"], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def could_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def require(tool: str) -> str:
    """The tool's path; without it, fail or skip (see the module docstring)."""
    found = find(tool)
    if found is not None:
        return found
    reason = hint() or f"system-deps: missing {tool}"
    if os.environ.get("CI") == "true" or could_install():
        pytest.fail(reason)
    pytest.skip(reason)
