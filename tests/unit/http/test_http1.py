"""The head writers: the upstream client's requests, the server's responses (pure).

h11 is the oracle: what is written must be what h11 reads.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.http.http1 import HeadError, request_head, response_head

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
