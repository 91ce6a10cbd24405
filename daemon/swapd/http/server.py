"""swapd's HTTP/1.1 server: the ASGI app on trio, one task per connection.

A general-purpose ASGI server (h11's event objects and state machine, a task
per request, its own timers) costs more CPU than the rest of a small relayed
request (`bench/bench_relay.py --relay-only` compares). This server does what
the API needs and no more: HTTP/1.1 and 1.0 with keep-alive, Content-Length
and chunked request bodies, `Expect: 100-continue`, streamed responses
(chunked, or Content-Length when the app gives one), HEAD, and ASGI's
`http.disconnect` as soon as the client goes away, which the relay turns into
cancelling the upstream request. No HTTP/2, TLS or websockets: swapd listens
on a local address or behind a reverse proxy.

Requests are parsed by llhttp (`swapd.http.parse`); where a connection is in
its life is one value of the table in `swapd.http.lifecycle`.

Bounds: a request head is at most 64 KiB, blank lines before it included
(431 above), and must arrive whole within `head_timeout` of its first byte
(408); an idle keep-alive connection is closed after `keep_alive_timeout`.
At most `max_connections` connections are open at once: one more closes the
connection that has been idle longest, or, when none is idle, is answered
503 with `Retry-After` at once (never left waiting in the listen backlog).
While a response streams, a client's pipelined bytes are read ahead by at
most 64 KiB. Responses are never cut by a timeout: a stream runs as long as
the app streams.

A malformed request gets a 4xx in the OpenAI error envelope and the
connection is closed; an app that fails before its response started gets a
500, after it started the connection is closed (the client sees a truncated
response, never a wrong one).

Shutdown (`shutdown_trigger` returns): the listeners close, idle connections
close at once, a busy one closes after its current response, and whatever
still runs `graceful_timeout` later is cancelled.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

import trio

from swapd.http.asgi import BODY_FOLLOWS, Scope
from swapd.http.errors import render_error
from swapd.http.http1 import HeadError, Headers
from swapd.http.http1 import response_head as build_head
from swapd.http.lifecycle import ConnState, Trigger, next_state
from swapd.http.parse import MAX_HEAD, Bad, Body, End, RequestHead, RequestParser
from swapd.http.sockets import receive_some, send_all

log = logging.getLogger("swapd.http")

App = Callable[[Scope, Callable[[], Awaitable[dict[str, Any]]], Any], Awaitable[None]]

READ_SIZE = 64 * 1024
MAX_READ_AHEAD = MAX_HEAD  # pipelined bytes read while a response is in progress
DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
ASGI = {"version": "3.0", "spec_version": "2.3"}
# accept() failing for lack of resources: wait a little and go on, as trio.serve_listeners does
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# After an error answer, unread input is drained this long (and this much) before the
# close, so that the client reads the answer instead of a reset.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024
MAX_REFUSING = 64  # connections being answered 503 at once; beyond, closed without a word
RETRY_AFTER = b"1"


@dataclass(frozen=True)
class ServerConfig:
    keep_alive_timeout: float = 75.0
    head_timeout: float = 10.0
    graceful_timeout: float = 2.0
    max_connections: int = 1024


class ListenError(ValueError):
    """A `--listen` address that is not HOST:PORT."""


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT` as (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ListenError(f"listen address {listen!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ListenError(f"listen address {listen!r}: put an IPv6 host in brackets, [::1]:8080")
    return host, int(port)


def _url(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The Date header value, formatted once a second."""
    global _date
    now = int(time.time())
    if now != _date[0]:
        _date = (now, formatdate(now, usegmt=True).encode())
    return _date[1]


def error_response(
    status: int, message: str, *, close: bool, reason: str | None = None, retry_after: bool = False
) -> bytes:
    """A whole error response, with the envelope body."""
    content_type, body = render_error(status, message, reason=reason)
    headers: Headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", b"%d" % len(body)),
        (b"date", http_date()),
    ]
    if retry_after:
        headers.append((b"retry-after", RETRY_AFTER))
    if close:
        headers.append((b"connection", b"close"))
    return build_head(status, headers) + body


