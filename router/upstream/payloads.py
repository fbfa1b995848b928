"""A request's payload per node model: built the first time a node of that target is tried.

A catalog entry routes to several node models (issue #15); the payload's `model` field is the
chosen target's, and every payload carries the entry's options (`router.wire.options`). The
handler hands `Payloads` instead of bytes; a generation asks it for the lease's target.
"""

from __future__ import annotations

from collections.abc import Callable

from router.catalog.entries import Entry
from router.wire.options import Overrides

Build = Callable[[str, Overrides], bytes]


class Payloads:
    __slots__ = ("_build", "_built", "entry")

    def __init__(self, entry: Entry, build: Build) -> None:
        """`build(node model, overrides)` → the serialised payload (e.g. `chat_payload`)."""
        self.entry, self._build = entry, build
        self._built: dict[str, bytes] = {}

    def for_target(self, target: str) -> bytes:
        found = self._built.get(target)
        if found is None:
            found = self._built[target] = self._build(
                target or self.entry.targets[0], self.entry.overrides
            )
        return found


def payload_for(payload: bytes | Payloads, target: str) -> bytes:
    """The bytes to send for `target`: plain bytes are the same for every node."""
    return payload if isinstance(payload, bytes) else payload.for_target(target)
