"""What a node says of a model (`/api/show`): its capabilities and trained context, cached
per node and model (issue #15).

Read for `/models` (extra fields tools such as Open WebUI show) and by the warm pool (an
embedding model is loaded through `/api/embed`). Fetched lazily, at most once per node, model
and listing: a model the node lists anew (pulled again) is asked anew; a failure again after
`RETRY_S`. The
node is reached through `Show`, handed in by the app (the upstream client).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from router.fleet.registry import NodeState

log = logging.getLogger(__name__)
SHOW_TIMEOUT_S = 5.0
RETRY_S = 60.0  # a node that could not say is asked again after this
# Ollama's capability values, as OpenAI-style tools read them (api-reference 1.3).
KNOWN = ("completion", "tools", "insert", "vision", "embedding", "thinking", "image", "audio")


class Show(Protocol):
    async def show(self, node: NodeState, model: str, timeout_s: float) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ModelFacts:
    capabilities: tuple[str, ...] = ()
    trained_ctx: int | None = None  # `model_info["<arch>.context_length"]`

    @property
    def embedding(self) -> bool:
        return "embedding" in self.capabilities and "completion" not in self.capabilities


UNKNOWN = ModelFacts()


def parse_show(body: Mapping[str, Any]) -> ModelFacts:
    caps = body.get("capabilities")
    capabilities = tuple(c for c in caps if isinstance(c, str)) if isinstance(caps, list) else ()
    info = body.get("model_info")
    trained = None
    if isinstance(info, dict):
        for key, value in info.items():
            if key.endswith(".context_length") and isinstance(value, int) and value > 0:
                trained = value
                break
    return ModelFacts(capabilities, trained)


class Facts:
    """`await facts.get(node, model)`: the node's facts of a model it lists (UNKNOWN if it
    cannot say)."""

    def __init__(self, show: Show, *, failure: type[Exception], clock: Callable[[], float]) -> None:
        """`failure`: what `show` raises when the node cannot answer (anything else is a bug)."""
        self._show, self._failure, self._clock = show, failure, clock
        # (node, model) → (the node's model listing it was asked under, its facts, until when)
        self._cache: dict[tuple[str, str], tuple[int, ModelFacts, float]] = {}

    def cached(self, node: NodeState, model: str) -> ModelFacts | None:
        found = self._cache.get((node.name, model))
        if found is None or found[0] != node.models.get(model) or found[2] < self._clock():
            return None
        return found[1]

    async def get(self, node: NodeState, model: str) -> ModelFacts:
        found = self.cached(node, model)
        if found is not None:
            return found
        created = node.models.get(model, -1)
        until = float("inf")
        try:
            facts = parse_show(await self._show.show(node, model, SHOW_TIMEOUT_S))
        except self._failure as exc:
            # Remembered for a while: a node without /api/show must not cost every /models a
            # timeout, and a passing failure must not hide the facts for good.
            log.debug("node %s: /api/show %s failed: %s", node.name, model, exc)
            facts, until = UNKNOWN, self._clock() + RETRY_S
        # Keyed by the listing's `modified_at`: a model pulled again is asked again.
        self._cache[(node.name, model)] = (created, facts, until)
        return facts

    def forget(self, node: str) -> None:
        """A node's models changed (a pull): ask again."""
        for key in [k for k in self._cache if k[0] == node]:
            del self._cache[key]
