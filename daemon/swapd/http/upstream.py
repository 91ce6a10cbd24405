"""A thin HTTP/1.1 client for the upstreams on trio sockets, with keep-alive.

It reads the upstream socket in large reads and hands the relay the payload
of each read as one piece (llhttp parses the response, `swapd.http.parse`),
so a fast stream of small SSE events costs one downstream write per socket
read rather than one per event, and per request it does little more than format the request and
parse the response head.

Only what a relay needs: plain `http://` origins, a pool of idle keep-alive
connections per origin, a connect timeout, an optional response-head timeout,
and a body iterator that ends cleanly (with `truncated` set) when the
upstream dies mid-body.

The pool takes a connection back only when its response was read to its
framed end with nothing after it, and hands one out only when nothing is
waiting on its socket: bytes an upstream wrote past a response (after a
204, a body after HEAD, a response too many) would otherwise answer the
next client's request.
"""

from __future__ import annotations

import math
import select
from collections import defaultdict
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import trio

from swapd.http.http1 import HeadError, request_head
from swapd.http.parse import ResponseError, ResponseParser
from swapd.http.sockets import receive_some, send_all
from swapd.http.timeline import Timeline

READ_SIZE = 64 * 1024
# A request body up to this size goes out in the same write as its head.
COALESCE_BODY = 64 * 1024
DEFAULT_CONNECT_TIMEOUT = 30.0
MAX_IDLE_PER_ORIGIN = 64
# llama-server closes a kept-alive connection after 5 s idle without telling
# the client; reusing one just before that races the close. Older idle
# connections are dropped instead of tried.
IDLE_EXPIRY = 4.0
# Parsed upstream URLs kept (most recently used); a URL differs per path and query.
TARGET_CACHE = 512

Headers = list[tuple[bytes, bytes]]


class UpstreamError(Exception):
    """The upstream could not be reached or broke before sending a response head."""


@dataclass(frozen=True)
class Origin:
    host: str
    port: int

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


def split_url(url: str) -> tuple[Origin, str]:
    """An `http://host:port/base` URL as (origin, base path without a trailing slash)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", ""):
        raise UpstreamError(f"unsupported upstream scheme {parts.scheme!r} in {url!r}")
    host = parts.hostname or "127.0.0.1"
    return Origin(host, parts.port or 80), parts.path.rstrip("/")


@lru_cache(maxsize=TARGET_CACHE)
def _request_target(url: str) -> tuple[Origin, str, bytes]:
    """(origin, request target, Host value) of a full upstream URL.

    Cached: a relay sends the same few URLs over and over, and `urlsplit`
    is a visible part of its cost.
    """
    origin, _ = split_url(url)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return origin, target, origin.authority.encode()


class _Connection:
    def __init__(self, stream: trio.SocketStream, origin: Origin) -> None:
        self.stream = stream
        self.origin = origin
        self.idle_since = 0.0

    def has_input(self) -> bool:
        """Bytes (or an EOF) are waiting: an idle connection in that state is not reusable."""
        try:
            readable, _, _ = select.select([self.stream.socket.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def drop(self) -> None:
        self.stream.socket.close()

    async def close(self) -> None:
        with trio.CancelScope(shield=True):
            await self.stream.aclose()


class UpstreamResponse:
    """A response head plus its body, read on demand by `chunks()`.

    The body is parsed by llhttp as it arrives and handed out one piece per
    socket read. Always `aclose()` it (the relay does so with `aclosing`):
    a response read to its framed end, with nothing after it, returns its
    connection to the pool; anything else closes it, which is also how an
    upstream learns that its client went away.
    """

    def __init__(self, client: UpstreamClient, conn: _Connection, parser: ResponseParser) -> None:
        assert parser.head is not None
        self._client = client
        self._conn: _Connection | None = conn
        self._parser = parser
        head = parser.head
        self.status = head.status
        self.reason = head.reason.decode("latin-1")
        self.headers: Headers = head.headers
        self.truncated = False

    @property
    def complete(self) -> bool:
        return self._parser.complete

    async def _receive(self, conn: _Connection) -> bytes:
        # trio's own read, which tries the socket before waiting: a body's next
        # bytes are often there already (a fast stream), unlike a response head.
        try:
            return await conn.stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return b""

    @property
    def body_at_hand(self) -> bool:
        """Some of the body came with the head: the first piece needs no read."""
        return self._parser.has_body

    def body_if_buffered(self) -> bytes | None:
        """The whole body if it already arrived with the head, else None (use `chunks`).

        A small answer usually comes in the same socket read as its head;
        taking it here needs neither an async generator nor another read.
        """
        if self._conn is None or not self._parser.complete:
            return None
        return self._parser.take()

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives: the payload of each socket read, in one piece."""
        conn = self._conn
        parser = self._parser
        if conn is None:
            return
        while True:
            piece = parser.take()
            if piece:
                yield piece
            if parser.complete:
                return
            data = await self._receive(conn)
            if not data:
                parser.feed_eof()
                self.truncated = not parser.complete
                return
            try:
                parser.feed(data)
            except ResponseError:
                self.truncated = True
                return

    async def read(self) -> bytes:
        """The whole body (for small answers such as health checks and tests)."""
        return b"".join([chunk async for chunk in self.chunks()])

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        parser = self._parser
        if parser.complete and parser.keep_alive and not parser.spoiled:
            self._client._release(conn)
        else:
            await conn.close()


