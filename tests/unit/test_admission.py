"""The admission queue: fast path, FIFO per key, round-robin across keys, bounded in depth and
time, cancel-safe, and a waiter that cannot run never blocks one that can."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from router.routing.admission import AdmissionQueue, QueueFull, QueueTimeout


@dataclass(frozen=True)
class Slot:
    model: str
    tag: str


@dataclass
class Pool:
    """Free slots per model, as the fleet would hand them out."""

    free: dict[str, int] = field(default_factory=dict)
    served: list[str] = field(default_factory=list)  # tags, in the order slots were taken
    returned: list[Slot] = field(default_factory=list)
    calls: int = 0

    def taker(self, model: str, tag: str) -> Callable[[], Slot | None]:
        def take() -> Slot | None:
            self.calls += 1
            if self.free.get(model, 0) <= 0:
                return None
            self.free[model] -= 1
            self.served.append(tag)
            return Slot(model, tag)

        return take

    def give_back(self, slot: Slot) -> None:
        self.free[slot.model] += 1
        self.returned.append(slot)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


Waits = list[tuple[float, str]]


def make(max_depth: int = 100, timeout_s: float = 5.0) -> tuple[AdmissionQueue, Waits]:
    queue = AdmissionQueue(max_depth=max_depth, timeout_s=timeout_s, clock=FakeClock())
    waits: Waits = []
    queue.on_wait = lambda seconds, outcome: waits.append((seconds, outcome))
    return queue, waits


def request(
    queue: AdmissionQueue, pool: Pool, key: str, model: str, tag: str
) -> asyncio.Task[Slot]:
    return asyncio.create_task(queue.admit(key, pool.taker(model, tag), give_back=pool.give_back))


async def queued(queue: AdmissionQueue, depth: int) -> None:
    """Let the request tasks run until `depth` of them wait (there is no event to wait on)."""
    for _ in range(100):
        if queue.depth == depth:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"depth {queue.depth}, expected {depth}")


def free_one(queue: AdmissionQueue, pool: Pool, model: str = "m") -> None:
    pool.free[model] = pool.free.get(model, 0) + 1
    queue.notify()


async def test_fast_path_takes_at_once() -> None:
    async with asyncio.timeout(1):
        queue, waits = make()
        pool = Pool({"m": 1})
        slot = await queue.admit("a", pool.taker("m", "x"), give_back=pool.give_back)
        assert slot == Slot("m", "x")
        assert (queue.depth, waits, pool.calls) == (0, [], 1)


async def test_fifo_within_a_key() -> None:
    async with asyncio.timeout(1):
        queue, waits = make()
        pool = Pool({"m": 0})
        tasks = [request(queue, pool, "a", "m", f"a{i}") for i in range(4)]
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
        queue, _ = make()
        pool = Pool({"m": 0})
        tasks = [request(queue, pool, "burst", "m", f"a{i}") for i in range(20)]
        await queued(queue, 20)
        tasks += [request(queue, pool, "quiet", "m", f"b{i}") for i in range(2)]
        await queued(queue, 22)
        for _ in tasks:
            free_one(queue, pool)  # one slot at a time, as requests finish
        await asyncio.gather(*tasks)
        assert pool.served[:5] == ["a0", "b0", "a1", "b1", "a2"]
        assert pool.served[5:] == [f"a{i}" for i in range(3, 20)]


async def test_key_that_queues_anew_goes_to_the_back() -> None:
    async with asyncio.timeout(1):
        queue, _ = make()
        pool = Pool({"m": 0})
        tasks = [request(queue, pool, "a", "m", "a0"), request(queue, pool, "b", "m", "b0")]
        await queued(queue, 2)
        free_one(queue, pool)  # a0; key "a" has nobody left
        tasks += [request(queue, pool, "a", "m", "a1"), request(queue, pool, "c", "m", "c0")]
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
        queue, _ = make()
        pool = Pool({"busy": 0, "idle": 0})
        stuck = request(queue, pool, *blocked, "stuck")
        await queued(queue, 1)
        lucky = request(queue, pool, *runnable, "lucky")
        await queued(queue, 2)
        free_one(queue, pool, "idle")
        assert (await lucky).tag == "lucky"
        assert not stuck.done()
        assert queue.waiting_by_key() == {blocked[0]: 1}
        free_one(queue, pool, "busy")
        assert (await stuck).tag == "stuck"


async def test_arrival_for_a_free_model_passes_waiters_for_a_busy_one() -> None:
    async with asyncio.timeout(1):
        queue, waits = make()
        pool = Pool({"busy": 0, "idle": 1})
        stuck = request(queue, pool, "a", "busy", "stuck")
        await queued(queue, 1)
        slot = await queue.admit("a", pool.taker("idle", "new"), give_back=pool.give_back)
        assert slot.tag == "new"
        assert queue.depth == 1
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert [outcome for _, outcome in waits] == ["cancelled"]


async def test_arrival_does_not_jump_a_waiter_for_the_same_model() -> None:
    async with asyncio.timeout(1):
        queue, _ = make()
        pool = Pool({"m": 0})
        first = request(queue, pool, "a", "m", "first")
        await queued(queue, 1)
        pool.free["m"] = 1  # freed without a notify (a forgetful caller)
        late = request(queue, pool, "b", "m", "late")
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
        queue, _ = make(max_depth=max_depth)
        pool = Pool({"m": 0, "other": 1})
        waiting = [request(queue, pool, f"k{i}", "m", f"w{i}") for i in range(min(max_depth, 2))]
        await queued(queue, len(waiting))
        attempt = request(queue, pool, "late", model, "late")
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
        queue, waits = make(timeout_s=0.02)
        pool = Pool({"m": 0})
        with pytest.raises(QueueTimeout):
            await queue.admit("a", pool.taker("m", "x"), give_back=pool.give_back)
        assert (queue.depth, queue.waiting_by_key()) == (0, {})
        assert [outcome for _, outcome in waits] == ["timeout"]
        free_one(queue, pool)  # nothing is waiting: the slot stays free
        assert pool.free == {"m": 1}


async def test_wait_time_is_measured_on_the_injected_clock() -> None:
    async with asyncio.timeout(1):
        clock = FakeClock()
        queue = AdmissionQueue(max_depth=5, timeout_s=5.0, clock=clock)
        waits: Waits = []
        queue.on_wait = lambda seconds, outcome: waits.append((seconds, outcome))
        pool = Pool({"m": 0})
        task = request(queue, pool, "a", "m", "x")
        await queued(queue, 1)
        clock.now += 2.5
        free_one(queue, pool)
        await task
        assert waits == [(2.5, "admitted")]


async def test_cancel_frees_the_place() -> None:
    async with asyncio.timeout(1):
        queue, waits = make(max_depth=1)
        pool = Pool({"m": 0})
        leaving = request(queue, pool, "a", "m", "leaving")
        await queued(queue, 1)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert (queue.depth, queue.waiting_by_key()) == (0, {})
        staying = request(queue, pool, "b", "m", "staying")  # the place is free again
        await queued(queue, 1)
        free_one(queue, pool)
        assert (await staying).tag == "staying"
        assert pool.served == ["staying"]
        assert [outcome for _, outcome in waits] == ["cancelled", "admitted"]


async def test_value_handed_over_at_cancel_is_given_back_and_reused() -> None:
    async with asyncio.timeout(1):
        queue, waits = make()
        pool = Pool({"m": 0})
        leaving = request(queue, pool, "a", "m", "leaving")
        behind = request(queue, pool, "b", "m", "behind")
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
        queue, waits = make()
        pool = Pool({"m": 0, "n": 0})
        tasks = [request(queue, pool, key, model, key + model) for key in "ab" for model in "mn"]
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
        queue, _ = make()
        pool = Pool({"m": 0})
        broken = {"on": False}

        def take_or_fail() -> Slot | None:
            if broken["on"]:
                raise RuntimeError("fleet lookup failed")
            return None

        failing = asyncio.create_task(queue.admit("a", take_or_fail, give_back=pool.give_back))
        fine = request(queue, pool, "b", "m", "fine")
        await queued(queue, 2)
        broken["on"] = True
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
        AdmissionQueue(clock=FakeClock(), **kwargs)
