"""A loopback TCP proxy in front of redis-server that can lose one answer.

The fault a router must tell apart from Redis being gone: the command reaches Redis (and runs
there), but its answer never comes back, as when a network drops it or the answer comes too
late. Everything else passes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib


class LossyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.lost = 0  # answers dropped so far
        self._marker: bytes | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def lose_answer_to(self, marker: bytes) -> None:
        """The next command whose bytes contain `marker` reaches Redis; its answer is dropped."""
        self._marker = marker

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        drop = asyncio.Event()  # set: the next answer on this connection is lost

        async def requests() -> None:
            while data := await reader.read(65536):
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    drop.set()
                up_writer.write(data)
                await up_writer.drain()

        async def answers() -> None:
            # Redis answers one command at a time here (the router does not pipeline), so the
            # next chunk after a marked command is its whole answer.
            while data := await up_reader.read(65536):
                if drop.is_set():
                    drop.clear()
                    self.lost += 1
                    continue
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.create_task(requests()), asyncio.create_task(answers())]
        try:
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            for task in pumps:
                task.cancel()
            writer.close()
            up_writer.close()
