"""`swapd.http.sockets.send_all`: straight to the socket, and `send_all`'s behaviour otherwise."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from swapd.http.sockets import receive_some, send_all

pytestmark = pytest.mark.trio


def _pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = trio.socket.socketpair()
    return trio.SocketStream(a), trio.SocketStream(b)


async def _read(stream: trio.SocketStream, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = await stream.receive_some(1 << 20)
        assert chunk
        got += chunk
    return bytes(got)


class _Steps(trio.abc.Instrument):
    """Counts the times a task gave the scheduler its turn (the end of one of its steps)."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.yields = 0

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.yields += 1


async def test_what_the_socket_takes_goes_out_without_a_scheduling_round() -> None:
    left, right = _pair()
    async with left, right:
        steps = _Steps(trio.lowlevel.current_task())
        trio.lowlevel.add_instrument(steps)
        try:
            await send_all(left, b"hello")
        finally:
            trio.lowlevel.remove_instrument(steps)
        assert steps.yields == 0
        assert await right.receive_some(10) == b"hello"


async def test_more_than_the_buffer_holds_waits_for_the_rest_and_arrives_whole() -> None:
    left, right = _pair()
    left.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = bytes(range(256)) * 4096  # 1 MiB: far more than the buffers
    async with left, right:
        async with trio.open_nursery() as nursery:
            received: list[bytes] = []

            async def reader() -> None:
                received.append(await _read(right, len(data)))

            nursery.start_soon(reader)
            await send_all(left, data)
        assert received == [data]


async def test_a_peer_gone_is_a_broken_resource() -> None:
    left, right = _pair()
    await right.aclose()
    async with left:
        with pytest.raises(trio.BrokenResourceError):
            for _ in range(100):  # the first writes may still be buffered
                await send_all(left, b"x" * 65536)


async def test_a_closed_stream_is_a_closed_resource() -> None:
    left, right = _pair()
    await left.aclose()
    async with right:
        with pytest.raises(trio.ClosedResourceError):
            await send_all(left, b"late")


async def test_a_cancelled_caller_sends_nothing() -> None:
    left, right = _pair()
    async with left, right:
        with trio.CancelScope() as scope:
            scope.cancel()
            await send_all(left, b"never")
        await send_all(left, b"after")
        assert await right.receive_some(10) == b"after"


async def test_receive_waits_for_bytes_then_reads_them() -> None:
    left, right = _pair()
    async with left, right, trio.open_nursery() as nursery:
        got: list[bytes] = []

        async def reader() -> None:
            got.append(await receive_some(right, 100))

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        await left.send_all(b"answer")
    assert got == [b"answer"]


async def test_receive_of_a_peer_gone_is_empty_and_of_a_closed_stream_an_error() -> None:
    left, right = _pair()
    await left.aclose()
    assert await receive_some(right, 100) == b""
    await right.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await receive_some(right, 100)
