"""Random ids for requests and responses (`X-Request-ID`, `chatcmpl-…`, `call_…`).

They must be unique, not secret: one generator seeded from the OS at start-up serves them all,
instead of a `getrandom()` system call for each one (two a request, issue 5).
"""

from __future__ import annotations

import random

_GENERATOR = random.Random()  # seeded from os.urandom


def random_hex(nbytes: int) -> str:
    """`nbytes` random bytes as 2 * `nbytes` lowercase hex digits."""
    return f"{_GENERATOR.getrandbits(nbytes * 8):0{nbytes * 2}x}"
