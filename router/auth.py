"""API keys: stored and compared only as SHA-256 digests.

A key is `jrv_` + 43 URL-safe random characters. The fleet file holds the key's digest, never
the key; a presented key is hashed and compared against every configured digest with
`hmac.compare_digest`, so the time taken does not depend on which key (if any) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from router.config import ApiKeyConfig

KEY_PREFIX = "jrv_"
_BEARER = "bearer "


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The configured keys; immutable (a config reload builds a new ring)."""

    __slots__ = ("_entries",)

    def __init__(self, keys: Iterable[ApiKeyConfig]) -> None:
        self._entries = tuple((bytes.fromhex(k.sha256), k) for k in keys)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, authorization: str | None) -> ApiKeyConfig | None:
        """The key named by an `Authorization: Bearer …` header, or None."""
        if not authorization or authorization[:7].lower() != _BEARER:
            return None
        presented = hashlib.sha256(authorization[7:].strip().encode()).digest()
        found: ApiKeyConfig | None = None
        for stored, entry in self._entries:  # no early exit: constant time over the ring
            if hmac.compare_digest(stored, presented):
                found = entry
        return found
