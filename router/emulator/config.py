"""The emulator's knobs: static node config, run-time faults and observed stats.

`EmulatorConfig` is frozen (what the node *is*); `Faults` and `NodeStats` are mutable on purpose:
tests flip faults on a running node and read its stats.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FAULT_MODES = frozenset({"ok", "error", "busy", "hang", "drop"})
TOOL_CALL_PATHS = frozenset({"rendered", "native"})


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Static behaviour of one emulated Ollama node (times in milliseconds)."""

    models: tuple[str, ...] = ("llama3",)
    tokens_per_second: float = 0.0
    ttft_ms: float = 0.0
    max_parallel: int = 4
    max_queue: int = 512
    default_tokens: int | None = None
    load_ms: float = 0.0
    max_loaded_models: int = 0
    preloaded: bool = True
    prefix_cache: bool = False
    version: str = "0.32.15"
    # Where tool calls ride (api-reference 1.5): their own done:false line with `call_` ids
    # ("rendered") or the done line without ids ("native", llama-server's chat template).
    tool_call_path: str = "rendered"
    # Names `/api/pull` finds in the "registry"; None = any valid name.
    pullable: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models must not be empty")
        if self.max_parallel < 1:
            raise ValueError(f"max_parallel must be >= 1, got {self.max_parallel}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        if self.tokens_per_second < 0 or self.ttft_ms < 0 or self.load_ms < 0:
            raise ValueError("delays and rates must be >= 0")
        if self.default_tokens is not None and self.default_tokens < 0:
            raise ValueError(f"default_tokens must be >= 0, got {self.default_tokens}")
        if self.tool_call_path not in TOOL_CALL_PATHS:
            raise ValueError(f"tool_call_path must be one of {sorted(TOOL_CALL_PATHS)}")
        if self.max_loaded_models < 0:
            raise ValueError(f"max_loaded_models must be >= 0, got {self.max_loaded_models}")


class Faults:
    """Per-node fault switches, flipped at run time (`node.faults.mode = "busy"`).

    `mode` applies to `/api/chat`, `/api/generate` and `/api/embed` only, so health checks
    pass unless `tags_fail` is set; a node that fails everything is `EmulatedNode.kill()`.
    """

    __slots__ = (
        "_mode",
        "die_after_tokens",
        "drop_mid_stream",
        "error_rate",
        "rng",
        "slow_factor",
        "tags_fail",
    )

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self.rng = rng if rng is not None else random.Random(0)
        self._mode = "ok"
        self.error_rate = 0.0
        self.die_after_tokens: int | None = None
        self.drop_mid_stream = False
        self.slow_factor = 1.0
        self.tags_fail = False

    @property
    def mode(self) -> str:
        """`ok`, `error` (500), `busy` (503), `hang` (never answer) or `drop` (close)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in FAULT_MODES:
            raise ValueError(f"fault mode must be one of {sorted(FAULT_MODES)}, got {value!r}")
        self._mode = value

    @property
    def active(self) -> bool:
        """Whether any switch that acts before generation is on (one cheap check per request)."""
        return self._mode != "ok" or self.error_rate > 0.0

    def reset(self) -> None:
        self._mode = "ok"
        self.error_rate = 0.0
        self.die_after_tokens = None
        self.drop_mid_stream = False
        self.slow_factor = 1.0
        self.tags_fail = False

    def __repr__(self) -> str:
        return (
            f"Faults(mode={self._mode!r}, error_rate={self.error_rate}, "
            f"die_after_tokens={self.die_after_tokens}, drop_mid_stream={self.drop_mid_stream}, "
            f"slow_factor={self.slow_factor}, tags_fail={self.tags_fail})"
        )


@dataclass(slots=True)
class NodeStats:
    """What the node saw; read by tests. `record_bodies=False` keeps long benchmarks flat.

    `bodies`/`headers`: the parsed JSON body and the (case-insensitive) headers of every
    `/api/chat`, `/api/generate` and `/api/embed` request whose body was valid JSON, in
    arrival order.
    """

    in_flight: int = 0
    max_in_flight: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    cancelled: int = 0
    completed: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[Mapping[str, str]] = field(default_factory=list)  # same order as `bodies`
    record_bodies: bool = True

    def reset(self) -> None:
        """Zero the counters; `in_flight` is live state and is kept."""
        self.max_in_flight = self.in_flight
        self.requests.clear()
        self.cancelled = 0
        self.completed = 0
        self.bodies.clear()
        self.headers.clear()
