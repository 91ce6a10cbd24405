"""llhttp's request and response parsing as swapd wraps it (pure), with h11 as the oracle."""

from __future__ import annotations

import time

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.http.parse import (
    MAX_HEAD,
    Bad,
    Body,
    End,
    RequestHead,
    RequestParser,
    ResponseError,
    ResponseParser,
)

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
names = st.text(TOKEN_CHARS, min_size=1, max_size=12).map(str.encode)
values = st.binary(max_size=30).map(
    lambda b: bytes(c for c in b if c == 9 or 0x20 <= c != 0x7F).strip(b" \t")
)
FRAMING = {b"content-length", b"transfer-encoding", b"connection", b"host", b"expect", b"upgrade"}
plain_headers = st.lists(st.tuples(names, values), max_size=8).map(
    lambda hs: [(n, v) for n, v in hs if n.lower() not in FRAMING]
)


def feed_split(parser: RequestParser | ResponseParser, data: bytes, cuts: list[int]) -> None:
    pos = 0
    for cut in sorted(set(cuts)):
        if pos < cut < len(data):
            parser.feed(data[pos:cut])
            pos = cut
    parser.feed(data[pos:])


def requests_of(parser: RequestParser) -> list[tuple[RequestHead, bytes]]:
    """Every whole request parsed: its head and body."""
    out: list[tuple[RequestHead, bytes]] = []
    head: RequestHead | None = None
    body = b""
    for event in parser.events:
        if isinstance(event, RequestHead):
            head, body = event, b""
        elif isinstance(event, Body):
            body += event.data
        elif isinstance(event, End):
            assert head is not None
            out.append((head, body))
            head = None
        else:
            raise AssertionError(event)
    return out


@given(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    st.text("abcxyz0189/-._~%=&?", max_size=20).map(lambda s: "/" + s),
    plain_headers,
    st.lists(st.binary(min_size=1, max_size=50), max_size=4),
    st.booleans(),
    st.lists(st.integers(0, 400), max_size=6),
)
def test_reads_what_an_h11_client_writes_in_any_split(
    method: str,
    target: str,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    chunked: bool,
    cuts: list[int],
) -> None:
    client = h11.Connection(h11.CLIENT)
    body = b"".join(chunks)
    framing = [(b"transfer-encoding", b"chunked")] if chunked else []
    if not chunked and body:
        framing = [(b"content-length", b"%d" % len(body))]
    all_headers = [(b"host", b"x"), *headers, *framing]
    wire = client.send(h11.Request(method=method, target=target, headers=all_headers)) or b""
    for chunk in chunks if chunked or body else []:
        wire += client.send(h11.Data(data=chunk)) or b""
    wire += client.send(h11.EndOfMessage()) or b""
    parser = RequestParser()
    feed_split(parser, wire + wire, cuts)  # two of them, pipelined
    got = requests_of(parser)
    assert len(got) == 2
    for head, got_body in got:
        assert (head.method, head.target, head.http_version) == (method, target.encode(), b"1.1")
        assert head.headers == [(n.lower(), v) for n, v in all_headers]
        assert head.keep_alive
        assert got_body == body


# Each of these was accepted by swapd's hand-written parser and is refused by h11.
LENIENT = {
    "chunk-size-0x": b"0x3a",
    "chunk-size-plus": b"+3a",
    "chunk-size-underscore": b"0_3a",
    "chunk-size-space": b" 3a",
}
BAD_FRAMING = {
    **{
        name: b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + size
        + b"\r\n"
        + b"a" * 0x3A
        + b"\r\n0\r\n\r\n"
        for name, size in LENIENT.items()
    },
    "lf-in-chunk-extension": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;a\nb\r\nabc\r\n0\r\n\r\n",
    "trailer-without-colon": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\nnocolon\r\n\r\n",
    "trailer-with-nul": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\nA: a\x00b\r\n\r\n",
    "stray-cr-before-head-end": b"GET / HTTP/1.1\r\nHost: x\r\r\n\r\n",
}


def h11_refuses(data: bytes) -> bool:
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    try:
        while True:
            event = server.next_event()
            if event is h11.NEED_DATA or isinstance(event, h11.EndOfMessage):
                return False
    except h11.RemoteProtocolError:
        return True


@pytest.mark.parametrize("data", BAD_FRAMING.values(), ids=BAD_FRAMING.keys())
def test_lenient_framing_is_refused_as_h11_refuses_it(data: bytes) -> None:
    assert h11_refuses(data)
    parser = RequestParser()
    parser.feed(data)
    assert isinstance(parser.events[-1], Bad) and parser.events[-1].status == 400
    assert parser.failed


def test_blank_lines_before_a_request_are_bounded_and_cheap() -> None:
    parser = RequestParser()
    started = time.process_time()
    for _ in range(64):  # 4 MiB of "\n" in socket-sized pieces
        parser.feed(b"\n" * 65536)
        if parser.failed:
            break
    assert time.process_time() - started < 0.5
    assert parser.events == type(parser.events)(
        [Bad(431, "request head too large", "head_too_large")]
    )


