"""Requests waiting for a slot, per model: tickets, turns, timeouts and cancels."""

from __future__ import annotations

import asyncio

import pytest

from router.routing.waiters import Waiters

pytestmark = pytest.mark.timeout(5)


def _forever() -> float:
    return asyncio.get_running_loop().time() + 60


async def _queue(
    waiters: Waiters, model: str, n: int, woken: list[int]
) -> list[asyncio.Task[None]]:
    async def one(i: int) -> None:
        await waiters.wait(model, waiters.ticket(), deadline=_forever())
        woken.append(i)
        waiters.done(model)

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(0)  # queued in creation order
    return tasks


async def test_turns_go_first_come_first_served_as_slots_free_up() -> None:
    waiters, woken = Waiters(), list[int]()
    tasks = await _queue(waiters, "m", 4, woken)
    waiters.wake(lambda model: 2)
    assert waiters.waiting == 2
    waiters.wake(lambda model: 2)  # the same two slots: their turns are still out
    assert waiters.waiting == 2
    await asyncio.sleep(0)
    assert woken == [0, 1]
    waiters.wake(lambda model: None)  # None: everyone
    assert waiters.waiting == 0
    assert waiters.ahead("m")  # the woken have not looked yet: newcomers queue behind them
    await asyncio.gather(*tasks)
    assert woken == [0, 1, 2, 3]
    assert not waiters.waiting
    assert not waiters.ahead("m")


async def test_models_are_queued_apart() -> None:
    waiters, woken = Waiters(), list[int]()
    tasks = await _queue(waiters, "a", 1, woken) + await _queue(waiters, "b", 1, woken)
    waiters.wake(lambda model: 1 if model == "b" else 0)
    assert waiters.waiting == 1  # a's
    waiters.wake(lambda model: None)
    await asyncio.gather(*tasks)


async def test_a_waiter_that_lost_the_race_keeps_its_place() -> None:
    waiters = Waiters()
    first, order = waiters.ticket(), list[str]()

    async def one(name: str, ticket: int) -> None:
        await waiters.wait("m", ticket, deadline=_forever())
        order.append(name)
        waiters.done("m")

    task = asyncio.create_task(one("first", first))
    await asyncio.sleep(0)
    waiters.wake(lambda model: 1)
    await task  # its turn came; say it lost the race for the slot
    later = asyncio.create_task(one("later", waiters.ticket()))
    await asyncio.sleep(0)
    again = asyncio.create_task(one("first again", first))  # waits again with its ticket
    await asyncio.sleep(0)
    waiters.wake(lambda model: 1)
    await again
    assert order == ["first", "first again"]
    waiters.wake(lambda model: None)
    await later


async def test_timeout_and_cancel_leave_the_queue() -> None:
    waiters = Waiters()
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await waiters.wait("m", waiters.ticket(), deadline=loop.time() + 0.02)
    assert waiters.waiting == 0
    task = asyncio.create_task(waiters.wait("m", waiters.ticket(), deadline=_forever()))
    await asyncio.sleep(0)
    task.cancel()
    waiters.wake(lambda model: 1)  # runs before the cancelled task does: skips it
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (waiters.waiting, waiters.ahead("m")) == (0, False)


async def test_a_woken_waiter_that_is_cancelled_gives_its_turn_back() -> None:
    waiters = Waiters()
    task = asyncio.create_task(waiters.wait("m", waiters.ticket(), deadline=_forever()))
    await asyncio.sleep(0)
    waiters.wake(lambda model: 1)
    task.cancel()  # the client left just as its turn came
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not waiters.ahead("m")
