"""tenacity's `Retrying`, lighter per request: dispatch's failover policy runs on it.

tenacity's own `iter` decides every attempt (retry, stop, reraise); what is left out is what
runs on one thread, on one event loop, do not need (see `Failover`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    DoAttempt,
    DoSleep,
    Future,
    IterState,
    RetryCallState,
    Retrying,
)

T = TypeVar("T")


class Failover(Retrying):
    """tenacity's `Retrying`, one object for every request; tenacity's own `iter` decides
    every attempt (retry, stop, reraise).

    A run's own state is its `_CallState` (attempt number, outcome, timings): what tenacity's
    decisions read. The object's `iter_state` is rebuilt by every `iter` call, which never
    awaits, so the runs of one event loop's thread can share it; no per-request copy is made.
    It and `statistics` are plain attributes rather than a `threading.local` behind properties
    (one loop, one thread). `statistics` are tenacity's informational totals: here across every
    run of the policy, which the router never reads. An attempt's outcome is an `_Outcome`
    rather than a `concurrent.futures.Future` with its lock and condition."""

    # Plain class attributes shadow the base class's properties: the instance's own win.
    statistics: dict[str, Any] = {}  # noqa: RUF012 (always replaced per instance)
    iter_state: IterState = IterState()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.statistics, self.iter_state = {}, IterState()
        self.begin()  # the totals' keys, which a retry adds to

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` until tenacity's `iter` says stop: its own loop (`AsyncRetrying.__call__`)
        with a `_CallState` for the run, and no generator or attempt manager between the two.
        Runs of one policy may interleave (each awaits its attempts): see the class docstring."""
        retry_state = _CallState(self, fn=None, args=(), kwargs={})
        while True:
            do = self.iter(retry_state=retry_state)
            if isinstance(do, DoAttempt):
                try:
                    result = await attempt()
                except BaseException as exc:  # judged by `iter`: retried, raised or reraised
                    retry_state.fail(exc)
                else:
                    retry_state.set_result(result)
            elif isinstance(do, DoSleep):
                retry_state.prepare_for_next_attempt()
                self.sleep(do)
            else:
                return do  # type: ignore[no-any-return]


class _Outcome(Future):
    """One attempt's outcome, set once and read on the same thread: what tenacity reads of its
    `Future` (`failed`, `exception()`, `result()`), without `concurrent.futures`' lock."""

    def __init__(self, attempt_number: int, value: Any, exc: BaseException | None) -> None:
        # Not `Future.__init__`: its condition and lock are what this class leaves out.
        self.attempt_number, self._value, self._exc = attempt_number, value, exc

    @property
    def failed(self) -> bool:
        return self._exc is not None

    def done(self) -> bool:
        return True

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._exc

    def result(self, timeout: float | None = None) -> Any:
        if self._exc is not None:
            raise self._exc
        return self._value

    def __repr__(self) -> str:
        state = f"raised {type(self._exc).__name__}" if self._exc else "returned"
        return f"<attempt {self.attempt_number} {state}>"


class _CallState(RetryCallState):
    """One run's state; `Failover.run` records each attempt's outcome as an `_Outcome`."""

    def set_result(self, val: Any) -> None:
        self.outcome = _Outcome(self.attempt_number, val, None)
        self.outcome_timestamp = time.monotonic()

    def fail(self, exc: BaseException) -> None:
        self.outcome = _Outcome(self.attempt_number, None, exc)
        self.outcome_timestamp = time.monotonic()


def no_sleep(seconds: float) -> None:
    """Another node is tried at once (the wait is never more than zero)."""
