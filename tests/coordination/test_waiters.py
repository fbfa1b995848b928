"""The per-model FIFO of requests waiting for a slot: order, wake counts, timeouts, cancels."""

from __future__ import annotations

import asyncio

import pytest

from router.waiters import Waiters

pytestmark = pytest.mark.timeout(5)


def _forever() -> float:
    return asyncio.get_running_loop().time() + 60


async def _queue(
    waiters: Waiters, model: str, n: int, woken: list[int]
) -> list[asyncio.Task[None]]:
    async def one(i: int) -> None:
        await waiters.wait(model, front=False, deadline=_forever())
        woken.append(i)

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(0)  # queued in creation order
    return tasks


async def test_wakes_as_many_as_free_first_come_first() -> None:
    waiters, woken = Waiters(), list[int]()
    tasks = await _queue(waiters, "m", 4, woken)
    waiters.wake(lambda model: 2)
    assert waiters.waiting("m") == 2
    assert waiters.ahead("m")
    await asyncio.sleep(0)
    assert woken == [0, 1]
    assert waiters.waiting("m") == 2
    waiters.wake(lambda model: None)  # None: everyone
    assert waiters.waiting("m") == 0
    assert waiters.ahead("m")  # the woken have not looked again yet: newcomers queue
    await asyncio.gather(*tasks)
    assert woken == [0, 1, 2, 3]
    assert not waiters.any()
    assert not waiters.ahead("m")


async def test_models_are_queued_apart() -> None:
    waiters, woken = Waiters(), list[int]()
    tasks = await _queue(waiters, "a", 1, woken) + await _queue(waiters, "b", 1, woken)
    waiters.wake(lambda model: 1 if model == "b" else 0)
    await asyncio.sleep(0)
    assert (waiters.waiting("a"), waiters.waiting("b")) == (1, 0)
    waiters.wake(lambda model: None)
    await asyncio.gather(*tasks)


async def test_a_woken_waiter_that_lost_the_race_goes_back_to_the_front() -> None:
    waiters, woken = Waiters(), list[int]()
    tasks = await _queue(waiters, "m", 2, woken)
    back = asyncio.create_task(waiters.wait("m", front=True, deadline=_forever()))
    await asyncio.sleep(0)
    waiters.wake(lambda model: 1)
    await back  # ahead of the two that queued before it
    assert woken == []
    waiters.wake(lambda model: None)
    await asyncio.gather(*tasks)


async def test_timeout_and_cancel_leave_the_queue() -> None:
    waiters = Waiters()
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await waiters.wait("m", front=False, deadline=loop.time() + 0.02)
    assert waiters.waiting("m") == 0
    task = asyncio.create_task(waiters.wait("m", front=False, deadline=_forever()))
    await asyncio.sleep(0)
    task.cancel()
    waiters.wake(lambda model: 1)  # runs before the cancelled task does: skips it
    with pytest.raises(asyncio.CancelledError):
        await task
    assert waiters.waiting("m") == 0
