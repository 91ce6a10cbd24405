"""Sans-IO HTTP/1.1 message parsing on llhttp (Node.js's parser, through httptools).

Both directions: `RequestParser` for the server (what clients send) and
`ResponseParser` for the upstream client (what model servers answer).
llhttp is maintained, fuzzed and strict: it refuses the framing that a
front proxy might read differently (lenient chunk sizes, bare LF in chunk
extensions, malformed trailers, stray CRs, conflicting lengths, CL with TE).
What these wrappers add is what llhttp leaves to its user: a bound on the
size of a head (blank lines before it included), header names lower-cased
and values trimmed, and, for requests, a queue of events so that pipelined
requests are taken one at a time.

Neither class touches a socket: bytes in, events or pieces out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import httptools

Headers = list[tuple[bytes, bytes]]

MAX_HEAD = 64 * 1024  # a head (blank lines before it included) larger than this is refused


@dataclass(slots=True)
class RequestHead:
    method: str
    target: bytes
    http_version: bytes  # b"1.0" or b"1.1"
    headers: Headers  # names lower-cased, values without surrounding whitespace
    keep_alive: bool  # what the client asked for (version and Connection)


@dataclass(slots=True)
class Body:
    data: bytes


@dataclass(slots=True)
class End:
    """The end of the current request (body and trailers included)."""


@dataclass(slots=True)
class Bad:
    """Input that cannot be served: answered with `status` and closed."""

    status: int
    message: str
    reason: str


RequestEvent = RequestHead | Body | End | Bad

_END = End()


def _trim(value: bytes) -> bytes:
    return value.strip(b" \t")


class RequestParser:
    """Requests from one client connection, as a queue of events (`events`).

    Feed it what the socket gave (`feed`); take events from the left of
    `events`. After a `Bad` event nothing more is parsed.
    """

    def __init__(self, max_head: int = MAX_HEAD) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._max_head = max_head
        self.events: deque[RequestEvent] = deque()
        self._in_head = True
        self._head_bytes = 0  # bytes of the current head fed so far (a lower bound when pipelined)
        self._url = b""
        self._headers: Headers = []
        self._upgrade_body = False
        self._heads = 0  # heads parsed so far
        self._begun = False  # llhttp saw the start of a request line
        self.failed = False

    @property
    def in_head(self) -> bool:
        """True between requests and while a head is incomplete."""
        return self._in_head

    @property
    def head_started(self) -> bool:
        """Some bytes of the next head (blank lines included) have arrived."""
        return self._in_head and (self._head_bytes > 0 or self._begun)

    def feed(self, data: bytes | bytearray) -> None:
        if self.failed or not data:
            return
        if not self._in_head:
            self._feed(data)
            return
        room = self._max_head - self._head_bytes
        first = data[:room]
        heads = self._heads
        if not self._feed(first):
            return
        if heads == self._heads:  # the same head, still incomplete
            self._head_bytes += len(first)
            if len(data) > room:
                self._fail(431, "request head too large", "head_too_large")
            return
        self._feed(data[len(first) :])

    def _feed(self, data: bytes | bytearray) -> bool:
        """Parse `data`; False once the stream has failed."""
        if self.failed or not data:
            return not self.failed
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # An upgrade (or CONNECT) request: served as an ordinary request,
            # the upgrade ignored. llhttp stops after its head: go on anew.
            offset = int(upgrade.args[0])
            if self._upgrade_body:
                self._fail(400, "a request asking for an upgrade cannot carry a body", "upgrade")
                return False
            self._parser = httptools.HttpRequestParser(self)
            self._in_head = True
            self._begun = False
            self._head_bytes = 0
            return self._feed(data[offset:])
        except httptools.HttpParserError as exc:
            if not self.failed:
                self._fail(400, f"malformed request: {exc}", "malformed_request")
        return not self.failed

    def _fail(self, status: int, message: str, reason: str) -> None:
        self.failed = True
        self.events.append(Bad(status, message, reason))

    # ----- llhttp callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        self._begun = True
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:  # trailers (after a chunked body) are read and dropped
            self._headers.append((name.lower(), _trim(value)))

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        self._in_head = False
        self._head_bytes = 0
        self._heads += 1
        if version not in ("1.0", "1.1"):
            self._fail(505, f"HTTP/{version} is not served; use HTTP/1.1", "http_version")
            raise _Stop
        method = parser.get_method().decode("ascii")
        if parser.should_upgrade():
            self._upgrade_body = any(
                n == b"transfer-encoding" or (n == b"content-length" and v != b"0")
                for n, v in self._headers
            )
        self.events.append(
            RequestHead(
                method, self._url, version.encode(), self._headers, parser.should_keep_alive()
            )
        )

    def on_body(self, data: bytes) -> None:
        self.events.append(Body(data))

    def on_message_complete(self) -> None:
        self.events.append(_END)
        self._in_head = True
        self._begun = False
        self._head_bytes = 0


class _Stop(Exception):
    """Raised from a callback to stop llhttp at once."""


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: bytes
    http_version: bytes
    headers: Headers  # names lower-cased, values without surrounding whitespace


class ResponseError(ValueError):
    """A response that is malformed, or whose head is too large."""


@dataclass
class ResponseParser:
    """One upstream response: its head, then its body in pieces (`take`).

    `complete` once the body reached its framed end; `spoiled` when bytes
    followed that end (another response, a body after a 204 or 304), which
    means the connection must not be reused. A response to HEAD is complete
    with its head: the connection is never reused after it, since llhttp
    cannot be told that no body follows.
    """

    method: str = "GET"
    max_head: int = MAX_HEAD
    head: ResponseHead | None = None
    complete: bool = False
    spoiled: bool = False
    keep_alive: bool = False
    until_eof: bool = False  # neither Content-Length nor chunked: the body ends at EOF
    _pieces: list[bytes] = field(default_factory=list)
    _head_bytes: int = 0
    _reason: bytes = b""
    _headers: Headers = field(default_factory=list)

    def __post_init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)

    def feed(self, data: bytes) -> None:
        """Parse `data`; raises ResponseError on a malformed response or an oversized head."""
        if self._after_end(data):
            return
        if self.head is None:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # 101 (or a response to CONNECT): what follows is not HTTP; never reused.
            self.complete = True
            self.keep_alive = False
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ResponseError):
                raise cause from None
            if not isinstance(cause, _Stop):
                raise ResponseError(str(exc)) from None
        except httptools.HttpParserError as exc:
            if self.complete:  # garbage after the end: the response stands, the connection not
                self.spoiled = True
                return
            raise ResponseError(str(exc)) from None
        if self.head is None and self._head_bytes > self.max_head:
            raise ResponseError("response head too large")

    def _after_end(self, data: bytes) -> bool:
        """True once the response is complete: bytes past its end spoil the connection."""
        if self.complete and data:
            self.spoiled = True
        return self.complete

    def feed_eof(self) -> None:
        """The upstream closed: completes a body read until EOF."""
        if self.head is not None and not self.complete and self.until_eof:
            self.complete = True
            self.keep_alive = False

    @property
    def has_body(self) -> bool:
        """Body bytes are parsed and not yet taken."""
        return bool(self._pieces)

    def take(self) -> bytes:
        """The body bytes parsed since the last call, in one piece."""
        pieces = self._pieces
        if not pieces:
            return b""
        self._pieces = []
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    # ----- llhttp callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.spoiled = True
            raise _Stop
        self._reason = b""
        self._headers = []

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head is None:
            self._headers.append((name.lower(), _trim(value)))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # an interim response: the final one follows
        version = parser.get_http_version()
        if version not in ("1.0", "1.1"):
            raise ResponseError(f"HTTP/{version} response")
        headers = self._headers
        self.head = ResponseHead(status, self._reason, version.encode(), headers)
        self.keep_alive = parser.should_keep_alive() and version == "1.1"
        bodiless = status in (204, 304) or self.method == "HEAD"
        framed = any(
            n == b"content-length" or (n == b"transfer-encoding" and b"chunked" in v.lower())
            for n, v in headers
        )
        self.until_eof = not bodiless and not framed
        if self.method == "HEAD":
            self.complete = True
            self.keep_alive = False
            raise _Stop

    def on_body(self, data: bytes) -> None:
        if self.head is not None:
            self._pieces.append(data)

    def on_message_complete(self) -> None:
        if self.head is not None:
            self.complete = True