def _address(sock: trio.socket.SocketType | None, peer: bool) -> tuple[str, int] | None:
    if sock is None:
        return None
    try:
        name = sock.getpeername() if peer else sock.getsockname()
    except OSError:
        return None
    return (str(name[0]), int(name[1])) if isinstance(name, tuple) else None


class Server:
    """Serves one ASGI app on the listeners of `serve`."""

    def __init__(self, app: App, config: ServerConfig | None = None) -> None:
        self.app = app
        self.config = config or ServerConfig()
        self.closing = False
        self._connections: set[Connection] = set()
        self._refusing = 0

    async def serve(
        self,
        listen: str,
        *,
        shutdown_trigger: Callable[[], Awaitable[Any]],
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until `shutdown_trigger()` returns, then stop as the module says."""
        host, port = parse_listen(listen)
        listeners = await trio.open_tcp_listeners(port, host=host)
        urls = [_url(lst.socket.getsockname()) for lst in listeners]
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._accept, listener, connections)
                for url in urls:
                    log.info("listening on %s", url)
                task_status.started(urls)
                await shutdown_trigger()
                accepting.cancel_scope.cancel()
            self.closing = True
            for connection in list(self._connections):
                connection.close_if_idle()
            connections.cancel_scope.deadline = trio.current_time() + self.config.graceful_timeout

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in RESOURCE_ERRNOS:
                        raise
                    log.warning("accept failed (%s); retrying in 100 ms", exc)
                    await trio.sleep(0.1)
                    continue
                if len(self._connections) >= self.config.max_connections and not self._evict():
                    if self._refusing >= MAX_REFUSING:
                        await trio.aclose_forcefully(stream)
                    else:
                        self._refusing += 1
                        nursery.start_soon(self._refuse, stream)
                    continue
                connection = Connection(self, stream)
                self._connections.add(connection)
                nursery.start_soon(self._serve_connection, connection)

    def _evict(self) -> bool:
        """Make room by closing the connection idle longest; False when none is idle."""
        idle = [c for c in self._connections if c.evictable]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since)
        oldest.close_if_idle()
        self._connections.discard(oldest)  # its slot is free now; its task ends by itself
        return True

    async def _refuse(self, stream: trio.SocketStream) -> None:
        """Over capacity: 503 at once, then close."""
        try:
            message = (
                f"swapd is serving its maximum of {self.config.max_connections} connections; "
                "retry shortly"
            )
            data = error_response(
                503, message, close=True, reason="over_capacity", retry_after=True
            )
            with trio.move_on_after(LINGER_SECONDS):
                await stream.send_all(data)
                await _linger(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self._refusing -= 1
            await trio.aclose_forcefully(stream)

    async def _serve_connection(self, connection: Connection) -> None:
        try:
            await connection.run()
        except Exception:
            log.exception("HTTP connection from %s failed", connection.client)
        finally:
            self._connections.discard(connection)
            await trio.aclose_forcefully(connection.stream)


async def _linger(stream: trio.abc.Stream) -> None:
    """Half-close, then read and drop what the client still sends (bounded by the caller)."""
    if isinstance(stream, trio.abc.HalfCloseableStream):
        await stream.send_eof()
    drained = 0
    while drained < LINGER_BYTES:
        data = await stream.receive_some(READ_SIZE)
        if not data:
            return
        drained += len(data)


class Connection:
    """One client connection: requests one after another (keep-alive)."""

    def __init__(self, server: Server, stream: trio.abc.Stream) -> None:
        self.server = server
        self.stream = stream
        self.state = ConnState.IDLE
        self.parser = RequestParser()
        self.eof = False
        self.read_ahead = 0  # bytes read while a response was in progress
        self.linger = False  # closing with client input perhaps unread
        self.idle_since = trio.current_time()
        sock = stream.socket if isinstance(stream, trio.SocketStream) else None
        self.client = _address(sock, peer=True)
        self.local = _address(sock, peer=False)
        self._idle: trio.CancelScope | None = None

    def fire(self, trigger: Trigger) -> None:
        self.state = next_state(self.state, trigger)

    @property
    def evictable(self) -> bool:
        """Idle between requests, with nothing of a next request received."""
        return self._idle is not None and not self.parser.events

    def close_if_idle(self) -> None:
        """Shutdown or eviction: a connection waiting for its next request closes now."""
        if self._idle is not None:
            self._idle.cancel()

    async def recv(self) -> bytes | bytearray:
        """The next bytes from the client; b"" once it has gone."""
        try:
            return await receive_some(self.stream, READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def pull(self) -> bool:
        """Read and parse the next bytes; False once the client has gone."""
        data = await self.recv()
        if not data:
            self.eof = True
            return False
        self.parser.feed(data)
        return True

    async def write(self, data: bytes) -> bool:
        """Send `data`; False when the client has gone."""
        try:
            await send_all(self.stream, data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def run(self) -> None:
        while True:
            head = await self._next_head()
            if head is None:
                break
            await self._exchange(head)
            if self.state is not ConnState.IDLE:
                break
        if self.linger and not self.eof:
            with trio.move_on_after(LINGER_SECONDS):
                try:
                    await _linger(self.stream)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

    async def _answer_and_close(self, bad: Bad, *, retry_after: bool = False) -> None:
        """Refuse a request (HEAD -> CLOSING -> CLOSED)."""
        self.fire(Trigger.CLOSE)
        self.linger = True
        response = error_response(
            bad.status, bad.message, close=True, reason=bad.reason, retry_after=retry_after
        )
        await self.write(response)
        self.fire(Trigger.RESPONSE_DONE)

    async def _next_head(self) -> RequestHead | None:
        """IDLE -> HEAD -> BODY with the next request's head; None once the connection ends.

        The keep-alive wait is one cancel scope, with its deadline, that an
        eviction or a shutdown also cancels; the head's own deadline needs a
        scope only when the first read did not bring the whole head (a scope
        costs every request some microseconds; most heads come in one read).
        """
        parser = self.parser
        events = parser.events
        if not events and not parser.head_started:
            if self.server.closing:
                self.fire(Trigger.CLOSE)
                return None
            self.idle_since = trio.current_time()
            deadline = self.idle_since + self.server.config.keep_alive_timeout
            got = False
            with trio.CancelScope(deadline=deadline) as self._idle:
                got = await self.pull()
            self._idle = None
            if not got:
                self.fire(Trigger.EOF if self.eof else Trigger.CLOSE)
                return None
        self.fire(Trigger.BYTES)
        self.read_ahead = 0
        first = events[0] if events else None
        if isinstance(first, RequestHead):  # the whole head came in: no deadline to keep
            events.popleft()
            self.fire(Trigger.HEAD_DONE)
            return first
        timeout = self.server.config.head_timeout
        with trio.move_on_after(timeout):
            while True:
                if events:
                    event = events.popleft()
                    if isinstance(event, RequestHead):
                        self.fire(Trigger.HEAD_DONE)
                        return event
                    if isinstance(event, Bad):
                        await self._answer_and_close(event)
                        return None
                    raise AssertionError(f"{event!r} before a request head")
                if not await self.pull():
                    self.fire(Trigger.EOF)
                    return None
        message = f"the request head did not arrive within {timeout:g} s"
        await self._answer_and_close(Bad(408, message, "head_timeout"))
        return None

    async def _exchange(self, head: RequestHead) -> None:
        """Run the app for one request; leaves the connection IDLE or CLOSED."""
        try:
            exchange = Exchange(self, head)
        except _BadRequest as exc:
            self.fire(Trigger.CLOSE)
            self.linger = True
            response = error_response(exc.status, exc.message, close=True, reason=exc.reason)
            await self.write(response)
            self.fire(Trigger.RESPONSE_DONE)
            return
        try:
            await self.server.app(exchange.scope(), exchange.receive, exchange.send)
        except Exception as exc:
            log.exception("error while serving %s %s", head.method, exchange.path)
            exchange.close()
            if not exchange.started:
                message = f"internal error: {type(exc).__name__}: {exc}"
                exchange.started = exchange.finished = True
                await self.write(error_response(500, message, close=True))
        await exchange.after_app()


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


class Exchange:
    """One request and its response: the ASGI receive and send of one app call."""

    def __init__(self, connection: Connection, head: RequestHead) -> None:
        self.connection = connection
        self.head = head
        self.http10 = head.http_version == b"1.0"
        coding: bytes | None = None
        self.expect = False
        for name, value in head.headers:
            if name == b"transfer-encoding":
                coding = value if coding is None else coding + b"," + value
            elif name == b"expect":
                self.expect = value.lower() == b"100-continue"
        if coding is not None and (
            self.http10 or [c.strip().lower() for c in coding.split(b",")] != [b"chunked"]
        ):
            shown = coding.decode("latin-1")
            raise _BadRequest(501, f"unsupported Transfer-Encoding {shown}", "transfer_encoding")
        target = head.target
        if target.startswith((b"http://", b"https://")):  # absolute form (RFC 9112 §3.2.2)
            rest = target.split(b"//", 1)[1]
            slash = rest.find(b"/")
            target = rest[slash:] if slash >= 0 else b"/"
        self.raw_path, _, self.query = target.partition(b"?")
        if not self.raw_path.isascii() or not self.query.isascii():
            raise _BadRequest(400, "the request target is not ASCII", "malformed_request")
        self.path = unquote(self.raw_path.decode("ascii"))
        # what was read of the request
        self.body_complete = False
        self.body_error = ""
        self.final_sent = False  # the last http.request message went to the app
        events = connection.parser.events
        if events and isinstance(events[0], End):  # no body: parsed with the head
            events.popleft()
            self.body_complete = True
            connection.fire(Trigger.BODY_DONE)
        # the response
        self.started = False
        self.finished = False
        self.framing = ""  # length | chunked | close | none
        self.to_send = 0
        self.pending = b""  # a response head held back to go out with the body
        self.written = False  # some of the response went out
        self._waiter: trio.CancelScope | None = None

    def scope(self) -> Scope:
        head = self.head
        return {
            "type": "http",
            "asgi": ASGI,
            "http_version": "1.0" if self.http10 else "1.1",
            "method": head.method,
            "scheme": "http",
            "path": self.path,
            "raw_path": self.raw_path,
            "query_string": self.query,
            "root_path": "",
            "headers": head.headers,
            "client": self.connection.client,
            "server": self.connection.local,
            "extensions": {},
        }

    def close(self) -> None:
        """This exchange is the connection's last."""
        if self.connection.state is not ConnState.CLOSED:
            self.connection.fire(Trigger.CLOSE)

    # ----- receive -----------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if self.final_sent or self.connection.eof:
            return await self._wait_disconnect()
        if self.body_complete:
            self.final_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        piece = await self._body_piece()
        if piece is None:  # the client left, or sent a body that cannot be read
            return DISCONNECT
        self.final_sent = self.body_complete
        return {"type": "http.request", "body": piece, "more_body": not self.body_complete}

    async def _body_piece(self) -> bytes | None:
        """The next piece of the request body; None if the client left or sent garbage."""
        connection = self.connection
        events = connection.parser.events
        if self.body_error:
            return None
        if self.expect and not events and not self.started:
            self.expect = False
            if not await connection.write(CONTINUE):
                self._lost()
                return None
        pieces: list[bytes] = []
        while True:
            while events:
                event = events[0]
                if isinstance(event, Body):
                    pieces.append(event.data)
                    events.popleft()
                elif isinstance(event, End):
                    events.popleft()
                    self.body_complete = True
                    connection.fire(Trigger.BODY_DONE)
                    return b"".join(pieces)
                elif isinstance(event, Bad):
                    self.body_error = event.message
                    connection.linger = True
                    self.close()
                    return None
                else:
                    raise AssertionError(f"{event!r} inside a request body")
            if pieces:
                return b"".join(pieces)
            if not await connection.pull():
                self._lost()
                return None

    async def _wait_disconnect(self) -> dict[str, Any]:
        """Block until the client goes away or the response is complete (ASGI's disconnect)."""
        connection = self.connection
        if self.finished or connection.eof:
            return DISCONNECT
        with trio.CancelScope() as self._waiter:
            while True:
                if connection.read_ahead > MAX_READ_AHEAD or connection.parser.failed:
                    await trio.sleep_forever()  # a pipelining client: stop reading ahead
                data = await connection.recv()
                if not data:
                    self._lost()
                    break
                connection.read_ahead += len(data)
                connection.parser.feed(data)
        self._waiter = None
        return DISCONNECT

    def _lost(self) -> None:
        connection = self.connection
        if not connection.eof:
            connection.eof = True
        if connection.state is not ConnState.CLOSED:
            connection.fire(Trigger.EOF)
        if self._waiter is not None:
            self._waiter.cancel()

    # ----- send --------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            status, headers = int(message["status"]), message.get("headers") or []
            await self._start(status, headers, bool(message.get(BODY_FOLLOWS)))
        elif kind == "http.response.body":
            await self._body(bytes(message.get("body", b"")), bool(message.get("more_body")))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _start(self, status: int, app_headers: Any, body_follows: bool = False) -> None:
        if self.started:
            raise RuntimeError("the response has already started")
        self.started = True
        headers: Headers = []
        length: int | None = None
        keep_alive = self.head.keep_alive
        for raw_name, raw_value in app_headers:
            name = bytes(raw_name).lower()
            value = bytes(raw_value)
            if name == b"content-length":
                if not value.strip().isdigit():
                    raise RuntimeError(f"the app sent a bad Content-Length {value!r}")
                length = int(value)
                continue
            if name == b"connection":
                if b"close" in value.lower():
                    keep_alive = False
                continue
            if name in (b"transfer-encoding", b"keep-alive", b"date"):
                continue  # framing and connection management are this server's
            headers.append((name, value))
        if self.head.method == "HEAD" or status in (204, 304) or status < 200:
            self.framing = "none"
        elif length is not None:
            self.framing = "length"
            self.to_send = length
        elif self.http10:
            self.framing = "close"
            keep_alive = False
        else:
            self.framing = "chunked"
            headers.append((b"transfer-encoding", b"chunked"))
        if length is not None and status not in (204, 304):
            headers.append((b"content-length", b"%d" % length))
        connection = self.connection
        if connection.server.closing or not self.body_complete:
            keep_alive = False  # an unread request body cannot be skipped safely
        if not keep_alive:
            self.close()
        if connection.state is ConnState.CLOSING or connection.state is ConnState.CLOSED:
            headers.append((b"connection", b"close"))
        elif self.http10:
            headers.append((b"connection", b"keep-alive"))
        headers.append((b"date", http_date()))
        try:
            head = build_head(status, headers)
        except HeadError as exc:
            raise RuntimeError(f"the app sent a bad header: {exc}") from None
        if body_follows or self.framing in ("length", "none"):
            self.pending = head  # the body follows at once: one write for both
        else:
            await self._write(head)  # a stream: its head goes out now

    async def _body(self, body: bytes, more: bool) -> None:
        if not self.started:
            raise RuntimeError("response body before http.response.start")
        if self.finished:
            return
        framing = self.framing
        if framing == "chunked":
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more:
                data += b"0\r\n\r\n"
        elif framing == "length":
            if len(body) > self.to_send:
                log.error("the app sent more than its Content-Length; response cut")
                body = body[: self.to_send]
                more = False
            self.to_send -= len(body)
            data = body
            if not more and self.to_send:
                self.close()  # short of its Content-Length: the close tells
        elif framing == "none":
            data = b""
        else:
            data = body
        if self.pending:
            data = self.pending + data
            self.pending = b""
        if not more:
            self.finished = True
            if self._waiter is not None:
                self._waiter.cancel()
        if data:
            await self._write(data)

    async def _write(self, data: bytes) -> None:
        if self.connection.eof or self.body_error:  # after a bad body, only the 400 goes out
            return
        self.written = True
        if not await self.connection.write(data):
            self._lost()

    async def after_app(self) -> None:
        """What the app left undone, then RESPONSE_DONE: the connection is IDLE or CLOSED."""
        connection = self.connection
        if self.body_error:
            if not self.written and not connection.eof:
                await connection.write(
                    error_response(400, self.body_error, close=True, reason="malformed_request")
                )
        elif not self.started:
            self.close()
            if not connection.eof:
                await self._write(error_response(500, "the app sent no response", close=True))
        elif self.pending:
            await self._write(self.pending)
            self.pending = b""
        if not self.finished or not self.body_complete:
            self.close()
        connection.fire(Trigger.RESPONSE_DONE)
