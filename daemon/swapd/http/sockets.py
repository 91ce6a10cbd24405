"""Socket writes and reads on the relay path, with less of trio's per-call work.

trio's `SocketStream.send_all` yields to the scheduler after every send that
succeeded, so that a task that always can send still lets the others run.
On the relay path that yield bought nothing, since every request waits on a
read soon after its write, and it cost a whole scheduling round per write:
per response, per upstream request, and per event of a relayed stream.

Its `receive_some` reads first and waits only when nothing came. Where the
bytes are, as a rule, not there yet (an upstream's response head just after
the request went out, a keep-alive connection's next request), that read
was a failed system call nearly every time; `receive_some` here waits first.
A response body's next bytes are often there already (a fast stream), so
the body is read with trio's own `receive_some`.
Both keep trio's errors: `trio.BrokenResourceError` when the peer is gone,
`trio.ClosedResourceError` once the stream is closed.
"""

from __future__ import annotations

import os

import trio


async def send_all(stream: trio.abc.Stream, data: bytes) -> None:
    """`stream.send_all(data)`, with what the socket takes at once written straight to it.

    Only the rest, if the socket's buffer is full, waits through `send_all`.
    Raises as `send_all` does: `trio.BrokenResourceError` when the peer is
    gone, `trio.ClosedResourceError` once the stream is closed; a cancelled
    caller sends nothing.
    """
    if data and isinstance(stream, trio.SocketStream):
        fd = stream.socket.fileno()  # -1 once closed (never a stale number: read each time)
        if fd >= 0:
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc
            if sent == len(data):
                return
            data = data[sent:]
    await stream.send_all(data)


async def receive_some(stream: trio.abc.Stream, max_bytes: int) -> bytes:
    """`stream.receive_some(max_bytes)`, waiting for the socket before reading it."""
    if not isinstance(stream, trio.SocketStream):
        return bytes(await stream.receive_some(max_bytes))
    sock = stream.socket
    while True:
        if sock.fileno() < 0:
            raise trio.ClosedResourceError("the socket was closed")
        await trio.lowlevel.wait_readable(sock)
        try:
            return os.read(sock.fileno(), max_bytes)
        except BlockingIOError:
            continue  # woken with nothing to read after all
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc
