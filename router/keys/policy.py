"""A key's model allowlist and expiry, as pure functions of the key and a value.

Allowlist entries were normalised to public ids (or globs over them) when the config was read;
a model id is matched in its public form (`ollama/llama3`) and with its tag
(`ollama/llama3:latest`), so `ollama/llama3:*` allows the untagged name too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from fnmatch import fnmatchcase

from router.config import ApiKeyConfig
from router.modelnames import PREFIX, canonical, public_id


def may_use(key: ApiKeyConfig | None, model: str) -> bool:
    """Whether `key` may see and use `model` (any name form a client or node gives)."""
    if key is None or not key.models:
        return True
    names = (public_id(model), PREFIX + canonical(model))
    return any(fnmatchcase(name, pattern) for pattern in key.models for name in names)


def visible(key: ApiKeyConfig | None, models: Iterable[str]) -> list[str]:
    """The models of `models` that `key` may see, in their order."""
    return [m for m in models if may_use(key, m)]


def expired(key: ApiKeyConfig, now: float) -> bool:
    """Whether `key` has expired at wall-clock time `now` (Unix seconds)."""
    return key.expires_at is not None and now >= key.expires_at.timestamp()


def expiry_text(key: ApiKeyConfig) -> str:
    if key.expires_at is None:
        return "never"
    return key.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
