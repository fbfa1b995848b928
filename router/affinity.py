"""Conversation affinity: the same conversation prefers the node that served it before.

Issue 7. Reusing a node keeps its prompt (KV) cache warm. `session_key` names the conversation:
an `X-Session-ID` header, else the OpenAI `user` field, else a digest of the leading messages
(system messages and the first user message, which every later turn repeats), else a digest of
a completion prompt's start. Digests only: a key never carries prompt text into logs.

`AffinityRing` maps a key to a node by consistent hashing with bounded loads (Mirrokni, Thorup,
Zadimoghaddam 2018, https://arxiv.org/abs/1608.01350): walk the ring clockwise from the key's
point and take the first node that would stay within `ceil(balance * (total load + 1) / n)`
and below its capacity. So affinity holds while loads are even and yields when a node is hot.
Hashes are blake2b, not `hash()`, so every replica and every restart agrees on the mapping.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from hashlib import blake2b
from typing import Any, Protocol, TypeVar

PROMPT_PREFIX_CHARS = 256
_SYSTEM_ROLES = frozenset({"system", "developer"})  # "developer" is o1-era "system"


class NodeLike(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=NodeLike)


# -- keys ------------------------------------------------------------------------------------
def session_key(
    *,
    session_id: str | None,
    user: str | None,
    messages: Sequence[Mapping[str, Any]] | None,
    prompt: str | None = None,
) -> str | None:
    """The conversation's affinity key, or None when the request names no conversation."""
    if session_id and session_id.strip():
        return f"session:{session_id.strip()}"
    if user and user.strip():
        return f"user:{user.strip()}"
    if messages:
        digest = _leading_messages_digest(messages)
        if digest is not None:
            return f"messages:{digest}"
    if prompt:
        return f"prompt:{_digest([prompt[:PROMPT_PREFIX_CHARS]])}"
    return None


def _leading_messages_digest(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """System messages up to and including the first user message: what turn 1 and every
    later turn of a chat share. None if they hold no text."""
    parts: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "user" or (isinstance(role, str) and role in _SYSTEM_ROLES):
            parts += [role, _text(message.get("content"))]
        if role == "user":
            break
    if not any(parts[1::2]):
        return None
    return _digest(parts)


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


def _digest(parts: Sequence[str]) -> str:
    hasher = blake2b(digest_size=16)
    for part in parts:  # length-prefixed, so ("ab", "c") and ("a", "bc") differ
        data = part.encode("utf-8", "surrogatepass")
        hasher.update(len(data).to_bytes(8, "big"))
        hasher.update(data)
    return hasher.hexdigest()


def _point(text: str) -> int:
    return int.from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest())


# -- the ring --------------------------------------------------------------------------------
class _Ring:
    __slots__ = ("owners", "points")

    def __init__(self, names: Sequence[str], vnodes: int) -> None:
        placed = sorted((_point(f"{name}#{i}"), name) for name in set(names) for i in range(vnodes))
        self.points = [point for point, _ in placed]
        self.owners = [name for _, name in placed]


class AffinityRing:
    """Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018)."""

    def __init__(self, *, vnodes: int = 64, balance: float = 1.25, cache_size: int = 256) -> None:
        if vnodes < 1:
            raise ValueError(f"vnodes must be >= 1, got {vnodes}")
        if balance < 1.0:
            raise ValueError(f"balance must be >= 1.0, got {balance}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self._vnodes, self._balance, self._cache_size = vnodes, balance, cache_size
        self._rings: OrderedDict[tuple[str, ...], _Ring] = OrderedDict()

    @property
    def cached_rings(self) -> int:
        return len(self._rings)

    def pick(
        self,
        key: str,
        candidates: Sequence[N],
        *,
        load: Callable[[N], float],
        capacity: Callable[[N], int],
        exclude: Collection[str] = (),
    ) -> N | None:
        """The key's node, or None if none can take it within the bound (the caller then
        falls back to its usual choice). `load` counts requests on the node now, before this
        one; `capacity` is how many it may run at once."""
        by_name = {node.name: node for node in candidates if node.name not in exclude}
        if not by_name:
            return None
        loads = {name: load(node) for name, node in by_name.items()}
        bound = math.ceil(self._balance * (sum(loads.values()) + 1) / len(by_name))
        ring = self._ring(tuple(node.name for node in candidates))
        seen: set[str] = set()
        start = bisect_right(ring.points, _point(key))
        size = len(ring.owners)
        for step in range(size):
            name = ring.owners[(start + step) % size]
            if name in seen or name not in by_name:
                continue
            seen.add(name)
            node = by_name[name]
            if loads[name] + 1 <= bound and loads[name] + 1 <= capacity(node):
                return node
            if len(seen) == len(by_name):
                break
        return None

    def _ring(self, names: tuple[str, ...]) -> _Ring:
        ring = self._rings.get(names)
        if ring is not None:
            self._rings.move_to_end(names)
            return ring
        ring = self._rings[names] = _Ring(names, self._vnodes)
        if len(self._rings) > self._cache_size:
            self._rings.popitem(last=False)
        return ring
