"""Slots shared with the other replicas through Redis (`redis_leases`), so capacity holds
fleet-wide, with the routing policy of a single replica: the configured strategy (cost-aware)
on fleet-wide loads, conversation affinity that every replica agrees on, and the fair
admission queue, fair across replicas too (`shares`). If Redis stops answering (`redis_link`
decides), it routes on local counts, and goes back to Redis when it returns.

    take       (a conversation: one round trip for its last node, from any replica) →
               admission queue: choose on fleet-wide loads, a lease counted here at once →
               one acquire round trip confirms it (and, for a conversation, records its
               node); full after all: the lease is dropped and the request queues again
    waiting    the same `AdmissionQueue` and line (`line.WaitLine`: tickets, per-node
               waiting counts) as the local store, so cost-aware choice may wait for the
               fast node; woken by every refresh and every batch of releases
    release    Lease.release() tells the store (`released`), which queues the id; a
               background round trip gives back the batch (`redis_release`)
    background every REFRESH_S (WAITING_REFRESH_S while requests wait) read every node's
               count, who waits where and per-key shares, and every ttl/3 renew held leases,
               in one round trip; while Redis is away probe every PROBE_S, and on its return
               re-register the leases taken meanwhile and give back those released meanwhile

What replicas agree on lives in Redis (leases, waiting keys, conversations' nodes); what each
learns alone (node speeds) stays local.
Just over 300 lines: the request path and the background exchange share the store's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from router.config import CoordinationConfig
from router.fleet.registry import Fleet, Lease, NodeState
from router.obs.metrics import Metrics
from router.routing.admission import AdmissionQueue, Outcome
from router.routing.choose import ALL_FULL, Ask, Chooser, Wait
from router.routing.line import Place, WaitLine, choose_target, servable
from router.routing.redis_link import RedisDown, RedisLink
from router.routing.redis_release import GiveBack
from router.routing.shares import KeyShares
from router.routing.slots import NoFreeSlot

if TYPE_CHECKING:
    from router.routing.redis_leases import RedisLeases

log = logging.getLogger(__name__)
REFRESH_S = 0.15  # how stale other replicas' counts may be
WAITING_REFRESH_S = 0.025  # the same, while requests wait for a slot
PROBE_S = 0.5  # how often a replica retries Redis while it is away
DEFER = Wait()  # leave the slot to a key with a smaller share (not ALL_FULL: no node kept)


class RedisSlots:
    def __init__(
        self,
        config: CoordinationConfig,
        fleet: Fleet,
        chooser: Chooser,
        metrics: Metrics,
        *,
        replica: str,
        max_queue: int,
        clock: Callable[[], float],
        on_wait: Callable[[float, Outcome], None] | None = None,
    ) -> None:
        # `redis` is an optional extra: imported only when coordination is configured.
        from router.routing.redis_leases import RedisLeases

        self._redis: RedisLeases = RedisLeases(
            config.redis_url, prefix=config.key_prefix, ttl_s=config.lease_ttl_s
        )
        self._fleet, self._chooser, self._config = fleet, chooser, config
        self.replica = replica  # lease ids are "<replica>:<counter>"
        self._counter = itertools.count()
        # id → (lease, API key): renewed, and re-registered on Redis's return
        self._held: dict[str, tuple[Lease, str]] = {}
        self._unregistered: set[str] = set()  # leases Redis refused: nothing to give back
        self.shares = KeyShares()
        self._line = WaitLine()
        self._waiters: set[Place] = set()  # announced to the others while they wait
        self.queue: AdmissionQueue[Place, Lease] = AdmissionQueue(
            self,
            max_depth=max_queue,
            timeout_s=config.wait_timeout_s,
            clock=clock,
            on_wait=on_wait,
        )
        self._unwatch = fleet.watch_capacity(self.queue.notify)
        self._tasks: list[asyncio.Task[None]] = []
        self.link = RedisLink(self._redis.ping, metrics, on_down=self._on_down)
        self._give_back = GiveBack(
            self._redis, self.link, ttl_s=config.lease_ttl_s, on_free=self.queue.notify
        )

    @property
    def waiting(self) -> int:
        return self.queue.depth

    def waiting_by_model(self) -> dict[str, int]:
        return dict(self._line.by_model)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Share slots if Redis answers; if not, serve on local counts and keep probing."""
        if not await self._sync(renew=True, operation="connect"):
            log.warning("coordination: Redis unreachable at start; routing on local counts")
        self._tasks = [
            asyncio.create_task(self._background(), name="jarvis-coordination"),
            asyncio.create_task(self._give_back.run(), name="jarvis-coordination-release"),
        ]

    async def close(self) -> None:
        """Stop the background work; give back every lease still held or not yet given back."""
        self._unwatch()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.link.close()
        leftovers = [(lease.node.name, i, key) for i, (lease, key) in self._held.items()]
        leftovers += self._give_back.leftovers()
        if self.link.up and leftovers:
            with contextlib.suppress(RedisDown):  # they expire by themselves
                await self._redis.release(leftovers)
        await self._redis.aclose()

    # -- request path -----------------------------------------------------------------------
    async def take(
        self,
        models: Sequence[str],
        exclude: Collection[str],
        *,
        key: str = "",
        session: str | None = None,
        max_tokens: int | None = None,
    ) -> Lease | None:
        targets = servable(self._fleet.candidates, models, exclude)
        if targets is None:
            return None
        if session is not None and self._chooser.ring is not None and self.link.up:
            await self._recall(session)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.wait_timeout_s
        asks = tuple(Ask(model, exclude, key, session, max_tokens) for model in targets)
        place = Place(self._line, asks)
        lost = False  # a slot free in view was taken meanwhile: it keeps its place
        try:
            while True:
                lease = await self.queue.admit(key, place, first=lost)
                if await self._confirm(lease, asks[0]):
                    return lease
                if loop.time() >= deadline:
                    raise NoFreeSlot
                self._line.wait(place, ALL_FULL)
                self._waiters.add(place)
                lost = True
        finally:
            self._waiters.discard(place)
            self._line.leave(place)

    async def _recall(self, session: str) -> None:
        """The conversation's last node as any replica saw it, for the affinity ring."""
        ring = self._chooser.ring
        assert ring is not None
        try:
            node = await self._redis.last_node(session)
        except RedisDown as exc:
            await self.link.suspect("affinity", exc)
            return
        if node is not None:
            ring.remember(session, node)

    # -- the admission queue's store (`admission.Admits`) -------------------------------------
    def try_take(self, place: Place) -> Lease | None:
        """A lease on the chosen node (of the first target with a free one in view,
        `line.choose_target`), counted here at once (so the next choice sees it) and
        confirmed in Redis by `take`; or None: the request waits (in line from now on)."""
        ask = place.asks[0]
        found: tuple[NodeState, str] | Wait | None
        if not self.link.up:  # counts unknown: the best node on ours, full or not
            found = choose_target(self._chooser, self._fleet.candidates, place, strict=False)
            if isinstance(found, Wait) and found.node is not None:  # a full node: take it
                node = found.node
                model = next(a.model for a in place.asks if a.model in node.models)
                found = (node, model)
        elif self.shares.defers(ask.model, ask.key):
            found = DEFER
        else:
            found = choose_target(self._chooser, self._fleet.candidates, place)
        if isinstance(found, tuple):
            self._waiters.discard(place)
            node, model = found
            return self._lease(node, ask.key, model)
        self._line.wait(place, found)
        self._waiters.add(place)
        return None

    def give_back(self, slot: Lease) -> None:
        slot.release()

    async def _confirm(self, lease: Lease, ask: Ask) -> bool:
        """Hold `lease` in Redis too; False (and the lease dropped): the node is full."""
        node, lease_id, failed = lease.node, lease.id, False
        assert lease_id is not None
        while self.link.up:
            try:
                taken, count = await self._redis.acquire(
                    node.name, node.capacity, lease_id, key=ask.key, session=ask.session
                )
            except RedisDown as exc:
                if failed:
                    self.link.failed_again("acquire", exc)
                else:
                    await self.link.suspect("acquire", exc)
                failed = True
                continue  # on Redis again (the script takes a lease twice once), or local
            except BaseException:  # cancelled: the script may have run all the same
                lease.release()
                raise
            if not taken:
                self._unregistered.add(lease_id)
                lease.release()
            self._count(node, count)
            return taken
        return True  # Redis is away: on local counts; registered when it returns

    def _count(self, node: NodeState, fleet_wide: int) -> None:
        # Releases on their way may still count in Redis: neither ours nor others'.
        transit = self._give_back.transit[node.name]
        node.remote_in_flight = max(0, fleet_wide - node.in_flight - transit)

    def _lease(self, node: NodeState, key: str, model: str) -> Lease:
        lease_id = f"{self.replica}:{next(self._counter)}"
        lease = Lease(node, self, lease_id, model)
        self._held[lease_id] = (lease, key)
        self.shares.local[key] += 1
        return lease

    def released(self, lease: Lease) -> None:
        """A lease this store made was given back (`Lease.owner`): Redis forgets it soon."""
        lease_id = lease.id
        assert lease_id is not None
        _, key = self._held.pop(lease_id)
        self.shares.local[key] -= 1
        if lease_id in self._unregistered:  # never taken in Redis: nothing freed
            self._unregistered.discard(lease_id)
        else:
            self._give_back.forget(lease.node.name, lease_id, key)

    # -- background -------------------------------------------------------------------------
    async def _background(self) -> None:
        renew_every = self._config.lease_ttl_s / 3
        synced = renewed = time.monotonic()
        while True:
            await asyncio.sleep(WAITING_REFRESH_S)
            now = time.monotonic()
            if not self.link.up:
                interval = PROBE_S
            else:  # someone waits for another replica's slot: look more often
                interval = WAITING_REFRESH_S if self.queue.depth else REFRESH_S
            if now - synced < interval:
                continue
            synced = now
            renew = not self.link.up or now - renewed >= renew_every
            try:
                if await self._sync(renew=renew, operation="refresh" if self.link.up else "probe"):
                    renewed = time.monotonic() if renew else renewed
            except Exception:  # a bug must not stop renewals: held leases would expire
                log.exception("coordination: refresh failed")

    async def _sync(self, *, renew: bool, operation: str) -> bool:
        """One round trip (two on Redis's return): counts in, renewals out. False: down."""
        local = dict(self.shares.local)
        try:
            if not self.link.up:
                await self._redis.reconnect()
                await self._give_back.on_return()
            held: dict[str, list[tuple[str, str]]] = {}
            if renew:
                for lease_id, (lease, key) in self._held.items():
                    held.setdefault(lease.node.name, []).append((lease_id, key))
            waiting = {(p.asks[0].model, p.asks[0].key) for p in self._waiters if p.node is None}
            synced = await self._redis.exchange(
                list(self._fleet.nodes),
                held,
                replica=self.replica,
                waiting=waiting,
                keys=[key for key, n in local.items() if n],
            )
        except RedisDown as exc:
            await self.link.suspect(operation, exc)
            return False
        for name, count in synced.counts.items():
            node = self._fleet.nodes.get(name)
            if node is not None:  # a reload may have removed it during the round trip
                self._count(node, count)
        self.shares.synced(self.replica, synced.waiting, synced.shares, local)
        self.link.restored()
        self._give_back.requeue()
        self.queue.notify()
        return True

    def _on_down(self) -> None:
        """Redis is away: rank nodes on this replica's counts; let every waiter go."""
        for node in self._fleet.nodes.values():
            node.remote_in_flight = 0
        self.shares.clear()
        self.queue.notify()
