"""`EmulatedNode`: one emulated Ollama server on a real loopback socket, with a lifecycle.

`kill()` behaves like a crashed process (listening socket closed, every connection reset at
once); `stop()` is the graceful teardown; `restart()` binds the same port again, with fresh
per-process state (loaded models, prefix cache) but the same `faults` and `stats` objects.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from aiohttp import web

from .config import EmulatorConfig, Faults, NodeStats
from .generation import STATE
from .server import create_emulator_app, make_runner

KILL_WAIT_S = 0.5


class EmulatedNode:
    def __init__(
        self,
        config: EmulatorConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "node",
        faults: Faults | None = None,
        stats: NodeStats | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.faults = faults if faults is not None else Faults()
        self.stats = stats if stats is not None else NodeStats()
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmulatedNode(name={self.name!r}, url={self.url!r}, {state})"

    @property
    def port(self) -> int:
        """The bound port (0 until the first `start()` when constructed with port 0)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{self.name} is already running")
        app = create_emulator_app(self.config, faults=self.faults, stats=self.stats)
        runner = make_runner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        # Remember the port picked for port 0 so restart() comes back on the same one.
        self._port = int(runner.addresses[0][1])
        self._runner = runner

    async def kill(self) -> None:
        """Crash: stop listening, reset every connection, cancel every handler; fast."""
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        state = runner.app[STATE]
        state.closing.set()
        for site in list(runner.sites):
            await site.stop()
        server = runner.server
        if server is not None:
            for handler in server.connections:
                transport = handler.transport
                if transport is not None:
                    transport.abort()
        tasks = set(state.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=KILL_WAIT_S)
        await runner.cleanup()

    async def stop(self) -> None:
        """Graceful: stop listening, let running requests finish briefly, then cancel them."""
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        await runner.cleanup()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> EmulatedNode:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