class UpstreamClient:
    """Pooled HTTP/1.1 client; one instance serves every upstream of the daemon."""

    def __init__(
        self,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_idle_per_origin: int = MAX_IDLE_PER_ORIGIN,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.max_idle_per_origin = max_idle_per_origin
        self._idle: defaultdict[Origin, list[_Connection]] = defaultdict(list)
        self._closed = False

    def _release(self, conn: _Connection) -> None:
        idle = self._idle[conn.origin]
        if self._closed or len(idle) >= self.max_idle_per_origin:
            conn.drop()
        else:
            conn.idle_since = trio.current_time()
            idle.append(conn)

    def _take_idle(self, origin: Origin) -> _Connection | None:
        """The most recently used idle connection that is young enough and quiet.

        One with bytes waiting (what an upstream wrote past its last
        response, or its close) is dropped: a request sent on it would be
        answered by those bytes.
        """
        idle = self._idle.get(origin)
        if not idle:
            return None
        horizon = trio.current_time() - IDLE_EXPIRY
        while idle and idle[0].idle_since < horizon:
            idle.pop(0).drop()
        while idle:
            conn = idle.pop()
            if not conn.has_input():
                return conn
            conn.drop()
        return None

    def forget(self, origin_url: str) -> None:
        """Close every idle connection to an upstream (its process stopped or was replaced)."""
        origin, _ = split_url(origin_url)
        for conn in self._idle.pop(origin, []):
            conn.drop()

    async def _connect(self, origin: Origin) -> _Connection:
        # "localhost" (the default proxy host) is taken as IPv4 loopback, where
        # llama-server and most local servers listen; trying ::1 first would
        # cost a refused connection on every new socket.
        host = "127.0.0.1" if origin.host == "localhost" else origin.host
        try:
            with trio.fail_after(self.connect_timeout):
                stream = await trio.open_tcp_stream(host, origin.port)
        except (OSError, trio.TooSlowError) as exc:
            raise UpstreamError(f"cannot connect to {origin.authority}: {exc}") from exc
        return _Connection(stream, origin)

    async def request(
        self,
        method: str,
        url: str,
        headers: Headers,
        body: bytes = b"",
        *,
        head_timeout: float | None = None,
        timeline: Timeline | None = None,
    ) -> UpstreamResponse:
        """Send a request and wait for the response head; the body is read later.

        `url` is the full upstream URL (path and query included). `headers`
        must not contain Host, Content-Length or Transfer-Encoding: they are set
        here. A pooled connection that turns out to be dead before any response
        byte arrived is replaced once by a fresh one.
        """
        origin, target, host = _request_target(url)
        out_headers: Headers = [(b"host", host), *headers]
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            out_headers.append((b"content-length", b"%d" % len(body)))
        try:
            head = request_head(method, target, out_headers)
        except HeadError as exc:
            raise UpstreamError(f"cannot send this request upstream: {exc}") from None
        deadline = math.inf if head_timeout is None else trio.current_time() + head_timeout
        for attempt in range(2):
            # The retry always dials anew: when one pooled connection was dead,
            # the others to the same upstream (an old process) likely are too.
            pooled = self._take_idle(origin) if attempt == 0 else None
            reused = pooled is not None
            if pooled is None:
                if timeline is not None:
                    timeline.enter("upstream connect")
                conn = await self._connect(origin)
            else:
                conn = pooled
            if timeline is not None:
                timeline.enter("upstream head")
            try:
                parser = ResponseParser(method)
                if deadline == math.inf:
                    await self._exchange(conn, head, body, parser)
                else:
                    with trio.CancelScope(deadline=deadline):
                        await self._exchange(conn, head, body, parser)
                    if parser.head is None:
                        await conn.close()
                        raise UpstreamError(
                            f"no response from {origin.authority} in {head_timeout}s"
                        )
                return UpstreamResponse(self, conn, parser)
            except _StaleConnection:
                await conn.close()
                if reused and attempt == 0:
                    self.forget(url)
                    continue
                raise UpstreamError(f"{origin.authority} closed the connection") from None
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                await conn.close()
                if reused and attempt == 0:
                    self.forget(url)
                    continue
                raise UpstreamError(f"connection to {origin.authority} failed: {exc}") from exc
            except ResponseError as exc:
                await conn.close()
                raise UpstreamError(f"bad response from {origin.authority}: {exc}") from exc
            except BaseException:
                await conn.close()
                raise
        raise AssertionError("unreachable")

    async def _exchange(
        self, conn: _Connection, head: bytes, body: bytes, parser: ResponseParser
    ) -> None:
        """Send the request; read until `parser` has the response head."""
        if len(body) <= COALESCE_BODY:
            await send_all(conn.stream, head + body)
        else:  # no copy of a large body just to save a write
            await send_all(conn.stream, head)
            await send_all(conn.stream, body)
        started = False
        while parser.head is None:
            chunk = await receive_some(conn.stream, READ_SIZE)
            if not chunk:
                if not started:
                    raise _StaleConnection
                parser.feed_eof()
                raise ResponseError("the connection closed inside the response head")
            started = True
            parser.feed(chunk)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, defaultdict(list)
        for conns in idle.values():
            for conn in conns:
                await conn.close()


class _StaleConnection(Exception):
    """The upstream closed the connection before answering."""
