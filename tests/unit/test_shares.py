"""Key fairness across replicas (`routing.shares`): who leaves a slot to whom."""

from __future__ import annotations

import pytest

from router.routing.shares import KeyShares

ME = "r1"


def _shares(
    waiting: list[tuple[str, str, str]], fleet: dict[str, int], local: dict[str, int]
) -> KeyShares:
    shares = KeyShares()
    shares.local.update(local)
    shares.synced(ME, waiting, fleet, local)
    return shares


@pytest.mark.parametrize(
    ("waiting", "fleet", "local", "model", "key", "defers"),
    [
        ([], {}, {"a": 4}, "m", "a", False),
        ([("r2", "m", "b")], {"a": 4, "b": 0}, {"a": 4}, "m", "a", True),
        ([("r2", "m", "b")], {"a": 4, "b": 0}, {"a": 4}, "other", "a", False),
        ([("r2", "m", "b")], {"a": 2, "b": 2}, {"a": 2}, "m", "a", False),
        ([("r2", "m", "b")], {"a": 1, "b": 3}, {"a": 1}, "m", "a", False),
        ([("r2", "m", "a")], {"a": 0}, {}, "m", "a", False),
        ([("r1", "m", "b")], {"a": 4, "b": 0}, {"a": 4}, "m", "a", False),
        ([("r2", "m", "b")], {"b": 1}, {}, "m", "a", False),
    ],
    ids=[
        "nobody-waits",
        "smaller-share-waits-elsewhere",
        "another-model",
        "equal-shares-take-turns",
        "larger-share-waits",
        "same-key",
        "own-waiters-are-the-queues-business",
        "new-key-has-no-share",
    ],
)
def test_defers(
    waiting: list[tuple[str, str, str]],
    fleet: dict[str, int],
    local: dict[str, int],
    model: str,
    key: str,
    defers: bool,
) -> None:
    assert _shares(waiting, fleet, local).defers(model, key) is defers


def test_share_is_others_as_last_seen_plus_ours_now() -> None:
    shares = _shares([], {"a": 5}, {"a": 2})  # 3 elsewhere
    shares.local["a"] += 1
    assert shares.share("a") == 6
    shares.clear()
    assert shares.share("a") == 3
