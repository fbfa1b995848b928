"""The admission queue: fast path, FIFO per key, round-robin across keys, bounded in depth and
time, cancel-safe, and a waiter that cannot run never blocks one that can."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from router.routing.admission import AdmissionQueue, QueueFull, QueueTimeout


@dataclass(frozen=True)
class Slot:
    """A request for a slot of `model` (tagged to follow it), and the slot it gets."""

    model: str
    tag: str


@dataclass
class Pool:
    """The queue's store: free slots per model, as the fleet would hand them out."""

    free: dict[str, int] = field(default_factory=dict)
    served: list[str] = field(default_factory=list)  # tags, in the order slots were taken
    returned: list[Slot] = field(default_factory=list)
    calls: int = 0
    broken: bool = False  # requests for model "error" raise

    def try_take(self, request: Slot) -> Slot | None:
        self.calls += 1
        if request.model == "error" and self.broken:
            raise RuntimeError("fleet lookup failed")
        if self.free.get(request.model, 0) <= 0:
            return None
        self.free[request.model] -= 1
        self.served.append(request.tag)
        return request

    def give_back(self, slot: Slot) -> None:
        self.free[slot.model] += 1
        self.returned.append(slot)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


Waits = list[tuple[float, str]]
Queue = AdmissionQueue[Slot, Slot]


def make(
    pool: Pool, max_depth: int = 100, timeout_s: float = 5.0, clock: FakeClock | None = None
) -> tuple[Queue, Waits]:
    waits: Waits = []
    queue = AdmissionQueue(
        pool,
        max_depth=max_depth,
        timeout_s=timeout_s,
        clock=clock or FakeClock(),
        on_wait=lambda seconds, outcome: waits.append((seconds, outcome)),
    )
    return queue, waits


def request(queue: Queue, key: str, model: str, tag: str) -> asyncio.Task[Slot]:
    return asyncio.create_task(queue.admit(key, Slot(model, tag)))


async def queued(queue: Queue, depth: int) -> None:
    """Let the request tasks run until `depth` of them wait (there is no event to wait on)."""
    for _ in range(100):
        if queue.depth == depth:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"depth {queue.depth}, expected {depth}")


def free_one(queue: Queue, pool: Pool, model: str = "m") -> None:
    pool.free[model] = pool.free.get(model, 0) + 1
    queue.notify()


async def test_fast_path_takes_at_once() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 1})
        queue, waits = make(pool)
        slot = await queue.admit("a", Slot("m", "x"))
        assert slot == Slot("m", "x")
        assert (queue.depth, waits, pool.calls) == (0, [], 1)


async def test_fifo_within_a_key() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 0})
        queue, waits = make(pool)
        tasks = [request(queue, "a", "m", f"a{i}") for i in range(4)]
        await queued(queue, 4)
        assert queue.waiting_by_key() == {"a": 4}
        for _ in tasks:
            free_one(queue, pool)
        assert [t.tag for t in await asyncio.gather(*tasks)] == ["a0", "a1", "a2", "a3"]
        assert pool.served == ["a0", "a1", "a2", "a3"]
        assert [outcome for _, outcome in waits] == ["admitted"] * 4
        assert queue.depth == 0


async def test_round_robin_across_keys() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 0})
        queue, _ = make(pool)
        tasks = [request(queue, "burst", "m", f"a{i}") for i in range(20)]
        await queued(queue, 20)
        tasks += [request(queue, "quiet", "m", f"b{i}") for i in range(2)]
        await queued(queue, 22)
        for _ in tasks:
            free_one(queue, pool)  # one slot at a time, as requests finish
        await asyncio.gather(*tasks)
        assert pool.served[:5] == ["a0", "b0", "a1", "b1", "a2"]
        assert pool.served[5:] == [f"a{i}" for i in range(3, 20)]


async def test_key_that_queues_anew_goes_to_the_back() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 0})
        queue, _ = make(pool)
        tasks = [request(queue, "a", "m", "a0"), request(queue, "b", "m", "b0")]
        await queued(queue, 2)
        free_one(queue, pool)  # a0; key "a" has nobody left
        tasks += [request(queue, "a", "m", "a1"), request(queue, "c", "m", "c0")]
        await queued(queue, 3)
        for _ in range(3):
            free_one(queue, pool)
        await asyncio.gather(*tasks)
        assert pool.served == ["a0", "b0", "a1", "c0"]


@pytest.mark.parametrize(
    ("blocked", "runnable"),
    [(("a", "busy"), ("b", "idle")), (("a", "busy"), ("a", "idle"))],
    ids=["other-key", "same-key"],
)
async def test_waiter_that_cannot_run_does_not_block_one_that_can(
    blocked: tuple[str, str], runnable: tuple[str, str]
) -> None:
    async with asyncio.timeout(1):
        pool = Pool({"busy": 0, "idle": 0})
        queue, _ = make(pool)
        stuck = request(queue, *blocked, "stuck")
        await queued(queue, 1)
        lucky = request(queue, *runnable, "lucky")
        await queued(queue, 2)
        free_one(queue, pool, "idle")
        assert (await lucky).tag == "lucky"
        assert not stuck.done()
        assert queue.waiting_by_key() == {blocked[0]: 1}
        free_one(queue, pool, "busy")
        assert (await stuck).tag == "stuck"


