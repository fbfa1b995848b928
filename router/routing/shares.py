"""Key fairness across replicas: who may take a slot while other replicas' requests wait.

Each replica's admission queue is fair among its own keys (round robin), but replicas do not
share a queue: a replica whose releases wake its own waiters first would serve its burst
before another replica even looks. So every refresh (every 25 ms while anything waits) each
replica tells Redis which (model, API key) it has requests waiting for any node, and learns
the same of the others together with every such key's requests in flight fleet-wide (its
share). The rule, checked before a request takes a slot:

    a request of key K for model M waits while another key waits for M elsewhere in the fleet
    with fewer requests in flight than K.

The key with the lowest share is never held back, so nothing deadlocks; a burst's key defers
to a newcomer's until their shares meet, then both take turns. Requests that wait for one node
by choice (cost-aware: the fast one) are not announced, so nobody idles for them. Entries
expire a second after their replica's last refresh; without Redis, the rule is off.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping


class KeyShares:
    def __init__(self) -> None:
        self.local: Counter[str] = Counter()  # API key → this replica's leases
        self._remote: dict[str, int] = {}  # API key → other replicas' leases, as last seen
        self._waiting: dict[str, set[str]] = {}  # model → keys waiting for it elsewhere

    def share(self, key: str) -> int:
        """The key's requests in flight, fleet-wide."""
        return self._remote.get(key, 0) + self.local[key]

    def defers(self, model: str, key: str) -> bool:
        """Whether a request of `key` for `model` should leave a slot to another key."""
        waiting = self._waiting.get(model)
        if not waiting:
            return False
        mine = self.share(key)
        return any(other != key and self.share(other) < mine for other in waiting)

    def synced(
        self,
        replica: str,
        waiting: Iterable[tuple[str, str, str]],
        shares: Mapping[str, int],
        local_then: Mapping[str, int],
    ) -> None:
        """A refresh's answer: (replica, model, key) entries and fleet-wide counts per key;
        `local_then` is this replica's own count per key when the refresh was sent."""
        self._remote = {k: max(0, n - local_then.get(k, 0)) for k, n in shares.items()}
        by_model: dict[str, set[str]] = {}
        for who, model, key in waiting:
            if who != replica:
                by_model.setdefault(model, set()).add(key)
        self._waiting = by_model

    def clear(self) -> None:
        """Redis is away: no other replica is known to wait."""
        self._remote, self._waiting = {}, {}
