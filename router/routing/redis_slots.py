"""Slots shared with the other replicas through Redis (`redis_leases`), so capacity holds
fleet-wide: a request runs only with a slot in Redis and waits while every node is full. If
Redis stops answering (`redis_link` decides), it routes on local counts, and goes back to
Redis when it returns. Which node: `choose.Chooser`, on fleet-wide loads.

    take       choose on fleet-wide load → one acquire round trip → Lease
               (all full: wait in this replica's per-model FIFO, `waiters`, for a refresh
               or a release)
    release    Lease.release() tells the store (`released`), which queues the id; a
               background round trip gives back the batch
    background every REFRESH_S (WAITING_REFRESH_S while requests wait) read every node's
               count, and every ttl/3 renew held leases, in one round trip; while Redis is
               away probe every PROBE_S, and on its return re-register the leases taken
               meanwhile and give back those released meanwhile
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from router.config import CoordinationConfig
from router.fleet.registry import Fleet, Lease, NodeState
from router.obs.metrics import Metrics
from router.routing.choose import ALL_FULL, Ask, Chooser, Wait
from router.routing.redis_link import RedisDown, RedisLink
from router.routing.slots import NoFreeSlot
from router.routing.waiters import Waiters

if TYPE_CHECKING:
    from router.routing.redis_leases import RedisLeases

log = logging.getLogger(__name__)
REFRESH_S = 0.15  # how stale other replicas' counts may be
WAITING_REFRESH_S = 0.025  # the same, while requests wait for a slot
PROBE_S = 0.5  # how often a replica retries Redis while it is away
MAX_PENDING = 10_000  # lease ids given back while Redis was away, to remove on its return
_GROUP = "\n"  # joins a request's targets into the name of its line (no model name has one)


class RedisSlots:
    def __init__(
        self,
        config: CoordinationConfig,
        fleet: Fleet,
        chooser: Chooser,
        metrics: Metrics,
    ) -> None:
        # `redis` is an optional extra: imported only when coordination is configured.
        from router.routing.redis_leases import RedisLeases

        self._redis: RedisLeases = RedisLeases(
            config.redis_url, prefix=config.key_prefix, ttl_s=config.lease_ttl_s
        )
        self._fleet, self._chooser, self._config = fleet, chooser, config
        self.replica = secrets.token_hex(6)  # lease ids are "<replica>:<counter>"
        self._counter = itertools.count()
        self._held: dict[str, Lease] = {}  # id → lease: renewed, and re-registered on return
        # Per node, this replica's acquires and releases on their way: Redis may count them
        # or not yet, so they are neither ours (in_flight) nor others' (remote_in_flight).
        self._transit: Counter[str] = Counter()
        self._releasing: list[tuple[str, str]] = []  # (node, id) to give back in one batch
        self._released = asyncio.Event()
        self._pending: deque[tuple[str, str, float]] = deque(maxlen=MAX_PENDING)
        self._waiters = Waiters()
        self._tasks: list[asyncio.Task[None]] = []
        self.link = RedisLink(self._redis.ping, metrics, on_down=self._on_down)

    @property
    def waiting(self) -> int:
        return self._waiters.waiting

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Share slots if Redis answers; if not, serve on local counts and keep probing."""
        if not await self._sync(renew=True, operation="connect"):
            log.warning("coordination: Redis unreachable at start; routing on local counts")
        self._tasks = [
            asyncio.create_task(self._background(), name="jarvis-coordination"),
            asyncio.create_task(self._give_back(), name="jarvis-coordination-release"),
        ]

    async def close(self) -> None:
        """Stop the background work; give back every lease still held or not yet given back."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.link.close()
        leftovers = [(lease.node.name, lease_id) for lease_id, lease in self._held.items()]
        leftovers += self._releasing
        leftovers += [(node, lease_id) for node, lease_id, _ in self._pending]
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
        if isinstance(models, str):  # one model: a str is a Sequence[str] of its letters
            models = (models,)
        deadline = asyncio.get_running_loop().time() + self._config.wait_timeout_s
        asks = tuple(Ask(model, exclude, key, session, max_tokens) for model in models)
        line = _GROUP.join(models)  # requests for the same targets wait in one line
        ticket: int | None = None  # our place among this replica's waiters, once we wait
        turn = False  # woken: newcomers wait behind us until we have looked again
        try:
            while True:
                first = turn or not self._waiters.ahead(line)
                lease = await self._try(asks, first=first)
                if not isinstance(lease, Wait):
                    return lease
                if turn:
                    self._waiters.done(line)
                    turn = False
                ticket = self._waiters.ticket() if ticket is None else ticket
                try:
                    await self._waiters.wait(line, ticket, deadline=deadline)
                except TimeoutError:
                    raise NoFreeSlot from None
                turn = True
        finally:
            if turn:
                self._waiters.done(line)

    def waiting_by_model(self) -> dict[str, int]:
        return self._waiters.by_line(lambda line: line.split(_GROUP, 1)[0])

    async def _try(self, asks: tuple[Ask, ...], *, first: bool) -> Lease | Wait | None:
        """One look: a lease, None (no node serves any target), or `Wait` for a turn (every
        node is full in view, or others of this replica wait before us). Targets in order:
        the first with a free node in view gets the choice (issue #15)."""
        failed = False
        while True:
            if not self.link.up:  # counts unknown: the best node on ours, full or not
                return self._unshared(asks)
            if not first:
                return ALL_FULL
            result: Wait | None = None
            for ask in asks:
                chosen = self._chooser.choose(self._fleet.candidates(ask.model), ask)
                if isinstance(chosen, NodeState):
                    break
                result = result or chosen
            else:
                return result
            try:
                lease = await self._acquire(chosen, ask.model)
            except RedisDown as exc:
                if failed:
                    self.link.failed_again("acquire", exc)
                else:
                    await self.link.suspect("acquire", exc)
                failed = True
                continue  # on Redis again, or on local counts
            if lease is not None:
                return lease
            # Full after all: the view now says so; look again (another node, or wait).

    def _unshared(self, asks: tuple[Ask, ...]) -> Lease | None:
        """Redis is away: the first target with a free node on our counts, else the best node
        of the first target that has any, full or not."""
        for strict in (True, False):
            for ask in asks:
                chosen = self._chooser.choose(self._fleet.candidates(ask.model), ask, strict=strict)
                node = chosen.node if isinstance(chosen, Wait) and not strict else chosen
                if isinstance(node, NodeState):
                    return self._lease(node, self._new_id(), ask.model)
        return None

    async def _acquire(self, node: NodeState, model: str) -> Lease | None:
        lease_id = self._new_id()
        self._transit[node.name] += 1
        try:
            taken, count = await self._redis.acquire(node.name, node.capacity, lease_id)
        except (RedisDown, asyncio.CancelledError):  # the script may have run all the same
            self._forget(node.name, lease_id)
            raise
        finally:
            self._transit[node.name] -= 1
        lease = self._lease(node, lease_id, model) if taken else None
        self._count(node, count)
        return lease

    def _count(self, node: NodeState, fleet_wide: int) -> None:
        node.remote_in_flight = max(0, fleet_wide - node.in_flight - self._transit[node.name])

    def _new_id(self) -> str:
        return f"{self.replica}:{next(self._counter)}"

    def _lease(self, node: NodeState, lease_id: str, model: str) -> Lease:
        # Leases taken while Redis is away get an id too, to be registered on its return.
        lease = self._held[lease_id] = Lease(node, self, lease_id, model)
        return lease

    def released(self, lease: Lease) -> None:
        """A lease this store made was given back (`Lease.owner`): Redis forgets it soon."""
        lease_id = lease.id
        assert lease_id is not None
        del self._held[lease_id]
        self._forget(lease.node.name, lease_id)

    def _forget(self, node: str, lease_id: str) -> None:
        """Remove from Redis whatever it holds of a lease: soon, or on its return."""
        if self.link.up:
            self._releasing.append((node, lease_id))
            self._transit[node] += 1
            self._released.set()
        else:
            self._pending.append((node, lease_id, time.monotonic()))

    def _wake(self) -> None:
        self._waiters.wake(self._free_slots)

    def _free_slots(self, line: str) -> int | None:
        """Free slots in view for a line's targets; None (wake every waiter) while Redis is
        away or when no node serves them any more."""
        candidates = {n.name: n for m in line.split(_GROUP) for n in self._fleet.candidates(m)}
        if not self.link.up or not candidates:
            return None
        return sum(max(0, node.free) for node in candidates.values())

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
                interval = WAITING_REFRESH_S if self._waiters.waiting else REFRESH_S
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
        try:
            if not self.link.up:
                await self._redis.reconnect()
            if not self.link.up and self._pending:  # back: first remove what was given back
                now, ttl = time.monotonic(), self._config.lease_ttl_s
                await self._redis.release(
                    [(node, lease_id) for node, lease_id, at in self._pending if now - at < ttl]
                )
                self._pending.clear()
            held: dict[str, list[str]] = {}
            if renew:
                for lease_id, lease in self._held.items():
                    held.setdefault(lease.node.name, []).append(lease_id)
            counts = await self._redis.sync(list(self._fleet.nodes), held)
        except RedisDown as exc:
            await self.link.suspect(operation, exc)
            return False
        for name, count in counts.items():
            node = self._fleet.nodes.get(name)
            if node is not None:  # a reload may have removed it during the round trip
                self._count(node, count)
        self.link.restored()
        self._wake()
        return True

    async def _give_back(self) -> None:
        """Give back released leases: one round trip for all released since the last one."""
        failed = False
        while True:
            await self._released.wait()
            self._released.clear()
            batch, self._releasing = self._releasing, []
            try:
                if self.link.up:
                    await self._redis.release(batch)
                else:
                    self._pending.extend((node, lid, time.monotonic()) for node, lid in batch)
                failed = False
            except RedisDown as exc:
                if failed:
                    self.link.failed_again("release", exc)
                else:
                    await self.link.suspect("release", exc)
                failed = True
                for node, lease_id in batch:  # again soon, or when Redis returns
                    self._forget(node, lease_id)
            except asyncio.CancelledError:
                self._releasing += batch  # close() gives them back
                raise
            finally:
                self._transit.subtract(node for node, _ in batch)
            self._wake()

    def _on_down(self) -> None:
        """Redis is away: rank nodes on this replica's counts; let every waiter go."""
        for node in self._fleet.nodes.values():
            node.remote_in_flight = 0
        self._wake()
