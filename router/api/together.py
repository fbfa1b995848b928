"""Several upstream calls of one request, run concurrently (the parts of an embeddings batch,
the choices of an `n` > 1 answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def all_of(calls: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Every call's result, in order, run concurrently; the first failure cancels the others
    (their slots come back) and is raised as itself, not as an ExceptionGroup, so the error
    boundary tells the client what went wrong."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except ExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return [task.result() for task in tasks]
