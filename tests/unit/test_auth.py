"""API keys: minted with enough randomness, stored as digests, presented as Bearer tokens."""

from __future__ import annotations

import hashlib
import re

import pytest

from router.api.auth import KeyRing, digest, new_key
from router.config import ApiKeyConfig

KEY_RE = re.compile(r"^jrv_[A-Za-z0-9_-]{32,}$")
TEAM_KEY = "jrv_" + "t" * 43
ADMIN_KEY = "jrv_" + "A" * 43
OTHER_KEY = "jrv_" + "o" * 43
TEAM = ApiKeyConfig("team", digest(TEAM_KEY))
ADMIN = ApiKeyConfig("root", digest(ADMIN_KEY), admin=True)
RING = KeyRing([TEAM, ADMIN])


def test_new_keys_have_the_documented_format() -> None:
    keys = [new_key() for _ in range(200)]
    for key in keys:
        assert KEY_RE.match(key), key
        assert len(key) - len("jrv_") >= 32
    assert len(set(keys)) == len(keys)


def test_digest_is_sha256_hex_of_the_whole_key() -> None:
    key = new_key()
    assert digest(key) == hashlib.sha256(key.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest(key))
    assert digest(key) == digest(key)


@pytest.mark.parametrize(
    "key", [new_key(), "", "jrv_x", "a" * 64], ids=["new", "empty", "short", "hex"]
)
def test_digest_never_equals_the_key(key: str) -> None:
    assert digest(key) != key


AUTH = [
    (f"Bearer {TEAM_KEY}", "team"),
    (f"bearer {TEAM_KEY}", "team"),
    (f"BEARER {TEAM_KEY}", "team"),
    (f"BeArEr {TEAM_KEY}", "team"),
    (f"Bearer {TEAM_KEY}  ", "team"),
    (f"Bearer {ADMIN_KEY}", "root"),
    (None, None),
    ("", None),
    ("Bearer", None),
    ("Bearer ", None),
    (TEAM_KEY, None),
    (f"Basic {TEAM_KEY}", None),
    (f"Token {TEAM_KEY}", None),
    (f"Bearer{TEAM_KEY}", None),
    (f"Bearer {OTHER_KEY}", None),
    (f"Bearer {TEAM_KEY}x", None),
    (f"Bearer {TEAM_KEY[:-1]}", None),
    (f"Bearer {TEAM_KEY.upper()}", None),
    # the digest from the fleet file is not a credential
    (f"Bearer {TEAM.sha256}", None),
    ("Bearer ключ", None),
]


@pytest.mark.parametrize(
    ("header", "expected"),
    AUTH,
    ids=[
        "bearer",
        "lower-case-scheme",
        "upper-case-scheme",
        "mixed-case-scheme",
        "trailing-space",
        "admin-key",
        "missing",
        "empty",
        "scheme-only",
        "scheme-and-space",
        "no-scheme",
        "basic-scheme",
        "token-scheme",
        "no-space",
        "unknown-key",
        "key-with-extra-char",
        "truncated-key",
        "key-case-changed",
        "digest-as-key",
        "non-ascii",
    ],
)
def test_authenticate(header: str | None, expected: str | None) -> None:
    found = RING.authenticate(header)
    assert (found.name if found else None) == expected


def test_authenticate_returns_the_configured_entry() -> None:
    assert RING.authenticate(f"Bearer {ADMIN_KEY}") is ADMIN
    assert RING.authenticate(f"Bearer {TEAM_KEY}") is TEAM


def test_upper_case_digest_in_a_ring_still_matches() -> None:
    ring = KeyRing([ApiKeyConfig("team", digest(TEAM_KEY).upper())])
    assert ring.authenticate(f"Bearer {TEAM_KEY}") is not None


def test_empty_ring_lets_nobody_in() -> None:
    ring = KeyRing([])
    assert len(ring) == 0
    assert ring.authenticate(f"Bearer {TEAM_KEY}") is None
    assert ring.authenticate("Bearer ") is None


