"""The slot store seam: where a request's lease comes from, for one replica alone or for many.

`SlotStore` is what dispatch takes slots through. Two stores implement it, and both ask the
same `choose.Chooser` which node a request gets; they differ in where slot counts live:

* `local.QueuedSlots`: one replica on its own. Strict capacity on its own counts; a request
  that finds every suitable node full waits in the fair admission queue (`admission`).
* `redis_slots.RedisSlots`: many replicas share every node's slots through Redis
  (`redis_leases`), so capacity holds fleet-wide; a request waits in the same fair admission
  queue, woken by a refresh or a release, and defers to keys with a smaller fleet-wide share
  waiting at other replicas (`shares`). If Redis stops answering (`redis_link` decides), it
  routes on local counts until Redis returns.

Each store makes its leases with itself as their owner (`Lease.owner`): a release tells it, and
it wakes waiters or gives the slot back to Redis.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from router.fleet.registry import Lease


class NoFreeSlot(Exception):
    """Every node for the model stayed full for `wait_timeout_s`."""


class SlotStore(Protocol):
    async def take(
        self,
        models: Sequence[str],
        exclude: Collection[str],
        *,
        key: str = "",
        session: str | None = None,
        max_tokens: int | None = None,
    ) -> Lease | None:
        """A held slot on the best node not in `exclude` for the first of `models` (node
        models, most preferred first: a catalog entry's targets) that has such a node with a
        free slot; the lease's `model` says which. Waits only when every one's nodes are
        full, for the first slot that frees on any (None: no node serves any of them).
        `key` (the API key's name), `session` (a conversation key) and `max_tokens` (the
        request's length cap) may steer the choice. Raises `NoFreeSlot` or
        `admission.AdmissionRejected` when the wait is refused or runs out."""

    @property
    def waiting(self) -> int:
        """Requests of this replica waiting for a slot now (jarvis_queue_depth)."""

    def waiting_by_model(self) -> dict[str, int]:
        """Of those, how many per most preferred model (the warm pool's demand)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...