async def test_arrival_for_a_free_model_passes_waiters_for_a_busy_one() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"busy": 0, "idle": 1})
        queue, waits = make(pool)
        stuck = request(queue, "a", "busy", "stuck")
        await queued(queue, 1)
        slot = await queue.admit("a", Slot("idle", "new"))
        assert slot.tag == "new"
        assert queue.depth == 1
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert [outcome for _, outcome in waits] == ["cancelled"]


async def test_arrival_does_not_jump_a_waiter_for_the_same_model() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 0})
        queue, _ = make(pool)
        first = request(queue, "a", "m", "first")
        await queued(queue, 1)
        pool.free["m"] = 1  # freed without a notify (a forgetful caller)
        late = request(queue, "b", "m", "late")
        assert (await first).tag == "first"
        await queued(queue, 1)
        free_one(queue, pool)
        assert (await late).tag == "late"


@pytest.mark.parametrize(
    ("max_depth", "model", "expect_full"),
    [(2, "m", True), (2, "other", False), (0, "m", True), (3, "m", False)],
    ids=["full", "full-but-free-model-runs", "no-queue", "room-left"],
)
async def test_queue_full_at_depth(max_depth: int, model: str, expect_full: bool) -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 0, "other": 1})
        queue, _ = make(pool, max_depth=max_depth)
        waiting = [request(queue, f"k{i}", "m", f"w{i}") for i in range(min(max_depth, 2))]
        await queued(queue, len(waiting))
        attempt = request(queue, "late", model, "late")
        if expect_full:
            with pytest.raises(QueueFull):
                await attempt
        else:
            await asyncio.sleep(0)
            assert attempt.done() == (model == "other")
        for t in [*waiting, attempt]:
            t.cancel()
        await asyncio.gather(*waiting, attempt, return_exceptions=True)
        assert queue.depth == 0


async def test_timeout() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 0})
        queue, waits = make(pool, timeout_s=0.02)
        with pytest.raises(QueueTimeout):
            await queue.admit("a", Slot("m", "x"))
        assert (queue.depth, queue.waiting_by_key()) == (0, {})
        assert [outcome for _, outcome in waits] == ["timeout"]
        free_one(queue, pool)  # nothing is waiting: the slot stays free
        assert pool.free == {"m": 1}


async def test_wait_time_is_measured_on_the_injected_clock() -> None:
    async with asyncio.timeout(1):
        clock = FakeClock()
        pool = Pool({"m": 0})
        queue, waits = make(pool, max_depth=5, clock=clock)
        task = request(queue, "a", "m", "x")
        await queued(queue, 1)
        clock.now += 2.5
        free_one(queue, pool)
        await task
        assert waits == [(2.5, "admitted")]


async def test_cancel_frees_the_place() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 0})
        queue, waits = make(pool, max_depth=1)
        leaving = request(queue, "a", "m", "leaving")
        await queued(queue, 1)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert (queue.depth, queue.waiting_by_key()) == (0, {})
        staying = request(queue, "b", "m", "staying")  # the place is free again
        await queued(queue, 1)
        free_one(queue, pool)
        assert (await staying).tag == "staying"
        assert pool.served == ["staying"]
        assert [outcome for _, outcome in waits] == ["cancelled", "admitted"]


async def test_value_handed_over_at_cancel_is_given_back_and_reused() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 0})
        queue, waits = make(pool)
        leaving = request(queue, "a", "m", "leaving")
        behind = request(queue, "b", "m", "behind")
        await queued(queue, 2)
        free_one(queue, pool)  # the slot goes to `leaving`, whose task has not run yet
        leaving.cancel()  # ... and its client leaves before it does
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert pool.returned == [Slot("m", "leaving")]
        assert (await behind).tag == "behind"  # the given-back slot was handed on
        assert pool.free == {"m": 0}
        assert [outcome for _, outcome in waits] == ["cancelled", "admitted"]


async def test_notify_with_nothing_free_is_a_no_op() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 0, "n": 0})
        queue, waits = make(pool)
        tasks = [request(queue, key, model, key + model) for key in "ab" for model in "mn"]
        await queued(queue, 4)
        calls = pool.calls
        queue.notify()
        await asyncio.sleep(0)
        assert pool.calls - calls == 4  # each waiter tried once, then stop
        assert queue.waiting_by_key() == {"a": 2, "b": 2}
        assert not any(t.done() for t in tasks)
        assert waits == []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_try_take_error_goes_to_its_own_request() -> None:
    async with asyncio.timeout(1):
        pool = Pool({"m": 0})
        queue, _ = make(pool)
        failing = request(queue, "a", "error", "failing")
        fine = request(queue, "b", "m", "fine")
        await queued(queue, 2)
        pool.broken = True
        free_one(queue, pool)
        with pytest.raises(RuntimeError, match="fleet lookup failed"):
            await failing
        assert (await fine).tag == "fine"
        assert queue.depth == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_depth": -1, "timeout_s": 1.0}, {"max_depth": 1, "timeout_s": 0.0}],
    ids=["negative-depth", "zero-timeout"],
)
def test_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AdmissionQueue(Pool(), clock=FakeClock(), **kwargs)
