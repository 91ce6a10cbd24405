"""swapd's HTTP/1.1 server: the ASGI app on trio, one task per connection.

hypercorn spent about 0.7 ms of CPU per request in the relay's profile (h11's
event objects and state machine, a task per request, its own timers), which
was most of the latency swapd added to a small request. This server does what
the API needs and no more: HTTP/1.1 and 1.0 with keep-alive, Content-Length
and chunked request bodies, `Expect: 100-continue`, streamed responses
(chunked, or Content-Length when the app gives one), HEAD, and ASGI's
`http.disconnect` as soon as the client goes away, which the relay turns into
cancelling the upstream request. No HTTP/2, TLS or websockets: swapd listens
on a local address or behind a reverse proxy.

Bounds: a request head is at most 64 KiB (431 above); at most
`max_connections` connections are served at once (more wait in the kernel's
backlog); an idle keep-alive connection is closed after `keep_alive_timeout`,
and a request head must arrive whole within it. Responses are never cut by a
timeout: a stream runs as long as the app streams.

A malformed request gets a 400 in the OpenAI error envelope and the
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

from swapd.http.asgi import Scope
from swapd.http.chunked import ChunkedDecoder, ChunkedError
from swapd.http.errors import render_error
from swapd.http.http1 import MAX_HEAD, HeadError, Headers, RequestHead, parse_request_head
from swapd.http.http1 import response_head as build_head

log = logging.getLogger("swapd.http")

App = Callable[[Scope, Callable[[], Awaitable[dict[str, Any]]], Any], Awaitable[None]]

READ_SIZE = 64 * 1024
DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
ASGI = {"version": "3.0", "spec_version": "2.3"}
# accept() failing for lack of resources: wait a little and go on, as trio.serve_listeners does
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


@dataclass(frozen=True)
class ServerConfig:
    keep_alive_timeout: float = 75.0
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


_date = [0, b""]


def http_date() -> bytes:
    """The Date header value, formatted once a second."""
    now = int(time.time())
    if now != _date[0]:
        _date[0], _date[1] = now, formatdate(now, usegmt=True).encode()
    return _date[1]


def error_response(status: int, message: str, *, close: bool) -> bytes:
    """A whole error response, with the envelope body."""
    content_type, body = render_error(status, message)
    headers: Headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", b"%d" % len(body)),
        (b"date", http_date()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    return build_head(status, headers) + body


class Server:
    """Serves one ASGI app on the listeners of `serve`."""

    def __init__(self, app: App, config: ServerConfig | None = None) -> None:
        self.app = app
        self.config = config or ServerConfig()
        self.closing = False
        self._connections: set[_Connection] = set()
        self._slots = trio.Semaphore(self.config.max_connections)

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
                await self._slots.acquire()
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    self._slots.release()
                    if exc.errno not in RESOURCE_ERRNOS:
                        raise
                    log.warning("accept failed (%s); retrying in 100 ms", exc)
                    await trio.sleep(0.1)
                    continue
                except BaseException:
                    self._slots.release()
                    raise
                nursery.start_soon(self._serve_connection, stream)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        connection = _Connection(self, stream)
        self._connections.add(connection)
        try:
            await connection.run()
        except Exception:
            log.exception("HTTP connection from %s failed", connection.client)
        finally:
            self._connections.discard(connection)
            self._slots.release()
            await trio.aclose_forcefully(stream)


def _address(sock: Any, peer: bool) -> tuple[str, int] | None:
    try:
        name = sock.getpeername() if peer else sock.getsockname()
    except OSError:
        return None
    return (str(name[0]), int(name[1])) if isinstance(name, tuple) else None


class _Connection:
    """One client connection: requests one after another (keep-alive)."""

    def __init__(self, server: Server, stream: trio.SocketStream) -> None:
        self.server = server
        self.stream = stream
        self.buf = bytearray()
        sock = getattr(stream, "socket", None)
        self.client = _address(sock, peer=True)
        self.local = _address(sock, peer=False)
        self._idle: trio.CancelScope | None = None

    def close_if_idle(self) -> None:
        """Shutdown: a connection waiting for its next request closes now."""
        if self._idle is not None:
            self._idle.cancel()

    async def recv(self) -> bytes:
        """The next bytes from the client; b"" once it has gone."""
        try:
            return await self.stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def write(self, data: bytes) -> bool:
        """Send `data`; False when the client has gone."""
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def run(self) -> None:
        while not self.server.closing:
            head = await self._next_head()
            if head is None:
                return
            if not await self._exchange(head):
                return

    async def _next_head(self) -> RequestHead | None:
        with trio.move_on_after(self.server.config.keep_alive_timeout):
            while True:
                try:
                    parsed = parse_request_head(self.buf)
                except HeadError as exc:
                    status = 431 if "too large" in str(exc) else 400
                    await self.write(error_response(status, str(exc), close=True))
                    return None
                if parsed is not None:
                    head, offset = parsed
                    del self.buf[:offset]
                    return head
                if self.buf:
                    data = await self.recv()
                else:  # idle between requests: shutdown may close it at once
                    data = b""
                    with trio.CancelScope() as self._idle:
                        if self.server.closing:
                            return None
                        data = await self.recv()
                    self._idle = None
                    if self.server.closing and not data:
                        return None
                if not data:
                    return None
                self.buf += data
        return None

    async def _exchange(self, head: RequestHead) -> bool:
        """Run the app for one request; True if the connection may serve another."""
        try:
            exchange = _Exchange(self, head)
        except _BadRequest as exc:
            await self.write(error_response(exc.status, exc.message, close=True))
            return False
        try:
            await self.server.app(exchange.scope(), exchange.receive, exchange.send)
        except Exception as exc:
            log.exception("error while serving %s %s", head.method, exchange.path)
            if not exchange.started:
                message = f"internal error: {type(exc).__name__}: {exc}"
                await self.write(error_response(500, message, close=True))
                return False
            exchange.keep_alive = False
        await exchange.after_app()
        return exchange.keep_alive and not exchange.gone


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Exchange:
    """One request and its response: the ASGI receive and send of one app call."""

    def __init__(self, connection: _Connection, head: RequestHead) -> None:
        self.connection = connection
        self.head = head
        self.http10 = head.http_version == b"1.0"
        length: bytes | None = None
        coding: bytes | None = None
        tokens: set[bytes] = set()
        self.expect = False
        for name, value in head.headers:
            if name == b"content-length":
                if length is not None and length != value:
                    raise _BadRequest(400, "conflicting Content-Length headers")
                length = value
            elif name == b"transfer-encoding":
                coding = value if coding is None else coding + b"," + value
            elif name == b"connection":
                tokens.update(t.strip().lower() for t in value.split(b","))
            elif name == b"expect":
                self.expect = value.lower() == b"100-continue"
        self.remaining = 0
        self.decoder: ChunkedDecoder | None = None
        if coding is not None:
            if length is not None:
                raise _BadRequest(400, "both Transfer-Encoding and Content-Length are set")
            if self.http10 or [c.strip().lower() for c in coding.split(b",")] != [b"chunked"]:
                raise _BadRequest(501, f"unsupported Transfer-Encoding {coding.decode('latin-1')}")
            self.decoder = ChunkedDecoder()
        elif length is not None:
            if not length.isdigit():
                raise _BadRequest(400, f"bad Content-Length {length.decode('latin-1')!r}")
            self.remaining = int(length)
        self.body_done = self.decoder is None and self.remaining == 0
        self.request_complete = False  # the final http.request message went out
        self.body_error = ""
        self.keep_alive = (b"keep-alive" in tokens) if self.http10 else (b"close" not in tokens)
        target = head.target
        if target.startswith((b"http://", b"https://")):  # absolute form (RFC 9112 §3.2.2)
            rest = target.split(b"//", 1)[1]
            slash = rest.find(b"/")
            target = rest[slash:] if slash >= 0 else b"/"
        self.raw_path, _, self.query = target.partition(b"?")
        self.path = unquote(self.raw_path.decode("ascii"))
        # the response
        self.started = False
        self.finished = False
        self.gone = False
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

    # ----- receive -----------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if self.request_complete or self.gone:
            return await self._wait_disconnect()
        piece = await self._body_piece()
        if piece is None:  # the client left, or sent a body that cannot be read
            if not self.body_error:
                self._lost()
            self.keep_alive = False
            return DISCONNECT
        self.request_complete = self.body_done
        return {"type": "http.request", "body": piece, "more_body": not self.body_done}

    async def _body_piece(self) -> bytes | None:
        """The next piece of the request body; None if the client left or sent garbage."""
        connection = self.connection
        if self.body_done:
            return b""
        if self.expect and not connection.buf and not self.started:
            self.expect = False
            if not await connection.write(CONTINUE):
                return None
        while True:
            if connection.buf:
                data = bytes(connection.buf)
                connection.buf.clear()
            else:
                data = await connection.recv()
                if not data:
                    return None
            if self.decoder is None:
                piece = data[: self.remaining]
                connection.buf += data[len(piece) :]  # pipelined: the next request
                self.remaining -= len(piece)
                self.body_done = self.remaining == 0
                return piece
            try:
                piece = self.decoder.feed(data)
            except ChunkedError as exc:
                self.body_error = f"bad chunked request body: {exc}"
                return None
            if self.decoder.done:
                connection.buf += self.decoder.leftover
                self.body_done = True
                return piece
            if piece:
                return piece

    async def _wait_disconnect(self) -> dict[str, Any]:
        """Block until the client goes away or the response is complete (ASGI's disconnect)."""
        if self.finished or self.gone:
            return DISCONNECT
        connection = self.connection
        with trio.CancelScope() as self._waiter:
            while True:
                if len(connection.buf) > MAX_HEAD:  # a pipelining client: stop reading ahead
                    await trio.sleep_forever()
                data = await connection.recv()
                if not data:
                    self._lost()
                    break
                connection.buf += data
        self._waiter = None
        return DISCONNECT

    def _lost(self) -> None:
        self.gone = True
        self.keep_alive = False
        if self._waiter is not None:
            self._waiter.cancel()

    # ----- send --------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self._start(int(message["status"]), message.get("headers") or [])
        elif kind == "http.response.body":
            await self._body(bytes(message.get("body", b"")), bool(message.get("more_body")))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _start(self, status: int, app_headers: Any) -> None:
        if self.started:
            raise RuntimeError("the response has already started")
        self.started = True
        headers: Headers = []
        length: int | None = None
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
                    self.keep_alive = False
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
            self.keep_alive = False
        else:
            self.framing = "chunked"
            headers.append((b"transfer-encoding", b"chunked"))
        if length is not None and status not in (204, 304):
            headers.append((b"content-length", b"%d" % length))
        if self.connection.server.closing or not self.body_done:
            self.keep_alive = False  # an unread request body cannot be skipped safely
        if not self.keep_alive:
            headers.append((b"connection", b"close"))
        elif self.http10:
            headers.append((b"connection", b"keep-alive"))
        headers.append((b"date", http_date()))
        head = build_head(status, headers)
        if self.framing in ("length", "none"):
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
                self.keep_alive = False  # short of its Content-Length: the close tells
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
        if self.gone or self.body_error:  # after a bad body, only the 400 goes out
            return
        self.written = True
        if not await self.connection.write(data):
            self._lost()

    async def after_app(self) -> None:
        """What the app left undone: a response it never sent, a bad body, a held head."""
        if self.body_error:
            self.keep_alive = False
            if not self.written:
                await self.connection.write(error_response(400, self.body_error, close=True))
            return
        if not self.started and not self.gone:
            self.keep_alive = False
            await self._write(error_response(500, "the app sent no response", close=True))
            return
        if self.pending:
            await self._write(self.pending)
        if not self.finished or not self.body_done:
            self.keep_alive = False
