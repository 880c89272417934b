"""A DynamoDB-speaking server on 127.0.0.1 that answers each request from a script, with the
headers asked for (``x-amz-crc32`` right, wrong or absent; a ``Date``), and keeps what it saw."""

from __future__ import annotations

import asyncio
import email.utils
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

#: ``crc`` of an `Answer`: the body's CRC32, a wrong one, or no header.
RIGHT, WRONG, NONE = "right", "wrong", "none"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    crc: str = RIGHT
    date_offset: float = 0.0  # seconds the server's Date header is ahead of this machine's clock

    def encode(self, now: float) -> bytes:
        headers = [
            f"HTTP/1.1 {self.status} X",
            "Content-Type: application/x-amz-json-1.0",
            f"Content-Length: {len(self.body)}",
            f"Date: {email.utils.formatdate(now + self.date_offset, usegmt=True)}",
            "x-amzn-RequestId: R1",
        ]
        if self.crc == RIGHT:
            headers.append(f"x-amz-crc32: {zlib.crc32(self.body)}")
        elif self.crc == WRONG:
            headers.append(f"x-amz-crc32: {(zlib.crc32(self.body) + 1) % 2**32}")
        return ("\r\n".join(headers) + "\r\n\r\n").encode() + self.body


@dataclass
class Answering:
    """Answers request n with ``script[n]`` (the last one again once the script runs out), or
    with ``respond(headers)`` when given; ``seen`` holds each request's headers. The first
    ``gather`` requests are answered only once all of them have arrived."""

    script: deque[Answer] = field(default_factory=deque)
    respond: Callable[[dict[str, str]], Answer] | None = None
    seen: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    gather: int = 0
    _gathered: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if value:
                        headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.seen.append(headers)
                if len(self.seen) >= self.gather:
                    self._gathered.set()
                if len(self.seen) <= self.gather:
                    await self._gathered.wait()
                if self.respond is not None:
                    answer = self.respond(headers)
                else:
                    answer = self.script.popleft() if len(self.script) > 1 else self.script[0]
                writer.write(answer.encode(time.time()))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def answering(state: Answering) -> AsyncIterator[Answering]:
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state
        server.close()
