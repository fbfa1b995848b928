"""Raw HTTP/1.1 over asyncio sockets, for the clients no SDK would be: slow, broken, hostile.
Every read is bounded in time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from tests.conftest import Router


@dataclass
class Answer:
    status: int
    head: bytes  # the status line and headers, as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), head, headers, body)


def port_of(router: Router) -> int:
    return int(router.url.rsplit(":", 1)[1])


async def connect(router: Router) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port_of(router)), 5)


async def read_to_close(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> bytes:
    """Everything until the router closes the connection; fails if it stays open."""
    try:
        return await asyncio.wait_for(reader.read(), timeout_s)
    except ConnectionResetError:
        return b""


async def send(router: Router, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Send `data`, read until the router closes; what it answered."""
    reader, writer = await connect(router)
    try:
        writer.write(data)
        await writer.drain()
        return await read_to_close(reader, timeout_s)
    finally:
        writer.close()


def request(router: Router, method: str, path: str, body: bytes = b"", *, extra: str = "") -> bytes:
    """A complete request that asks the router to close the connection after its answer."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: Bearer {router.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body