def test_head_bound_is_exact_for_a_head_alone() -> None:
    just = b"GET / HTTP/1.1\r\nx: " + b"a" * (MAX_HEAD - 23) + b"\r\n\r\n"
    assert len(just) == MAX_HEAD
    parser = RequestParser()
    parser.feed(just)
    assert isinstance(parser.events[0], RequestHead)
    over = b"GET / HTTP/1.1\r\nx: " + b"a" * (MAX_HEAD - 22) + b"\r\n\r\n"
    parser = RequestParser()
    parser.feed(over[:40000])
    parser.feed(over[40000:])
    assert isinstance(parser.events[0], Bad) and parser.events[0].status == 431


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /a b HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nx y: 1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nx: 1\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nx: a\x01b\r\n\r\n", 400),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    ],
)
def test_malformed_requests(data: bytes, status: int) -> None:
    parser = RequestParser()
    parser.feed(data)
    assert isinstance(parser.events[-1], Bad) and parser.events[-1].status == status


def test_an_upgrade_is_ignored_and_what_follows_is_parsed() -> None:
    parser = RequestParser()
    parser.feed(
        b"GET /a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
    )
    assert [h.target for h, _ in requests_of(parser)] == [b"/a", b"/b"]


def test_http10_keep_alive_follows_the_connection_header() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head = parser.events[0]
    assert isinstance(head, RequestHead) and head.keep_alive and head.http_version == b"1.0"


# ----- responses ------------------------------------------------------------------------


@given(
    st.integers(200, 599),
    plain_headers,
    st.lists(st.binary(min_size=1, max_size=50), max_size=4),
    st.booleans(),
    st.lists(st.integers(0, 400), max_size=6),
)
def test_reads_what_an_h11_server_writes_in_any_split(
    status: int,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    chunked: bool,
    cuts: list[int],
) -> None:
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    server.next_event()
    server.next_event()
    body = b"".join(chunks)
    bodiless = status in (204, 304)
    framing = [] if chunked or bodiless else [(b"content-length", b"%d" % len(body))]
    wire = server.send(h11.Response(status_code=status, headers=[*headers, *framing])) or b""
    if not bodiless:
        for chunk in chunks:
            wire += server.send(h11.Data(data=chunk)) or b""
    wire += server.send(h11.EndOfMessage()) or b""
    parser = ResponseParser()
    got = b""
    pos = 0
    for cut in [*sorted(set(cuts)), len(wire)]:
        if pos <= cut <= len(wire):
            parser.feed(wire[pos:cut])
            got += parser.take()
            pos = cut
    assert parser.head is not None and parser.head.status == status
    assert parser.complete and parser.keep_alive and not parser.spoiled
    assert [(n, v) for n, v in parser.head.headers if n != b"transfer-encoding"] == [
        (n.lower(), v) for n, v in [*headers, *framing]
    ]
    assert got == (b"" if bodiless else body)


@pytest.mark.parametrize(
    ("method", "data"),
    [
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n"),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokX"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\n\r\nbody"),
    ],
    ids=["after-204", "extra-response", "stray-byte", "body-after-304"],
)
def test_bytes_past_the_end_of_a_response_spoil_its_connection(method: str, data: bytes) -> None:
    parser = ResponseParser(method)
    parser.feed(data)
    assert parser.complete and parser.spoiled


def test_a_response_to_head_is_complete_with_its_head_and_never_reused() -> None:
    parser = ResponseParser("HEAD")
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert parser.complete and not parser.keep_alive


def test_interim_responses_are_skipped() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert parser.head is not None and parser.head.status == 200
    assert parser.take() == b"ok" and parser.complete


def test_a_body_until_eof_is_complete_at_eof_and_not_reused() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\nabc")
    assert not parser.complete
    parser.feed_eof()
    assert parser.take() == b"abc" and parser.complete and not parser.keep_alive


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: \x01\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"x: y\r\n" * (MAX_HEAD // 6 + 1),
    ],
)
def test_malformed_responses(data: bytes) -> None:
    with pytest.raises(ResponseError):
        ResponseParser().feed(data)


RESPONSE = b"HTTP/1.1 200 OK\r\nX-A: b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"


@given(
    st.one_of(
        st.binary(max_size=200),
        st.lists(st.tuples(st.integers(0, len(RESPONSE)), st.binary(max_size=3)), max_size=5).map(
            lambda edits: _mutate(RESPONSE, edits)
        ),
    ),
    st.sampled_from(["GET", "HEAD", "POST"]),
    st.lists(st.integers(0, 200), max_size=5),
)
def test_any_response_bytes_parse_or_raise_response_error(
    data: bytes, method: str, cuts: list[int]
) -> None:
    parser = ResponseParser(method)
    try:
        feed_split(parser, data, cuts)
        parser.feed_eof()
    except ResponseError:
        return
    if parser.complete:
        assert parser.head is not None


def _mutate(data: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(data)
    for at, insert in edits:
        out[at : at + 1] = insert
    return bytes(out)


def test_a_switching_protocols_response_is_never_reused() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nraw")
    assert parser.head is not None and parser.head.status == 101
    assert parser.complete and not parser.keep_alive
