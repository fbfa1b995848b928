"""API keys: stored and compared only as SHA-256 digests.

A key is `jrv_` + 43 URL-safe random characters. The fleet file holds the key's digest, never
the key; a presented key is hashed (once per distinct header, remembered in a small bounded
cache) and compared against every configured digest with `hmac.compare_digest`, so the time
taken does not depend on which key (if any) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from router.config import KEY_PREFIX, ApiKeyConfig

_BEARER = "bearer "


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# Digests of recently presented keys, so a client that sends the same key on every request is
# hashed once; the comparison with the configured digests stays constant-time. Bounded: a flood
# of made-up keys empties it rather than growing it.
_DIGEST_CACHE = 1024


class KeyRing:
    """The configured keys; immutable (a config reload builds a new ring)."""

    __slots__ = ("_digests", "_entries")

    def __init__(self, keys: Iterable[ApiKeyConfig]) -> None:
        self._entries = tuple((bytes.fromhex(k.sha256), k) for k in keys)
        self._digests: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> frozenset[str]:
        return frozenset(entry.name for _, entry in self._entries)

    def authenticate(self, authorization: str | None) -> ApiKeyConfig | None:
        """The key named by an `Authorization: Bearer …` header, or None."""
        if not authorization or authorization[:7].lower() != _BEARER:
            return None
        presented = self._digests.get(authorization)
        if presented is None:
            if len(self._digests) >= _DIGEST_CACHE:
                self._digests.clear()
            presented = hashlib.sha256(authorization[7:].strip().encode()).digest()
            self._digests[authorization] = presented
        found: ApiKeyConfig | None = None
        for stored, entry in self._entries:  # no early exit: constant time over the ring
            if hmac.compare_digest(stored, presented):
                found = entry
        return found
