"""One running router per test module (`harness.live_router`): hypothesis runs each test many
times, and a router per example would cost more than the examples."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.harness import LiveRouter, live_router


@pytest.fixture(scope="module")
def live() -> Iterator[LiveRouter]:
    with live_router() as router:
        yield router
