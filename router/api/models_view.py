"""The `/models` entries: OpenAI's fields, plus what the catalog knows (issue #15).

OpenAI's `id`, `object`, `created` and `owned_by` keep their meaning. Extra fields, read by
tools such as Open WebUI: `context_length` (the context the router runs the model at: its
`num_ctx`, capped at the model's trained context; else a context a node has it loaded at;
absent when nothing says), `capabilities` (`/api/show`'s: completion, tools, vision,
embedding, thinking, ...) and, for a catalog name, `targets` (the node models behind it, most
preferred first). Facts come from `catalog.facts`, asked lazily once per node and model.
"""

from __future__ import annotations

import asyncio
from typing import Any

from router.api.state import RouterState
from router.catalog.entries import Entry, first_served
from router.catalog.facts import UNKNOWN, ModelFacts
from router.config import ApiKeyConfig
from router.keys.policy import may_use
from router.modelnames import canonical, public_id


async def _facts(state: RouterState, model: str) -> ModelFacts:
    """The first healthy node's facts of a node model."""
    for node in state.fleet.candidates(model):
        return await state.facts.get(node, model)
    return UNKNOWN


def _context(state: RouterState, entry: Entry, target: str, facts: ModelFacts) -> int | None:
    if entry.num_ctx is not None:
        trained = facts.trained_ctx
        return min(entry.num_ctx, trained) if trained else entry.num_ctx
    for node in state.fleet.candidates(target):
        ctx = node.contexts.get(target)
        if ctx:
            return ctx
    return None


async def model_object(state: RouterState, entry: Entry, created: int) -> dict[str, Any]:
    served = state.fleet.served_models()
    target = first_served(entry, served) or entry.targets[0]
    facts = await _facts(state, target)
    out: dict[str, Any] = {
        "id": entry.public_id,
        "object": "model",
        "created": created,
        "owned_by": "ollama",
    }
    ctx = _context(state, entry, target, facts)
    if ctx is not None:
        out["context_length"] = ctx
    if facts.capabilities:
        out["capabilities"] = list(facts.capabilities)
    if entry.alias:
        out["targets"] = [public_id(t) for t in entry.targets]
    return out


def visible(state: RouterState, key: ApiKeyConfig | None) -> list[tuple[Entry, int]]:
    """(entry, created) of every public model `key` may see, sorted by id."""
    pairs = state.catalog.public_models(state.fleet.served_models())
    out = []
    for pid, created in pairs:
        entry = state.catalog.resolve(canonical(pid))
        if may_use(key, entry.name):
            out.append((entry, created))
    return out


async def model_list(state: RouterState, key: ApiKeyConfig | None) -> list[dict[str, Any]]:
    # Facts not cached yet are asked of the nodes at once (each bounded by its timeout).
    return list(await asyncio.gather(*(model_object(state, e, c) for e, c in visible(state, key))))


def find(state: RouterState, key: ApiKeyConfig | None, requested: str) -> tuple[Entry, int] | None:
    """The entry a client's id names and its created time, if some healthy node serves it
    and `key` may use it (a `hide_raw` target too: hidden from the list only)."""
    entry = state.catalog.resolve(canonical(requested))
    served = state.fleet.served_models()
    target = first_served(entry, served)
    if target is None or not may_use(key, entry.name):
        return None
    return entry, served[target]
