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
import random
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from hashlib import blake2b
from typing import Any, Protocol, TypeVar

from router.routing.choose import SAMPLE_ABOVE

PROMPT_PREFIX_CHARS = 256
SAMPLE_SIZE = 16  # candidates the mean load is taken over, above SAMPLE_ABOVE
_SYSTEM_ROLES = frozenset({"system", "developer"})  # "developer" is o1-era "system"


class NodeLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def load(self) -> int:
        """Requests on the node now, before this one."""

    @property
    def capacity(self) -> int:
        """How many requests it may run at once."""


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

    def __init__(
        self,
        *,
        vnodes: int = 64,
        balance: float = 1.25,
        cache_size: int = 256,
        remember: int = 65_536,
    ) -> None:
        if vnodes < 1:
            raise ValueError(f"vnodes must be >= 1, got {vnodes}")
        if balance < 1.0:
            raise ValueError(f"balance must be >= 1.0, got {balance}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        if remember < 1:
            raise ValueError(f"remember must be >= 1, got {remember}")
        self._remember = remember
        # conversation key → the node its last turn went to, least recently used first
        self._last: OrderedDict[str, str] = OrderedDict()
        self._vnodes, self._balance, self._cache_size = vnodes, balance, cache_size
        self._rings: OrderedDict[tuple[str, ...], _Ring] = OrderedDict()
        # id(candidate list) → (the list, kept so its id stays its own, ring, name → node)
        self._by_list: dict[int, tuple[Sequence[Any], _Ring, dict[str, Any]]] = {}

    @property
    def cached_rings(self) -> int:
        return len(self._rings)

    def pick(
        self,
        key: str,
        candidates: Sequence[N],
        *,
        exclude: Collection[str] = (),
        rng: random.Random | None = None,
    ) -> N | None:
        """The key's node, or None if none can take it within the bound (the caller then
        falls back to its usual choice). Above `SAMPLE_ABOVE` candidates the mean load comes
        from `SAMPLE_SIZE` of them drawn with `rng`, so a pick costs the same in any fleet."""
        ring, by_name = self._lookup(candidates)
        bound, live = self._bound(candidates, exclude, rng)
        if not live:
            return None
        seen: set[str] = set()
        start = bisect_right(ring.points, _point(key))
        size = len(ring.owners)
        for step in range(size):
            name = ring.owners[(start + step) % size]
            if name in seen or name in exclude:
                continue
            seen.add(name)
            node = by_name[name]
            used = node.load + 1
            if used <= bound and used <= node.capacity:
                return node
            if len(seen) >= live:
                break
        return None

    def last(
        self,
        key: str,
        candidates: Sequence[N],
        *,
        exclude: Collection[str] = (),
        rng: random.Random | None = None,
    ) -> N | None:
        """The node the conversation's last turn went to (its prompt cache is there), if it
        is still a candidate within the bounded load; full or not: the caller weighs waiting
        for it. Many conversations with the same key (no session id, the same opening) so
        never pile onto one node."""
        name = self._last.get(key)
        if name is None or name in exclude:
            return None
        node = self._lookup(candidates)[1].get(name)
        if node is None:
            return None
        bound, live = self._bound(candidates, exclude, rng)
        return node if live and node.load + 1 <= bound else None

    def _bound(
        self, candidates: Sequence[N], exclude: Collection[str], rng: random.Random | None
    ) -> tuple[int, int]:
        """(the most requests a node may hold with this one, the candidates not excluded)."""
        if rng is not None and len(candidates) > SAMPLE_ABOVE:
            live = len(candidates) - len(exclude)
            if live <= 0:
                return 0, 0
            sample = rng.sample(candidates, SAMPLE_SIZE)
            mean = sum(node.load for node in sample) / len(sample)
            return math.ceil(self._balance * (mean + 1 / live)), live
        loads = [node.load for node in candidates if node.name not in exclude]
        if not loads:
            return 0, 0
        return math.ceil(self._balance * (sum(loads) + 1) / len(loads)), len(loads)

    def remember(self, key: str, node: str) -> None:
        """The conversation's turn went to `node`."""
        last = self._last
        if last.get(key) != node:
            last[key] = node
        last.move_to_end(key)
        if len(last) > self._remember:
            last.popitem(last=False)

    def _lookup(self, candidates: Sequence[N]) -> tuple[_Ring, dict[str, N]]:
        """The ring and name index of a candidate list; the fleet hands out the same list
        object until its membership changes, so most requests find it by identity."""
        entry = self._by_list.get(id(candidates))
        if entry is not None and entry[0] is candidates:
            return entry[1], entry[2]
        by_name = {node.name: node for node in candidates}
        ring = self._ring(tuple(by_name))
        self._by_list[id(candidates)] = (candidates, ring, by_name)
        if len(self._by_list) > self._cache_size:
            del self._by_list[next(iter(self._by_list))]
        return ring, by_name

    def _ring(self, names: tuple[str, ...]) -> _Ring:
        ring = self._rings.get(names)
        if ring is not None:
            self._rings.move_to_end(names)
            return ring
        ring = self._rings[names] = _Ring(names, self._vnodes)
        if len(self._rings) > self._cache_size:
            self._rings.popitem(last=False)
        return ring
