"""API keys: stored and compared only as SHA-256 digests.

A key is `jrv_` + 43 URL-safe random characters. The fleet file holds the key's digest, never
the key; a presented key (`Authorization: Bearer …` or, as Anthropic's SDKs send it,
`x-api-key: …`) is hashed (once per distinct header, remembered in a small bounded
cache) and its digest looked up among the configured ones. The lookup is by digest, never by
the key: a client cannot choose a digest's bytes, so how long the lookup takes tells it nothing
about any configured key (the reason a key itself is compared in constant time), and the cost
does not grow with the number of keys (`hmac.compare_digest` against each of 100 keys took
7 µs a request; `python -m benchmarks.costs`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from router.config import KEY_PREFIX, ApiKeyConfig

_BEARER = "bearer "


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# Digests of recently presented keys, so a client that sends the same key on every request is
# hashed once. Bounded: a flood of made-up keys empties it rather than growing it.
_DIGEST_CACHE = 1024


class KeyRing:
    """The configured keys; immutable (a config reload builds a new ring)."""

    __slots__ = ("_by_digest", "_digests", "_entries", "_raw_digests")

    def __init__(self, keys: Iterable[ApiKeyConfig]) -> None:
        self._entries = tuple((bytes.fromhex(k.sha256), k) for k in keys)
        self._by_digest = dict(self._entries)
        # Two caches: a header value means one key as `Authorization` and another as `x-api-key`.
        self._digests: dict[str, bytes] = {}
        self._raw_digests: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> frozenset[str]:
        return frozenset(entry.name for _, entry in self._entries)

    def authenticate(
        self, authorization: str | None, api_key: str | None = None
    ) -> ApiKeyConfig | None:
        """The key named by an `Authorization: Bearer …` header, else by an `x-api-key` header
        (the raw key, as Anthropic's SDKs send it), or None. A bearer key that is wrong is not
        rescued by another header: credentials that disagree are refused."""
        if authorization and authorization[:7].lower() == _BEARER:
            return self._match(self._presented(self._digests, authorization, 7))
        if api_key:
            return self._match(self._presented(self._raw_digests, api_key, 0))
        return None

    @staticmethod
    def _presented(cache: dict[str, bytes], header: str, start: int) -> bytes:
        """The digest of the key in `header[start:]`, remembered per header value."""
        presented = cache.get(header)
        if presented is None:
            if len(cache) >= _DIGEST_CACHE:
                cache.clear()
            # aiohttp decodes a header's bytes as UTF-8 with `surrogateescape`: the same undoes
            # it, so bytes that are not UTF-8 hash as sent (and match no key) instead of failing.
            key = header[start:].strip().encode(errors="surrogateescape")
            presented = hashlib.sha256(key).digest()
            cache[header] = presented
        return presented

    def _match(self, presented: bytes) -> ApiKeyConfig | None:
        return self._by_digest.get(presented)
