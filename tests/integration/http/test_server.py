"""swapd's HTTP/1.1 server on real sockets, read back with h11 as an independent client.

A small ASGI app stands in for swapd's: it echoes what it received, streams
on command, waits for the client's disconnect, fails on purpose.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import h11
import pytest
import trio

from swapd.http.server import Server, ServerConfig

pytestmark = pytest.mark.trio

WAIT = 10.0


@dataclass
class Probe:
    """What the test app saw, and handles for the test to drive it."""

    disconnected: trio.Event = field(default_factory=trio.Event)
    stream_go: trio.Event = field(default_factory=trio.Event)
    streaming: trio.Event = field(default_factory=trio.Event)
    entered: trio.Event = field(default_factory=trio.Event)
    scopes: list[dict[str, Any]] = field(default_factory=list)


def make_app(probe: Probe) -> Any:
    async def read_all(receive: Any) -> bytes:
        parts = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                probe.disconnected.set()
                return b"".join(parts)
            parts.append(message["body"])
            if not message["more_body"]:
                return b"".join(parts)

    async def respond(send: Any, status: int, body: bytes, headers: Any = ()) -> None:
        out = [(b"content-length", b"%d" % len(body)), *headers]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        probe.scopes.append(scope)
        probe.entered.set()
        path = scope["path"]
        if path.startswith("/echo"):
            body = await read_all(receive)
            info = {
                "method": scope["method"],
                "path": path,
                "raw_path": scope["raw_path"].decode(),
                "query": scope["query_string"].decode(),
                "version": scope["http_version"],
                "body": body.decode(),
                "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
            }
            await respond(send, 200, json.dumps(info).encode(), [(b"content-type", b"json")])
        elif path == "/stream":
            await read_all(receive)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            probe.streaming.set()
            for i in range(3):
                await send(
                    {"type": "http.response.body", "body": b"part%d;" % i, "more_body": True}
                )
            await probe.stream_go.wait()
            await send({"type": "http.response.body", "body": b"end"})
        elif path == "/wait-disconnect":
            await read_all(receive)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
            probe.streaming.set()
            assert (await receive())["type"] == "http.disconnect"
            probe.disconnected.set()
        elif path == "/raise-before":
            raise ValueError("boom")
        elif path == "/raise-after":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            raise ValueError("boom")
        elif path == "/nothing":
            return
        elif path == "/short":
            out = [(b"content-length", b"10")]
            await send({"type": "http.response.start", "status": 200, "headers": out})
            await send({"type": "http.response.body", "body": b"abc"})
        else:
            await respond(send, 404, b"no")

    return app


@asynccontextmanager
async def running(
    config: ServerConfig | None = None,
) -> AsyncIterator[tuple[str, int, Probe, trio.Event]]:
    probe = Probe()
    stop = trio.Event()
    server = Server(make_app(probe), config)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            lambda task_status: server.serve(
                "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        port = int(urls[0].rsplit(":", 1)[1])
        try:
            yield "127.0.0.1", port, probe, stop
        finally:
            stop.set()


class Client:
    """A raw connection whose responses are parsed by h11."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def sent(self, method: str = "GET", *, whole: bool = True) -> None:
        """Tell h11 a request went out raw (so it reads the answer in step)."""
        self.h11.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        if whole:
            self.h11.send(h11.EndOfMessage())

    async def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(await self.stream.receive_some(65536))

    async def response(self) -> tuple[h11.Response, bytes]:
        """The next whole response (the request went out raw, so h11 is told of it)."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        if self.h11.our_state is h11.IDLE:
            self.sent()
        head = await self.next_event()
        while isinstance(head, h11.InformationalResponse):
            head = await self.next_event()
        assert isinstance(head, h11.Response), head
        body = b""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.EndOfMessage):
                return head, body
            assert isinstance(event, h11.Data), event
            body += event.data

    async def read_until_eof(self) -> bytes:
        data = b""
        while chunk := await self.stream.receive_some(65536):
            data += chunk
        return data


@asynccontextmanager
async def connect(host: str, port: int) -> AsyncIterator[Client]:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        yield Client(stream)


def echo(body: bytes) -> dict[str, Any]:
    return json.loads(body)


def header(response: h11.Response, name: bytes) -> bytes | None:
    for key, value in response.headers:
        if key == name:
            return value
    return None


async def test_keep_alive_serves_requests_one_after_another() -> None:
    async with running() as (host, port, probe, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            for i in range(3):
                await client.send_raw(
                    b"POST /echo?n=%d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" % i
                )
                head, body = await client.response()
                assert head.status_code == 200
                assert echo(body)["query"] == f"n={i}"
                assert echo(body)["body"] == "hi"
                assert header(head, b"connection") is None
                assert header(head, b"date")
    assert len(probe.scopes) == 3


async def test_scope_carries_what_an_asgi_app_needs() -> None:
    async with running() as (host, port, probe, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            await client.send_raw(
                b"GET http://example.com/echo/%C3%A9/../x?q=%20 HTTP/1.1\r\nHost: x\r\n"
                b"X-Thing:  v \r\n\r\n"
            )
            _, body = await client.response()
    assert echo(body)["path"] == "/echo/\u00e9/../x"
    scope = probe.scopes[0]
    assert scope["raw_path"] == b"/echo/%C3%A9/../x"
    assert scope["path"] == "/echo/\u00e9/../x"
    assert scope["query_string"] == b"q=%20"
    assert scope["type"] == "http" and scope["scheme"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["client"][0] == "127.0.0.1" and scope["server"] == (host, port)
    assert (b"x-thing", b"v") in scope["headers"]


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with running() as (host, port, _, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            await client.send_raw(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nA"
                b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"1\r\nB\r\n0\r\n\r\n"
                b"GET /echo?third HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            bodies = [echo((await client.response())[1]) for _ in range(3)]
    assert [b["body"] for b in bodies] == ["A", "B", ""]
    assert bodies[2]["query"] == "third"


async def test_chunked_request_body_in_pieces() -> None:
    async with running() as (host, port, _, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            await client.send_raw(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"
            )
            await client.send_raw(b"lo\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n")
            _, body = await client.response()
    assert echo(body)["body"] == "hello world"


async def test_expect_100_continue_is_answered_before_the_body() -> None:
    async with running() as (host, port, _, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            await client.send_raw(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            client.sent("POST", whole=False)
            interim = await client.next_event()
            assert isinstance(interim, h11.InformationalResponse)
            assert interim.status_code == 100
            await client.send_raw(b"body")
            client.h11.send(h11.EndOfMessage())
            head, body = await client.response()
    assert head.status_code == 200 and echo(body)["body"] == "body"


async def test_http10_closes_unless_keep_alive_is_asked() -> None:
    async with running() as (host, port, _, _):
        async with connect(host, port) as client:
            with trio.fail_after(WAIT):
                await client.send_raw(b"GET /echo HTTP/1.0\r\n\r\n")
                data = await client.read_until_eof()
            assert data.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"connection: close\r\n" in data
            assert echo(data.partition(b"\r\n\r\n")[2])["version"] == "1.0"
        async with connect(host, port) as client:
            with trio.fail_after(WAIT):
                await client.send_raw(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                head, body = await client.response()
                assert header(head, b"connection") == b"keep-alive"
                assert echo(body)["version"] == "1.0"


async def test_connection_close_from_the_client_is_honoured() -> None:
    async with running() as (host, port, _, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            await client.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await client.read_until_eof()
    assert b"connection: close\r\n" in data.lower()


async def test_streamed_response_is_chunked_and_arrives_before_it_ends() -> None:
    async with running() as (host, port, probe, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            await client.send_raw(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            client.sent()
            head = await client.next_event()
            assert isinstance(head, h11.Response)
            assert header(head, b"transfer-encoding") == b"chunked"
            got = b""
            while got != b"part0;part1;part2;":
                event = await client.next_event()
                got += event.data
            probe.stream_go.set()
            rest = await client.next_event()
            assert rest.data == b"end"
            assert isinstance(await client.next_event(), h11.EndOfMessage)


async def test_head_request_gets_no_body_but_its_length() -> None:
    async with running() as (host, port, _, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            await client.send_raw(b"HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\n")
            client.sent("HEAD")
            head = await client.next_event()
            assert head.status_code == 404 and header(head, b"content-length") == b"2"
            assert isinstance(await client.next_event(), h11.EndOfMessage)
            await client.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _ = await client.response()  # the connection is still in step
            assert head.status_code == 200


async def test_client_leaving_mid_stream_is_an_asgi_disconnect() -> None:
    async with running() as (host, port, probe, _):
        async with connect(host, port) as client:
            with trio.fail_after(WAIT):
                await client.send_raw(b"GET /wait-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
                await probe.streaming.wait()
        with trio.fail_after(WAIT):
            await probe.disconnected.wait()


async def test_client_leaving_mid_body_is_an_asgi_disconnect() -> None:
    async with running() as (host, port, probe, _):
        async with connect(host, port) as client:
            await client.send_raw(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            with trio.fail_after(WAIT):
                await probe.entered.wait()  # the app started; its body read now waits
        with trio.fail_after(WAIT):
            await probe.disconnected.wait()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /a b HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nx: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
    ids=["target", "header", "te+cl", "two-cl", "negative-cl", "gzip", "huge-head", "chunk-size"],
)
async def test_bad_requests_get_an_error_envelope_and_a_close(
    request_bytes: bytes, status: int
) -> None:
    async with running() as (host, port, _, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            await client.send_raw(request_bytes)
            data = await client.read_until_eof()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert b"connection: close" in head
    assert json.loads(body)["error"]["message"]


async def test_app_failing_before_its_response_gets_a_500_and_the_server_goes_on() -> None:
    async with running() as (host, port, _, _):
        async with connect(host, port) as client:
            with trio.fail_after(WAIT):
                await client.send_raw(b"GET /raise-before HTTP/1.1\r\nHost: x\r\n\r\n")
                head, body = await client.response()
        assert head.status_code == 500
        assert "ValueError: boom" in json.loads(body)["error"]["message"]
        async with connect(host, port) as client:
            with trio.fail_after(WAIT):
                await client.send_raw(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
                head, body = await client.response()
        assert head.status_code == 500
        assert "no response" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize("path", [b"/raise-after", b"/short"])
async def test_a_response_the_app_left_unfinished_is_cut_by_a_close(path: bytes) -> None:
    async with running() as (host, port, _, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            await client.send_raw(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            client.sent()
            with pytest.raises(h11.RemoteProtocolError):
                while True:
                    await client.next_event()


async def test_idle_connection_is_closed_after_the_keep_alive_timeout() -> None:
    config = ServerConfig(keep_alive_timeout=0.2)
    async with running(config) as (host, port, _, _), connect(host, port) as client:
        with trio.fail_after(WAIT):
            await client.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            await client.response()
            assert await client.stream.receive_some(10) == b""


async def test_shutdown_closes_idle_connections_and_finishes_busy_ones() -> None:
    config = ServerConfig(graceful_timeout=WAIT)
    async with running(config) as (host, port, probe, stop):
        async with connect(host, port) as idle, connect(host, port) as busy:
            with trio.fail_after(WAIT):
                await idle.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                await idle.response()
                await busy.send_raw(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
                await probe.streaming.wait()
                stop.set()
                assert await idle.read_until_eof() == b""
                probe.stream_go.set()
                data = await busy.read_until_eof()
            assert data.endswith(b"3\r\nend\r\n0\r\n\r\n")


async def test_over_the_cap_the_longest_idle_connection_makes_room() -> None:
    """Idle keep-alive connections cannot lock everyone out: the oldest is closed."""
    config = ServerConfig(max_connections=2, keep_alive_timeout=WAIT)
    async with running(config) as (host, port, _, _):
        async with connect(host, port) as first, connect(host, port) as second:
            for c in (first, second):
                await c.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                with trio.fail_after(WAIT):
                    await c.response()
            async with connect(host, port) as third:
                await third.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                with trio.fail_after(WAIT):
                    head, _ = await third.response()
                assert head.status_code == 200
                with trio.fail_after(WAIT):
                    assert await first.read_until_eof() == b"", "the oldest idle one was closed"
                await second.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                with trio.fail_after(WAIT):
                    head, _ = await second.response()
                assert head.status_code == 200


async def test_over_the_cap_with_none_idle_is_a_503_at_once() -> None:
    config = ServerConfig(max_connections=1, keep_alive_timeout=WAIT, head_timeout=WAIT)
    async with running(config) as (host, port, _, _):
        async with connect(host, port) as busy:
            await busy.send_raw(b"GET /echo HTTP/1.1\r\n")  # a head in progress: not idle
            async with connect(host, port) as refused:
                await refused.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                with trio.fail_after(WAIT):
                    data = await refused.read_until_eof()
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ")
            assert b"retry-after: 1" in head
            assert json.loads(body)["error"]["reason"] == "over_capacity"
            await busy.send_raw(b"Host: x\r\n\r\n")
            with trio.fail_after(WAIT):
                head_event, _ = await busy.response()
            assert head_event.status_code == 200


async def test_a_head_must_arrive_within_the_head_timeout() -> None:
    config = ServerConfig(keep_alive_timeout=WAIT, head_timeout=0.2)
    async with running(config) as (host, port, _, _), connect(host, port) as client:
        await client.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        with trio.fail_after(WAIT):
            data = await client.read_until_eof()
    assert data.startswith(b"HTTP/1.1 408 ")
    assert json.loads(data.partition(b"\r\n\r\n")[2])["error"]["reason"] == "head_timeout"


async def test_an_idle_connection_waits_for_the_keep_alive_timeout_not_the_head_timeout() -> None:
    config = ServerConfig(keep_alive_timeout=WAIT, head_timeout=0.05)
    async with running(config) as (host, port, probe, _), connect(host, port) as client:
        await client.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(WAIT):
            await client.response()
        await trio.sleep(0.3)  # idle well past the head timeout, within keep-alive
        await client.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(WAIT):
            head, _ = await client.response()
        assert head.status_code == 200 and len(probe.scopes) == 2


async def test_four_mib_of_blank_lines_cost_little_and_stall_nobody() -> None:
    """Blank lines before a request count against the head bound and are not rescanned."""
    async with running() as (host, port, _, _):
        async with connect(host, port) as flood, connect(host, port) as bystander:

            async def send_flood() -> None:
                with contextlib.suppress(trio.BrokenResourceError):
                    for _ in range(64):
                        await flood.send_raw(b"\n" * 65536)
                    await flood.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_flood)
                with trio.fail_after(2):
                    await bystander.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                    head, _ = await bystander.response()
                assert head.status_code == 200
                with trio.fail_after(5):
                    data = await flood.read_until_eof()
                assert data.startswith(b"HTTP/1.1 431 ")


LENIENT_FRAMING = {
    "chunk-size-0x": b"0x3a\r\n" + b"a" * 0x3A + b"\r\n0\r\n\r\n",
    "chunk-size-plus": b"+3a\r\n" + b"a" * 0x3A + b"\r\n0\r\n\r\n",
    "chunk-size-underscore": b"0_3a\r\n" + b"a" * 0x3A + b"\r\n0\r\n\r\n",
    "chunk-size-space": b" 3a\r\n" + b"a" * 0x3A + b"\r\n0\r\n\r\n",
    "lf-in-chunk-extension": b"3;a\nb\r\nabc\r\n0\r\n\r\n",
    "trailer-without-colon": b"3\r\nabc\r\n0\r\nnocolon\r\n\r\n",
    "trailer-with-nul": b"3\r\nabc\r\n0\r\nA: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("body", LENIENT_FRAMING.values(), ids=LENIENT_FRAMING.keys())
async def test_lenient_chunked_framing_is_refused(body: bytes) -> None:
    async with running() as (host, port, _, _), connect(host, port) as client:
        await client.send_raw(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        )
        with trio.fail_after(WAIT):
            data = await client.read_until_eof()
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    assert b"connection: close" in data


async def test_a_stray_cr_before_the_end_of_a_head_is_refused() -> None:
    async with running() as (host, port, probe, _), connect(host, port) as client:
        await client.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\r\n\r\n")
        with trio.fail_after(WAIT):
            data = await client.read_until_eof()
    assert data.startswith(b"HTTP/1.1 400 ") and not probe.scopes


async def test_garbage_from_many_clients_leaves_the_server_serving() -> None:
    """Random bytes, cut heads and bodies, abrupt closes: each ends its own connection only,
    and the server stops cleanly with whatever they left behind."""
    import random

    rng = random.Random(5)
    pieces = [
        b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
        b"GET /stream HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
    ]
    config = ServerConfig(keep_alive_timeout=1.0)
    async with running(config) as (_, port, probe, _):
        probe.stream_go.set()
        with trio.fail_after(WAIT * 3):
            for _ in range(150):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                data = rng.choice(pieces) + rng.randbytes(rng.randrange(0, 64))
                cut = rng.randrange(0, len(data) + 1)
                try:
                    await stream.send_all(data[:cut])
                    if rng.random() < 0.5:
                        await stream.send_eof()
                        while await stream.receive_some(65536):
                            pass
                except trio.BrokenResourceError:
                    pass
                await trio.aclose_forcefully(stream)
            async with connect("127.0.0.1", port) as client:
                await client.send_raw(
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
                )
                head, body = await client.response()
                assert head.status_code == 200 and echo(body)["body"] == "ok"


async def test_a_head_marked_body_follows_goes_out_with_the_first_piece() -> None:
    """A relayed stream whose first event came with the upstream head: one write, not two."""
    import trio.testing

    from swapd.http.asgi import BODY_FOLLOWS
    from swapd.http.server import Connection, Server

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        start = {"type": "http.response.start", "status": 200, "headers": [], BODY_FOLLOWS: True}
        await send(start)
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    client, server_side = trio.testing.memory_stream_pair()
    writes: list[bytes] = []

    async def each_write() -> None:  # instead of the pair's pump: note each write, pass it on
        data = server_side.send_stream.get_data_nowait()
        writes.append(data)
        client.receive_stream.put_data(data)

    server_side.send_stream.send_all_hook = each_write
    connection = Connection(Server(app), server_side)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run)
        await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        with trio.fail_after(WAIT):
            while chunk := await client.receive_some(65536):
                data += chunk
                if data.endswith(b"0\r\n\r\n"):
                    break
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\n\r\n5\r\nfirst\r\n" in data
    assert writes[0].startswith(b"HTTP/1.1 200 OK") and writes[0].endswith(b"5\r\nfirst\r\n")
