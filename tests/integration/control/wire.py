"""A minimal trio client for server tests: raw lines in, decoded messages out."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import msgspec
import trio

from swapctl import codec
from swapctl import protocol as p

TIMEOUT = 10


class WireClient:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.decoder = codec.server_decoder()
        self.closed = False
        self.stashed: deque[Any] = deque()
        """Events that arrived while `request` waited for its reply; `receive` yields them first."""

    @classmethod
    async def connect(cls, path: Path, *, hello: bool = True) -> WireClient:
        client = cls(await trio.open_unix_socket(str(path)))
        if hello:
            await client.send(p.Hello(client="test"))
            welcome = await client.receive()
            assert isinstance(welcome, p.Welcome), welcome
        return client

    async def send(self, message: msgspec.Struct) -> None:
        await self.stream.send_all(codec.encode(message))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive(self, wait: float = TIMEOUT) -> Any:
        """The next message within `wait` seconds; EOFError when the daemon closed."""
        if self.stashed:
            return self.stashed.popleft()
        return await self._receive(wait)

    async def _receive(self, wait: float = TIMEOUT) -> Any:
        with trio.fail_after(wait):
            while True:
                item = self.decoder.next()
                if item is not None:
                    assert not isinstance(item, codec.BadLine), item
                    return item
                if self.closed:
                    raise EOFError
                data = await self.stream.receive_some(65536)
                self.decoder.feed(data)
                if not data:
                    self.closed = True

    async def request(self, message: msgspec.Struct) -> Any:
        """Send, then return the reply: the first message that is not an event."""
        await self.send(message)
        while True:
            reply = await self._receive()
            if not isinstance(reply, (p.Event, p.Lagged)):
                return reply
            self.stashed.append(reply)

    async def aclose(self) -> None:
        await self.stream.aclose()
