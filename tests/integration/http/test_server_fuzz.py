"""Random and mutated request streams, in any split, against one server connection.

Each example runs a connection of swapd's server on an in-memory stream: it
must never raise, never hang, and answer either with the app's responses or
with a refusal (4xx, or 501/505 for an unsupported coding or version) that
is its last answer and closes the connection.
"""

from __future__ import annotations

import re
from typing import Any

import h11
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swapd.http.server import Connection, Server, ServerConfig

STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")
WAIT = 10.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body and answers its length."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message["body"])
        if not message["more_body"]:
            break
    body = b"%d" % size
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


TOKEN = "abcdefghijklmnopqrstuvwxyz-ABCXYZ0189"
headers = st.lists(
    st.tuples(
        st.text(TOKEN, min_size=1, max_size=10).map(str.encode),
        st.binary(max_size=20).map(lambda b: bytes(c for c in b if 0x20 < c < 0x7F)),
    ),
    max_size=5,
).map(lambda hs: [(n, v) for n, v in hs if n.lower() not in (b"content-length", b"connection")])


@st.composite
def request(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    target = "/" + draw(st.text("abc/%?=&09", max_size=12))
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=3))
    chunked = draw(st.booleans())
    extra = [(n, v) for n, v in draw(headers) if n.lower() != b"transfer-encoding"]
    client = h11.Connection(h11.CLIENT)
    body = b"".join(chunks)
    framing = [(b"transfer-encoding", b"chunked")] if chunked else []
    if not chunked:
        framing = [(b"content-length", b"%d" % len(body))]
    wire = (
        client.send(
            h11.Request(method=method, target=target, headers=[(b"host", b"x"), *extra, *framing])
        )
        or b""
    )
    for chunk in chunks:
        wire += client.send(h11.Data(data=chunk)) or b""
    return wire + (client.send(h11.EndOfMessage()) or b"")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(b"".join(draw(st.lists(request(), min_size=1, max_size=3))))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "duplicate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from([b"\r", b"\n", b"\r\n", b" ", b"\x00", b":", b"0"]))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            data[at:at] = data[max(0, at - 8) : at]
    return bytes(data)


streams = st.one_of(
    mutated(), st.binary(max_size=300), st.lists(request(), max_size=3).map(b"".join)
)


async def serve(data: bytes, cuts: list[int]) -> bytes:
    server = Server(app, ServerConfig(keep_alive_timeout=WAIT, head_timeout=WAIT))
    client, server_side = trio.testing.memory_stream_pair()
    connection = Connection(server, server_side)
    received = bytearray()
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                await connection.run()
                await server_side.aclose()

            nursery.start_soon(run)
            pos = 0
            for cut in [*sorted(set(cuts)), len(data)]:
                if pos < cut <= len(data):
                    try:
                        await client.send_all(data[pos:cut])
                    except trio.BrokenResourceError:
                        break
                    pos = cut
            try:
                await client.send_eof()
            except trio.BrokenResourceError:
                pass
            while True:
                try:
                    chunk = await client.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                received += chunk
    return bytes(received)


def answers_of(received: bytes) -> list[tuple[int, bytes]]:
    """(status, head) of each response in `received`, which must be whole responses only."""
    out = []
    pos = 0
    while pos < len(received):
        end = received.index(b"\r\n\r\n", pos) + 4
        head = received[pos:end]
        match = STATUS.match(head)
        assert match is not None, received
        length = re.search(rb"\r\ncontent-length: (\d+)\r\n", head)
        assert length is not None, head
        out.append((int(match[1]), head))
        pos = end + int(length[1])
    assert pos == len(received)
    return out


def check_answers(received: bytes) -> list[int]:
    answers = answers_of(received)
    for i, (status, head) in enumerate(answers):
        if status == 200:
            continue
        assert 400 <= status < 500 or status in (501, 505), received
        assert i == len(answers) - 1, "a refusal is the last answer"
        assert b"connection: close\r\n" in head
    return [status for status, _ in answers]


@given(streams, st.lists(st.integers(0, 400), max_size=8))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_stream_is_served_or_refused_and_never_hangs(data: bytes, cuts: list[int]) -> None:
    check_answers(trio.run(serve, data, cuts))


@given(st.lists(request(), min_size=1, max_size=4), st.lists(st.integers(0, 600), max_size=8))
@settings(max_examples=100, deadline=None)
def test_valid_pipelined_requests_are_all_served_in_any_split(
    requests: list[bytes], cuts: list[int]
) -> None:
    statuses = check_answers(trio.run(serve, b"".join(requests), cuts))
    assert statuses == [200] * len(requests)