def test_ring_size() -> None:
    assert len(RING) == 2


def test_a_freshly_minted_key_works_once_its_digest_is_configured() -> None:
    key = new_key()
    ring = KeyRing([ApiKeyConfig("fresh", digest(key))])
    found = ring.authenticate(f"Bearer {key}")
    assert found is not None
    assert found.name == "fresh"
    assert ring.authenticate(f"Bearer {new_key()}") is None


def test_a_key_presented_again_gets_the_same_answer_and_the_cache_stays_bounded() -> None:
    ring = KeyRing([TEAM])
    for _ in range(3):  # the second and third answers come from the remembered digest
        assert ring.authenticate(f"Bearer {TEAM_KEY}") is TEAM
        assert ring.authenticate(f"Bearer {OTHER_KEY}") is None
    for _ in range(3000):  # a flood of made-up keys
        assert ring.authenticate(f"Bearer {new_key()}") is None
    assert len(ring._digests) <= 1024
    assert ring.authenticate(f"Bearer {TEAM_KEY}") is TEAM


# `x-api-key` (Anthropic's SDKs): the raw key, no scheme. Bearer wins when it names a key.
API_KEY = [
    (None, TEAM_KEY, "team"),
    (None, f"{TEAM_KEY} ", "team"),
    (None, ADMIN_KEY, "root"),
    (None, f"Bearer {TEAM_KEY}", None),  # not a header with a scheme
    (None, "", None),
    (None, OTHER_KEY, None),
    (None, TEAM.sha256, None),
    (f"Bearer {ADMIN_KEY}", TEAM_KEY, "root"),
    (f"Bearer {OTHER_KEY}", TEAM_KEY, None),  # a wrong bearer is not rescued by x-api-key
    (f"Basic {ADMIN_KEY}", TEAM_KEY, "team"),
    (f"Bearer {TEAM_KEY}", OTHER_KEY, "team"),
]


@pytest.mark.parametrize(
    ("authorization", "api_key", "expected"),
    API_KEY,
    ids=[
        "x-api-key",
        "x-api-key-trailing-space",
        "x-api-key-admin",
        "x-api-key-with-scheme",
        "x-api-key-empty",
        "x-api-key-unknown",
        "x-api-key-digest",
        "both-bearer-wins",
        "bad-bearer-good-x-api-key",
        "basic-scheme-then-x-api-key",
        "good-bearer-bad-x-api-key",
    ],
)
def test_authenticate_with_x_api_key(
    authorization: str | None, api_key: str, expected: str | None
) -> None:
    found = RING.authenticate(authorization, api_key)
    assert (found.name if found else None) == expected


def test_the_same_text_in_either_header_is_remembered_apart() -> None:
    ring = KeyRing([TEAM])
    header = f"Bearer {TEAM_KEY}"
    assert ring.authenticate(header) is TEAM
    assert ring.authenticate(None, header) is None  # as x-api-key it is not the key
    assert ring.authenticate(None, TEAM_KEY) is TEAM
    assert ring.authenticate(TEAM_KEY) is None  # as Authorization it has no scheme
    for _ in range(3000):
        assert ring.authenticate(None, new_key()) is None
    assert len(ring._raw_digests) <= 1024


@pytest.mark.parametrize("header", ["Bearer jrv_\udcfc\udcff", "Bearer \udc80"])
def test_a_key_that_is_not_utf8_matches_nothing(header: str) -> None:
    """aiohttp hands a header's non-UTF-8 bytes over as surrogates: such a key is refused like
    any wrong key, never an error (a 500 before)."""
    key = new_key()
    ring = KeyRing([ApiKeyConfig("team", digest(key))])
    assert ring.authenticate(header) is None
    assert ring.authenticate(None, header.removeprefix("Bearer ")) is None
