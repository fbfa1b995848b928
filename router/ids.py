"""Random ids for requests and responses (`X-Request-ID`, `chatcmpl-…`, `call_…`).

They must be unique, not secret: one generator seeded from the OS at start-up serves them all,
instead of a `getrandom()` system call for each one (two a request, issue 5).
Pure code that makes ids takes an `Ids` callable, so tests can pass a deterministic one.
"""

from __future__ import annotations

import random
from collections.abc import Callable

_GENERATOR = random.Random()  # seeded from os.urandom

Ids = Callable[[str], str]
"""Makes a new id with the given prefix, e.g. `ids("call_")`."""


def random_hex(nbytes: int) -> str:
    """`nbytes` random bytes as 2 * `nbytes` lowercase hex digits."""
    return f"{_GENERATOR.getrandbits(nbytes * 8):0{nbytes * 2}x}"


def new_id(prefix: str) -> str:
    """`prefix` and 24 random hex digits: the shape of OpenAI's ids. The default `Ids`."""
    return prefix + random_hex(12)
