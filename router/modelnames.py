"""Model names: the router's public ids (`ollama/llama3`) ⇄ Ollama's names (`llama3:latest`).

Ollama adds `:latest` when the last path part has no tag and matches case-insensitively
(api-reference.md pitfall 7), so routing keys are normalised the same way. Pure and cached:
the request path calls these once per request.
"""

from __future__ import annotations

from functools import lru_cache

PREFIX = "ollama/"
DEFAULT_TAG = ":latest"


@lru_cache(maxsize=4096)
def canonical(name: str) -> str:
    """The routing key for a name a client or a node gave: lower case, tagged, no prefix.

    `ollama/llama3` → `llama3:latest`; `LLAMA3:Latest` → `llama3:latest`; `llama3:70b` stays.
    """
    name = name.strip()
    if name[: len(PREFIX)].lower() == PREFIX:
        name = name[len(PREFIX) :]
    name = name.lower()
    if name and ":" not in name.rsplit("/", 1)[-1]:
        name += DEFAULT_TAG
    return name


@lru_cache(maxsize=4096)
def public_id(node_name: str) -> str:
    """The id `/models` shows for a node's model: `llama3:latest` → `ollama/llama3`."""
    name = canonical(node_name)
    if name.endswith(DEFAULT_TAG):
        name = name[: -len(DEFAULT_TAG)]
    return PREFIX + name
