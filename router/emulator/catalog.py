"""Installed models: name normalisation and the static facts `/api/tags` and `/api/ps` show.

Pure. Names follow Ollama's `types/model/name.go`: `[host/][namespace/]model[:tag]`, default tag
`latest`, default host/namespace dropped for display, compared case-insensitively.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

_DEFAULT_PREFIXES = ("registry.ollama.ai/library/", "registry.ollama.ai/", "library/")
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"
_VALID = re.compile(rf"^(?:[A-Za-z0-9_.-]+(?::\d+)?/)?(?:{_PART}/)?{_PART}(?::{_PART})?$")
_PARAMS = re.compile(r"(\d+(?:\.\d+)?)b\b")
# 2025-06-01T12:00:00Z: fixed so every node lists the same modified_at for the same model.
_BASE_MODIFIED_NS = 1_748_779_200 * 1_000_000_000
CAPABILITIES = ("completion", "tools", "insert")
CONTEXT_LENGTH = 131072
LOADED_CONTEXT_LENGTH = 4096


def display_name(name: str) -> str:
    """`LLama3` → `llama3:latest`; `library/x:7b` → `x:7b` (the key models are stored under)."""
    key = name.strip().lower()
    for prefix in _DEFAULT_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    if ":" not in key.rsplit("/", 1)[-1]:
        key += ":latest"
    return key


def is_valid_name(name: str) -> bool:
    return _VALID.match(name) is not None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    digest: str
    size: int
    modified_at_ns: int
    details: dict[str, Any]

    def tags_entry(self, modified_at: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": modified_at,
            "size": self.size,
            "digest": self.digest,
            "details": {
                **self.details,
                "context_length": CONTEXT_LENGTH,
                "embedding_length": 4096,
            },
            "capabilities": list(CAPABILITIES),
        }

    def ps_entry(self, expires_at: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "size": self.size,
            "digest": self.digest,
            "details": dict(self.details),
            "expires_at": expires_at,
            "size_vram": self.size,
            "context_length": LOADED_CONTEXT_LENGTH,
        }


def _model_info(name: str, index: int) -> ModelInfo:
    digest = hashlib.sha256(name.encode()).hexdigest()
    base = name.rsplit("/", 1)[-1].split(":", 1)[0]
    family = re.sub(r"[^a-z].*$", "", base) or "llama"
    match = _PARAMS.search(name.rsplit(":", 1)[-1])
    billions = float(match.group(1)) if match else 8.0
    details = {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": f"{billions:.1f}B",
        "quantization_level": "Q4_K_M",
    }
    # Config order is listing order: each later model is one hour older.
    modified = _BASE_MODIFIED_NS - index * 3_600_000_000_000 + int(digest[:6], 16)
    return ModelInfo(name, digest, int(billions * 600_000_000), modified, details)


def build_catalog(models: tuple[str, ...]) -> dict[str, ModelInfo]:
    """Display name → info, de-duplicated, in config order."""
    catalog: dict[str, ModelInfo] = {}
    for name in models:
        key = display_name(name)
        if key not in catalog:
            catalog[key] = _model_info(key, len(catalog))
    return catalog
