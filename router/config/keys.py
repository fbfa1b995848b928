"""The `api_keys` section and the keys file (`api_keys_file`, e.g. a mounted Kubernetes Secret).

A key entry holds the key's SHA-256 digest, never the key: an entry that holds a plaintext key
(a `key:` field, or a `sha256` that starts with `jrv_`) is refused, and no message repeats what
the entry held. Policy per key: `models` (ids and globs, normalised to public ids here, so the
request path compares strings), `rpm`, `tpm`, `max_concurrency`, `expires_at`, `admin`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time

from router.config.model import KEY_PREFIX, ApiKeyConfig
from router.config.sections import _NAME_RE
from router.config.validate import ConfigError, Section, kind, read, read_yaml
from router.modelnames import PREFIX, public_id

KEYS_FILE_ENV = "JARVIS_API_KEYS_FILE"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_GLOB_CHARS = frozenset("*?[")
# Fields people put a plaintext key in; refused by name, never echoed.
_PLAINTEXT_FIELDS = ("key", "api_key", "secret", "token")
_PLAINTEXT_HINT = (
    "store only the key's SHA-256 digest in `sha256` "
    "(`jarvis-router keys new NAME` prints the key once and the entry to paste)"
)


def api_keys(
    root: Section, env: Mapping[str, str], *, require_file: bool = True
) -> tuple[list[ApiKeyConfig], str | None, bool]:
    """The keys listed in the file, then those of the keys file (`api_keys_file`, which
    `JARVIS_API_KEYS_FILE` overrides); that file's path; and whether it was absent (only
    allowed with `require_file=False`, as in CI before the Secret is mounted)."""
    keys = [read(item, api_key) for item in root.items("api_keys")]
    keys_file = root.raw("api_keys_file")
    if keys_file is not None and (not isinstance(keys_file, str) or not keys_file):
        raise root.fail("api_keys_file", f"must be a file path, got {kind(keys_file)}")
    if keys_file:  # relative to the fleet file, like an include; the env var to the cwd
        keys_file = os.path.join(os.path.dirname(root.file), keys_file)
    keys_file = env.get(KEYS_FILE_ENV) or keys_file or None
    missing = False
    if keys_file is not None:
        if not require_file and not os.path.exists(keys_file):
            missing = True
        else:
            keys.extend(load_keys_file(keys_file))
    return keys, keys_file, missing


def load_keys_file(path: str) -> tuple[ApiKeyConfig, ...]:
    """A keys file holds a list of key entries (or a mapping with `api_keys:`)."""
    return parse_keys(read_yaml(path), path)


def parse_keys(data: object, path: str) -> tuple[ApiKeyConfig, ...]:
    if isinstance(data, Mapping):
        root = Section(path, data, "")
        keys = [read(item, api_key) for item in root.items("api_keys")]
        root.done()
    elif isinstance(data, list):
        keys = [read(Section(path, item, f"[{i}]"), api_key) for i, item in enumerate(data)]
    else:
        raise ConfigError(path, f"must be a list of API keys, got {kind(data)}")
    return tuple(keys)


def api_key(s: Section) -> ApiKeyConfig:
    for field in _PLAINTEXT_FIELDS:
        if s.raw(field) is not None:
            raise s.fail(field, f"holds a plaintext API key: {_PLAINTEXT_HINT}")
    given = s.raw("sha256")
    if isinstance(given, str) and given.strip().startswith(KEY_PREFIX):
        raise s.fail("sha256", f"holds a plaintext API key ({KEY_PREFIX}...): {_PLAINTEXT_HINT}")
    digest = s.string("sha256").lower()
    if not _SHA256_RE.match(digest):
        raise s.fail("sha256", "must be 64 hex characters (the SHA-256 of the whole key)")
    return ApiKeyConfig(
        name=s.string("name", pattern=_NAME_RE),
        sha256=digest,
        admin=s.boolean("admin", False),
        models=_models(s),
        rpm=_limit(s, "rpm"),
        tpm=_limit(s, "tpm"),
        max_concurrency=_limit(s, "max_concurrency"),
        expires_at=_expires_at(s),
    )


def _limit(s: Section, name: str) -> int | None:
    return None if s.raw(name) is None else s.integer(name, 0, minimum=1, maximum=10**12)


def model_pattern(entry: str) -> str:
    """An allowlist entry as the public id (or glob over public ids) it means:
    `llama3` and `ollama/llama3:latest` → `ollama/llama3`; `llama3*` → `ollama/llama3*`."""
    entry = entry.strip().lower()
    if not _GLOB_CHARS.intersection(entry):
        return public_id(entry)
    return entry if entry.startswith(PREFIX) else PREFIX + entry


def _models(s: Section) -> tuple[str, ...]:
    value = s.raw("models")
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise s.fail("models", f"must be a non-empty list of model ids or globs, got {kind(value)}")
    for i, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip():
            raise s.fail(f"models[{i}]", f"must be a model id or glob, got {kind(entry)}")
    return tuple(dict.fromkeys(model_pattern(e) for e in value))


def _expires_at(s: Section) -> datetime | None:
    value = s.raw("expires_at")
    if value is None:
        return None
    when: datetime | None = None
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp itself
        when = value
    elif isinstance(value, date):  # a day alone: the key expires as that day starts (UTC)
        when = datetime.combine(value, time(), UTC)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            when = None
    if when is None or when.tzinfo is None:
        raise s.fail(
            "expires_at",
            "must be an RFC 3339 time with a UTC offset, e.g. 2027-01-31T00:00:00Z",
        )
    return when.astimezone(UTC)
