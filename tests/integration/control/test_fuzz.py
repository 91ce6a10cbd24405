"""Garbage, truncated and oversized lines against one running server.

The server runs in a background thread for the whole module, so every
hypothesis example hits the same process: after each one the server must
still answer on the fuzzed connection (unless the example was oversized) and
on a bystander connection opened before the fuzzing began.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapctl import codec
from swapctl import protocol as p
from swapd.control import ControlLimits
from tests.integration.control.server_thread import ServerThread
from tests.unit.control import strategies

MAX_LINE = 4096  # a small bound keeps the oversized examples cheap
probe_ids = itertools.count()


class Raw:
    """A blocking client: raw bytes out, decoded messages in."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.decoder = codec.server_decoder(MAX_LINE * 8)
        self.eof = False
        self.sock.sendall(codec.encode(p.Hello(client="fuzz")))
        assert isinstance(self.receive(), p.Welcome)

    def receive(self) -> Any:
        while (item := self.decoder.next()) is None:
            if self.eof:
                raise EOFError
            data = self.sock.recv(65536)
            self.decoder.feed(data)
            self.eof = not data
        assert not isinstance(item, codec.BadLine), item
        return item

    def probe(self) -> list[Any]:
        """Ask for status; return everything received before its reply."""
        probe_id = f"probe-{next(probe_ids)}"
        self.sock.sendall(b"\n" + codec.encode(p.StatusRequest(id=probe_id)))
        before = []
        while True:
            item = self.receive()
            if isinstance(item, p.StatusReply) and item.id == probe_id:
                return before
            before.append(item)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(limits=ControlLimits(max_line=MAX_LINE)) as thread:
        yield thread


@pytest.fixture(scope="module")
def bystander(server: ServerThread) -> Iterator[Raw]:
    client = Raw(server.path)
    yield client
    client.close()


def _check_replies(replies: list[Any]) -> None:
    for reply in replies:
        # Garbage may by chance be a valid request; anything else must be a bad_frame error.
        assert isinstance(reply, p.ServerMessage.__args__)
        if isinstance(reply, p.Error):
            assert reply.code in p.ERROR_CODES


garbage_lines = st.lists(st.binary(max_size=200), min_size=1, max_size=8)


@given(garbage_lines)
@settings(max_examples=60)
def test_garbage_lines_get_errors_and_nobody_is_affected(
    server: ServerThread, bystander: Raw, lines: list[bytes]
) -> None:
    client = Raw(server.path)
    try:
        client.sock.sendall(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        _check_replies(client.probe())
    finally:
        client.close()
    assert bystander.probe() == []


# Requests only: a whole `hello` with a random version rightly ends the connection.
requests = st.one_of(
    [strategies.for_struct(c) for c in p.ClientMessage.__args__ if c is not p.Hello]
)
truncated = st.lists(st.tuples(requests, st.integers(0, 400)), min_size=1, max_size=6)


@given(truncated)
@settings(max_examples=60)
def test_truncated_messages_get_errors_naming_the_problem(
    server: ServerThread, bystander: Raw, cuts: list[tuple[Any, int]]
) -> None:
    client = Raw(server.path)
    try:
        data = b"".join(codec.encode(m)[: max(1, cut)].rstrip(b"\n") + b"\n" for m, cut in cuts)
        client.sock.sendall(data)
        replies = client.probe()
        _check_replies(replies)
        for reply in replies:
            if isinstance(reply, p.Error) and reply.code == "bad_frame":
                assert reply.message  # names the problem
    finally:
        client.close()
    assert bystander.probe() == []


@given(st.binary(max_size=100), st.integers(MAX_LINE + 1, MAX_LINE * 3))
@settings(max_examples=15)
def test_oversized_lines_close_only_their_connection(
    server: ServerThread, bystander: Raw, prefix: bytes, size: int
) -> None:
    client = Raw(server.path)
    try:
        try:
            client.sock.sendall(prefix.replace(b"\n", b" ") + b"\n" + b"z" * size + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon hung up while we were still sending
        replies = []
        with pytest.raises(EOFError):
            while True:
                replies.append(client.receive())
        assert replies and replies[-1].code == "frame_too_large"
        _check_replies(replies)
    finally:
        client.close()
    assert bystander.probe() == []


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"status","id":"\xff"}',
        b'"\xc3("',
        b"[" * 2000 + b"]" * 2000,
        b'{"type":"status","id":"deep","x":' + b"[" * 1500 + b"]" * 1500 + b"}",
    ],
    ids=["utf8-in-string", "utf8-alone", "nested-arrays", "nested-in-a-request"],
)
def test_undecodable_lines_get_an_error_frame_and_the_connection_stays(
    server: ServerThread, bystander: Raw, line: bytes
) -> None:
    client = Raw(server.path)
    try:
        client.sock.sendall(line + b"\n")
        replies = client.probe()
        assert len(replies) == 1 and isinstance(replies[0], p.Error), replies
        assert replies[0].code == "bad_frame" and replies[0].message
    finally:
        client.close()
    assert bystander.probe() == []
