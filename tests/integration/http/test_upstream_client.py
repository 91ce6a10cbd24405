"""The h11 upstream client against small in-process trio servers (real sockets)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio

from swapd.http.upstream import UpstreamClient, UpstreamError, split_url

Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def read_head(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    return data


async def serving(nursery: trio.Nursery, handler: Handler) -> str:
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_split_url() -> None:
    origin, base = split_url("http://localhost:5800/base/")
    assert (origin.host, origin.port, base) == ("localhost", 5800, "/base")
    with pytest.raises(UpstreamError):
        split_url("https://x")


@pytest.mark.trio
async def test_keep_alive_reuse_and_chunked_body() -> None:
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        for _ in range(2):
            head = await read_head(stream)
            if not head:
                return
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            )

    async with trio.open_nursery() as nursery:
        url = await serving(nursery, handler)
        client = UpstreamClient()
        for _ in range(2):
            response = await client.request("GET", url + "/x", [])
            assert response.status == 200
            assert await response.read() == b"abcde"
            await response.aclose()
        assert connections == 1
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_stale_pooled_connection_is_replaced() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await stream.aclose()  # keep-alive announced, but the server closes

    async with trio.open_nursery() as nursery:
        url = await serving(nursery, handler)
        client = UpstreamClient()
        for _ in range(3):
            response = await client.request("POST", url, [], b"{}")
            assert await response.read() == b"ok"
            await response.aclose()
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_death_mid_body_is_a_clean_truncated_end() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ndata\r\n")
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        url = await serving(nursery, handler)
        client = UpstreamClient()
        response = await client.request("GET", url, [])
        assert await response.read() == b"data"
        assert response.truncated and not response.complete
        await response.aclose()
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_unreachable_and_head_timeout(autojump_clock: trio.testing.MockClock) -> None:
    client = UpstreamClient()
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UpstreamError, match="cannot connect"):
        await client.request("GET", f"http://127.0.0.1:{port}/", [])

    async def silent(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        url = await serving(nursery, silent)
        with pytest.raises(UpstreamError, match="no response"):
            await client.request("GET", url, [], head_timeout=60)
        nursery.cancel_scope.cancel()
    await client.aclose()


async def _concurrent_gets(client: UpstreamClient, url: str, n: int) -> None:
    """n requests in flight at once, so the pool ends up with n idle connections."""
    ready = trio.Event()
    count = 0

    async def one() -> None:
        nonlocal count
        response = await client.request("GET", url, [])
        count += 1
        if count == n:
            ready.set()
        await ready.wait()  # hold every connection until all n are open
        assert await response.read() == b"ok"
        await response.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)


@pytest.mark.trio
async def test_every_pooled_connection_dead_still_gets_through() -> None:
    """An upstream restarted on the same port: all pooled sockets are dead, the request is not."""
    live: list[trio.SocketStream] = []

    async def handler(stream: trio.SocketStream) -> None:
        live.append(stream)
        with contextlib.suppress(trio.ClosedResourceError):
            while await read_head(stream):
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async with trio.open_nursery() as nursery:
        url = await serving(nursery, handler)
        client = UpstreamClient()
        await _concurrent_gets(client, url, 4)
        assert len(live) == 4
        for stream in live:  # the "old process" goes away without a word
            await stream.aclose()
        response = await client.request("GET", url, [])
        assert await response.read() == b"ok"
        await response.aclose()
        assert len(live) == 5  # the retry dialled anew instead of trying the next dead one
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_old_idle_connections_are_not_trusted(autojump_clock: trio.abc.Clock) -> None:
    accepted = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        while await read_head(stream):
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async with trio.open_nursery() as nursery:
        url = await serving(nursery, handler)
        client = UpstreamClient()
        for pause in (0, 1, 10):
            await trio.sleep(pause)
            response = await client.request("GET", url, [])
            assert await response.read() == b"ok"
            await response.aclose()
        # reused after 1 s idle, dialled anew after 10 s (beyond IDLE_EXPIRY)
        assert accepted == 2
        client.forget(url)
        response = await client.request("GET", url, [])
        await response.read()
        await response.aclose()
        assert accepted == 3
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_body_that_came_with_the_head_is_taken_whole() -> None:
    accepted = 0
    more = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        await read_head(stream)  # 1: head and body in one write
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await read_head(stream)  # 2: 204, no body
        await stream.send_all(b"HTTP/1.1 204 No Content\r\n\r\n")
        await read_head(stream)  # 3: the body comes later
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        await more.wait()
        await stream.send_all(b"later")
        await read_head(stream)  # 4: a byte beyond Content-Length spoils the connection
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokX")

    async with trio.open_nursery() as nursery:
        url = await serving(nursery, handler)
        client = UpstreamClient()
        response = await client.request("GET", url, [])
        assert response.body_if_buffered() == b"ok" and response.complete
        await response.aclose()
        response = await client.request("GET", url, [])
        assert response.body_if_buffered() == b"" and response.complete
        await response.aclose()
        response = await client.request("GET", url, [])
        assert response.body_if_buffered() is None and not response.complete
        more.set()
        assert await response.read() == b"later"
        await response.aclose()
        response = await client.request("GET", url, [])
        assert response.body_if_buffered() == b"ok"
        await response.aclose()
        assert accepted == 1  # one connection, reused while the exchanges were clean
        response = await client.request("GET", url, [])
        await response.aclose()
        assert accepted == 2  # ... and dropped after the stray byte
        await client.aclose()
        nursery.cancel_scope.cancel()
