"""The upstream client's request-head writer and response-head parser (pure)."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.http.http1 import (
    MAX_HEAD,
    HeadError,
    parse_request_head,
    parse_response_head,
    request_head,
    response_head,
)

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
names = st.text(TOKEN_CHARS, min_size=1, max_size=12).map(str.encode)
values = st.binary(max_size=30).map(
    lambda b: bytes(c for c in b if c == 9 or 0x20 <= c != 0x7F).strip(b" \t")
)


def test_request_head_bytes() -> None:
    head = request_head("POST", "/v1/chat?x=1", [(b"host", b"h:1"), (b"content-length", b"2")])
    assert head == b"POST /v1/chat?x=1 HTTP/1.1\r\nhost: h:1\r\ncontent-length: 2\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("GET", "/a b", []),
        ("GET", "/a\r\nx: y", []),
        ("GET", "", []),
        ("GE T", "/", []),
        ("GET", "/", [(b"x", b"a\r\nevil: 1")]),
        ("GET", "/", [(b"x\n", b"a")]),
        ("GET", "/", [(b"", b"a")]),
        ("GET", "/", [(b"x", b"a\x00")]),
    ],
)
def test_request_head_refuses_smuggling(
    method: str, target: str, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(HeadError):
        request_head(method, target, headers)


@given(st.lists(st.tuples(names, values), max_size=8))
def test_request_head_is_what_h11_server_reads(headers: list[tuple[bytes, bytes]]) -> None:
    server = h11.Connection(h11.SERVER)
    server.receive_data(request_head("GET", "/p?q=1", [(b"host", b"x"), *headers]))
    event = server.next_event()
    assert isinstance(event, h11.Request)
    assert event.method == b"GET" and event.target == b"/p?q=1"
    assert list(event.headers) == [(b"host", b"x"), *((n.lower(), v) for n, v in headers)]


def test_response_head_incomplete_then_complete() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A:  b \r\n\r\nbody"
    for cut in range(len(data) - 4):
        assert parse_response_head(data[:cut]) is None
    parsed = parse_response_head(data)
    assert parsed is not None
    head, offset = parsed
    assert (head.status, head.reason, head.http_version) == (200, b"OK", b"1.1")
    assert head.headers == [(b"content-type", b"text/plain"), (b"x-a", b"b")]
    assert data[offset:] == b"body"


def test_interim_heads_are_skipped_and_bare_lf_accepted() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 404\nA: 1\n\nrest"
    parsed = parse_response_head(data)
    assert parsed is not None
    head, offset = parsed
    assert (head.status, head.reason, head.http_version, head.headers) == (
        404, b"", b"1.0", [(b"a", b"1")]
    )  # fmt: skip
    assert data[offset:] == b"rest"


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad name: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: \x01\r\n\r\n",
    ],
)
def test_malformed_response_heads(data: bytes) -> None:
    with pytest.raises(HeadError):
        parse_response_head(data)


def test_oversized_response_head() -> None:
    with pytest.raises(HeadError):
        parse_response_head(b"HTTP/1.1 200 OK\r\n" + b"x: y\r\n" * (MAX_HEAD // 6 + 1))


@given(st.integers(200, 599), st.lists(st.tuples(names, values), max_size=8), st.binary())
def test_parses_what_h11_writes(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    framing = {b"content-length", b"transfer-encoding", b"connection"}
    headers = [(n, v) for n, v in headers if n.lower() not in framing]
    headers.append((b"content-length", str(len(body)).encode()))
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    server.next_event()
    data = server.send(h11.Response(status_code=status, headers=headers, reason=b"Why Not"))
    assert data is not None
    parsed = parse_response_head(data + body)
    assert parsed is not None
    head, offset = parsed
    assert head.status == status and head.reason == b"Why Not"
    assert head.headers == [(n.lower(), v) for n, v in headers]
    assert (data + body)[offset:] == body


# ----- the server side: request heads in, response heads out -------------------------


def test_request_head_incomplete_then_complete() -> None:
    data = b"\r\nPOST /v1/x?a=%20b HTTP/1.1\r\nHost: h\r\nContent-Length:  3 \r\n\r\nabc"
    for cut in range(len(data) - 4):
        assert parse_request_head(data[:cut]) is None
    parsed = parse_request_head(data)
    assert parsed is not None
    head, offset = parsed
    assert (head.method, head.target, head.http_version) == ("POST", b"/v1/x?a=%20b", b"1.1")
    assert head.headers == [(b"host", b"h"), (b"content-length", b"3")]
    assert data[offset:] == b"abc"


@pytest.mark.parametrize(
    "data",
    [
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nx y: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nx: 1\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nnocolon\r\n\r\n",
        b"GET / HTTP/1.1\r\nx: a\x00b\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ],
)
def test_malformed_request_heads(data: bytes) -> None:
    with pytest.raises(HeadError):
        parse_request_head(data)


def test_oversized_request_head() -> None:
    with pytest.raises(HeadError, match="too large"):
        parse_request_head(b"GET / HTTP/1.1\r\nx: " + b"a" * MAX_HEAD)
    with pytest.raises(HeadError, match="too large"):
        parse_request_head(b"GET / HTTP/1.1\r\nx: " + b"a" * MAX_HEAD + b"\r\n\r\n")


@given(
    st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "DELETE"]),
    st.text("abcxyz0189/-._~%=&?", min_size=0, max_size=20).map(lambda s: "/" + s),
    st.lists(st.tuples(names, values), max_size=8),
)
def test_parses_what_h11_client_writes(
    method: str, target: str, headers: list[tuple[bytes, bytes]]
) -> None:
    client = h11.Connection(h11.CLIENT)
    request = h11.Request(method=method, target=target, headers=[(b"host", b"x"), *headers])
    data = client.send(request)
    assert data is not None
    parsed = parse_request_head(data)
    assert parsed is not None
    head, offset = parsed
    assert offset == len(data)
    assert (head.method, head.target, head.http_version) == (method, target.encode(), b"1.1")
    assert head.headers == [(b"host", b"x"), *((n.lower(), v) for n, v in headers)]


@given(st.sampled_from([200, 204, 404, 429, 500, 599]), st.lists(st.tuples(names, values)))
def test_response_head_is_what_h11_client_reads(
    status: int, headers: list[tuple[bytes, bytes]]
) -> None:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[(b"host", b"x")]))
    client.receive_data(response_head(status, [*headers, (b"content-length", b"0")]))
    event = client.next_event()
    assert isinstance(event, h11.Response)
    assert event.status_code == status
    assert list(event.headers)[:-1] == [(n.lower(), v) for n, v in headers]


@pytest.mark.parametrize("header", [(b"x", b"a\r\nevil: 1"), (b"x y", b"1"), (b"", b"1")])
def test_response_head_refuses_what_the_app_must_not_send(header: tuple[bytes, bytes]) -> None:
    with pytest.raises(HeadError):
        response_head(200, [header])


any_names = st.binary(max_size=6) | names
any_values = st.binary(max_size=12) | values


def _valid_field(name: bytes, value: bytes) -> bool:
    token = bool(name) and all(chr(c) in TOKEN_CHARS for c in name)
    return token and not any((c < 0x20 and c != 9) or c == 0x7F for c in value)


@given(st.lists(st.tuples(any_names, any_values), max_size=6))
def test_heads_are_written_exactly_when_every_field_is_valid(
    headers: list[tuple[bytes, bytes]],
) -> None:
    valid = all(_valid_field(n, v) for n, v in headers)
    for write in (lambda: request_head("GET", "/", headers), lambda: response_head(200, headers)):
        if valid:
            write()
        else:
            with pytest.raises(HeadError):
                write()


def _reference_fields(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """Field by field, as the spec reads them: None for a head that must be refused."""
    block = data.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in data else data
    out = []
    for raw in block.split(b"\n")[1:]:
        line = raw.removesuffix(b"\r")
        name, sep, value = line.partition(b":")
        if not sep or not _valid_field(name, value.strip(b" \t")):
            return None
        out.append((name.lower(), value.strip(b" \t")))
    return out


@given(st.lists(st.tuples(any_names, any_values), max_size=6))
def test_heads_are_parsed_as_the_field_by_field_reading_says(
    headers: list[tuple[bytes, bytes]],
) -> None:
    fields = b"".join(n + b":" + v + b"\r\n" for n, v in headers)
    for start in (b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n"):
        data = start + fields + b"\r\n"
        parse = parse_request_head if start.startswith(b"GET") else parse_response_head
        try:
            parsed = parse(data)
        except HeadError:
            parsed = None
        if parsed is None:  # refused, or cut short by a blank line inside a value
            expected = _reference_fields(data)
            assert expected is None or b"\n\r\n" in fields or b"\n\n" in fields
            continue
        assert parsed[0].headers == _reference_fields(data[: parsed[1]])
