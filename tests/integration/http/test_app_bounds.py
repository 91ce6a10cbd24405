"""What no client can get around, driven by raw sockets against the app on swapd's server.

Clients never receive each other's answers (the upstream pool), form bodies
are bounded, request bodies share one budget, nesting is a 400, and on
loopback without keys only loopback Hosts and Origins, and only JSON bodies
on model routes, are served.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from swapd.events import EventBus
from swapd.http.logs_hub import LogHub
from swapd.http.services import Services
from swapd.http.settings import ApiSettings, ModelView
from swapd.testing.stand_ins import GrantAtOnce, NoPool
from tests.integration.http.conftest import app_only, serve_app

pytestmark = pytest.mark.trio

WAIT = 10.0


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


async def exchange(port: int, data: bytes, *, within: float = WAIT) -> tuple[bytes, bytes]:
    """Send raw bytes, read until the server closes; (head, body) of the answer."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        with trio.fail_after(within):
            try:
                await stream.send_all(data)
            except trio.BrokenResourceError:
                pass
            received = b""
            try:
                while chunk := await stream.receive_some(65536):
                    received += chunk
            except trio.BrokenResourceError:
                pass
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def reason_of(body: bytes) -> str:
    return str(json.loads(body)["error"].get("reason"))


def post(
    path: str, body: bytes, content_type: bytes = b"application/json", **extra: bytes
) -> bytes:
    fields = b"".join(b"%s: %s\r\n" % (k.replace("_", "-").encode(), v) for k, v in extra.items())
    return (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n%s\r\n%s" % (path.encode(), content_type, len(body), fields, body)
    )


# ----- the upstream pool: every client gets its own answer ------------------------------


async def read_request_line(stream: trio.SocketStream) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:  # swapd dropped the connection: fine
            return ""
        if not chunk:
            return ""
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def answer(target: str) -> bytes:
    body = json.dumps({"echo_target": target}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


STALE = answer("/stale")


@asynccontextmanager
async def misbehaving_upstream(mode: str) -> AsyncIterator[tuple[str, trio.Event, trio.Event]]:
    """An upstream that writes past the end of its response to /misbehave, once told to.

    Yields its URL, the event that lets it write the stray bytes, and the one
    it sets once they are written.
    """
    go, sent = trio.Event(), trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        while line := await read_request_line(stream):
            target = line.split(" ")[1]
            if target != "/misbehave":
                await stream.send_all(answer(target))
                continue
            if mode == "after-204":
                await stream.send_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                stray = STALE
            elif mode == "body-after-head":
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(STALE))
                stray = STALE
            else:  # extra-response
                await stream.send_all(answer(target))
                stray = STALE
            await go.wait()
            await stream.send_all(stray)
            sent.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", go, sent
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("mode", ["after-204", "body-after-head", "extra-response"])
async def test_clients_never_receive_each_others_answers(mode: str) -> None:
    async with misbehaving_upstream(mode) as (url, go, sent):
        bus = EventBus()
        settings = ApiSettings(models={"m": ModelView("m")})
        services = Services(settings, GrantAtOnce({"m": url}), NoPool(), bus, LogHub(bus))
        async with serve_app(services) as base:
            port = port_of(base)
            method = b"HEAD" if mode == "body-after-head" else b"GET"
            head, _ = await exchange(
                port, b"%s /upstream/m/misbehave HTTP/1.1\r\nConnection: close\r\n\r\n" % method
            )
            assert status_of(head) in (200, 204)
            go.set()
            with trio.fail_after(WAIT):
                await sent.wait()
            for private in ("/B-private", "/C-private"):
                request = b"GET /upstream/m%s HTTP/1.1\r\nConnection: close\r\n\r\n" % (
                    private.encode()
                )
                head, body = await exchange(port, request)
                assert status_of(head) == 200, head
                assert json.loads(body) == {"echo_target": private}


# ----- forms -------------------------------------------------------------------------------

FORM_ROUTE = "/v1/audio/transcriptions"


def multipart_form(parts: int, boundary: bytes = b"b") -> bytes:
    one = b'--%s\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n' % boundary
    return one * parts + b"--%s--\r\n" % boundary


async def test_a_form_of_too_many_parts_is_a_413_and_stalls_nobody() -> None:
    async with app_only(ApiSettings()) as (base, _):  # the default: 1000 parts
        port = port_of(base)
        body = multipart_form(300_000)
        request = post(FORM_ROUTE, body, b"multipart/form-data; boundary=b")
        results: dict[str, Any] = {}

        async def big() -> None:
            results["big"] = await exchange(port, request)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(big)
            await trio.sleep(0.05)
            with trio.fail_after(2):
                head, _ = await exchange(port, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert status_of(head) == 200
        head, body_out = results["big"]
        assert status_of(head) == 413 and reason_of(body_out) == "form_too_large"


async def test_an_url_encoded_form_of_too_many_fields_is_a_413() -> None:
    async with app_only(ApiSettings()) as (base, _):
        request = post(FORM_ROUTE, b"a&" * 2_000_000, b"application/x-www-form-urlencoded")
        head, body = await exchange(port_of(base), request)
    assert status_of(head) == 413 and reason_of(body) == "form_too_large"


async def test_a_form_field_over_its_bound_is_a_413() -> None:
    async with app_only(ApiSettings(max_form_field_size=1000)) as (base, _):
        field = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n' + b"m" * 2000
        body = field + b"\r\n--b--\r\n"
        head, out = await exchange(
            port_of(base), post(FORM_ROUTE, body, b"multipart/form-data; boundary=b")
        )
        assert status_of(head) == 413 and reason_of(out) == "form_too_large"
        body = b"model=" + b"m" * 2000
        head, out = await exchange(
            port_of(base), post(FORM_ROUTE, body, b"application/x-www-form-urlencoded")
        )
        assert status_of(head) == 413 and reason_of(out) == "form_too_large"


# ----- the body budget ---------------------------------------------------------------------


async def test_request_bodies_held_at_once_share_one_budget() -> None:
    settings = ApiSettings(request_body_budget=100_000)
    async with app_only(settings) as (base, services):
        port = port_of(base)
        payload = b'{"model": "nope", "pad": "' + b"a" * 79_950 + b'"}'
        first = await trio.open_tcp_stream("127.0.0.1", port)
        async with first:
            whole = post("/v1/chat/completions", payload, expect=b"100-continue")
            head_end = whole.index(b"\r\n\r\n") + 4
            await first.send_all(whole[:head_end])
            with trio.fail_after(WAIT):  # asked for once its share of the budget is held
                assert (await first.receive_some(65536)).startswith(b"HTTP/1.1 100 ")
            await first.send_all(whole[head_end:-1000])  # the body, unfinished
            head, body = await exchange(port, post("/v1/chat/completions", payload))
            assert status_of(head) == 503, head
            assert b"retry-after: 1" in head.lower()
            assert reason_of(body) == "body_budget"
            await first.send_all(whole[-1000:])
            with trio.fail_after(WAIT):
                data = b""
                while chunk := await first.receive_some(65536):
                    data += chunk
            assert status_of(data) == 404  # read whole, then: no such model
        assert services.body_budget.held == 0
        head, _ = await exchange(port, post("/v1/chat/completions", payload))
        assert status_of(head) == 404


# ----- nesting ------------------------------------------------------------------------------


async def test_json_nested_too_deeply_is_a_400_without_a_traceback() -> None:
    async with app_only(ApiSettings()) as (base, services):
        deep = b'{"model": "m", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        head, body = await exchange(port_of(base), post("/v1/chat/completions", deep))
        assert status_of(head) == 400, body
        error = json.loads(body)["error"]
        assert "nested too deeply" in error["message"]
        assert "Traceback" not in "".join(line.text for line in services.logs.proxy.lines())


# ----- loopback without keys ------------------------------------------------------------------

CHAT = b'{"model": "nope", "messages": []}'


def request(host: bytes | None, *, origin: bytes | None = None, method: bytes = b"GET") -> bytes:
    lines = [b"%s /v1/models HTTP/1.1" % method, b"Connection: close"]
    if host is not None:
        lines.append(b"Host: " + host)
    if origin is not None:
        lines.append(b"Origin: " + origin)
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (b"127.0.0.1:8080", 200),
        (b"localhost", 200),
        (b"LOCALHOST:1", 200),
        (b"app.localhost", 200),
        (b"127.9.9.9", 200),
        (b"[::1]:8080", 200),
        (b"myhost:9", 200),
        (None, 200),
        (b"evil.example", 403),
        (b"evil.example:8080", 403),
        (b"127.0.0.1.evil.example", 403),
        (b"otherhost", 403),
    ],
)
async def test_only_loopback_and_allowed_hosts_are_served(host: bytes | None, status: int) -> None:
    async with app_only(ApiSettings(allowed_hosts=("myhost",))) as (base, _):
        head, body = await exchange(port_of(base), request(host))
    assert status_of(head) == status
    if status == 403:
        assert reason_of(body) == "host_not_allowed"


@pytest.mark.parametrize(
    ("origin", "method", "status"),
    [
        (b"http://localhost:3000", b"GET", 200),
        (b"http://127.0.0.1:8080", b"OPTIONS", 204),
        (b"https://evil.example", b"GET", 403),
        (b"https://evil.example", b"OPTIONS", 403),
        (b"null", b"GET", 403),
    ],
)
async def test_cross_site_origins_are_refused(origin: bytes, method: bytes, status: int) -> None:
    async with app_only(ApiSettings()) as (base, _):
        head, _ = await exchange(port_of(base), request(b"127.0.0.1", origin=origin, method=method))
    assert status_of(head) == status


@pytest.mark.parametrize(
    ("path", "content_type", "status"),
    [
        ("/v1/chat/completions", b"text/plain", 415),
        ("/v1/chat/completions", b"application/x-www-form-urlencoded", 415),
        ("/v1/chat/completions", b"multipart/form-data; boundary=b", 415),
        ("/v1/chat/completions", None, 415),
        ("/upstream/m/completion", b"text/plain", 415),
        ("/v1/chat/completions", b"application/json; charset=utf-8", 404),
        (FORM_ROUTE, b"application/x-www-form-urlencoded", 404),
    ],
)
async def test_model_routes_take_only_what_a_page_cannot_send_cross_site(
    path: str, content_type: bytes | None, status: int
) -> None:
    body = CHAT if content_type != b"application/x-www-form-urlencoded" else b"model=nope"
    async with app_only(ApiSettings()) as (base, _):
        data = post(path, body, content_type or b"")
        if content_type is None:
            data = data.replace(b"Content-Type: \r\n", b"")
        head, out = await exchange(port_of(base), data)
    assert status_of(head) == status, out
    if status == 415:
        assert reason_of(out) == "content_type"


async def test_with_api_keys_the_loopback_checks_are_off() -> None:
    async with app_only(ApiSettings(api_keys=("k",))) as (base, _):
        head, _ = await exchange(
            port_of(base),
            b"GET /v1/models HTTP/1.1\r\nHost: evil.example\r\nOrigin: https://evil.example\r\n"
            b"Authorization: Bearer k\r\nConnection: close\r\n\r\n",
        )
    assert status_of(head) == 200


# ----- slow requests say where they waited ---------------------------------------------------


async def test_a_slow_request_is_logged_with_the_phase_it_waited_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("swapd.http.timeline.SLOW_SECONDS", 0.05)

    async def slow_head(stream: trio.SocketStream) -> None:
        while line := await read_request_line(stream):
            await trio.sleep(0.2)  # the model server takes its time to answer
            await stream.send_all(answer(line.split(" ")[1]))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, slow_head, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        bus = EventBus()
        settings = ApiSettings(models={"m": ModelView("m")})
        services = Services(settings, GrantAtOnce({"m": url}), NoPool(), bus, LogHub(bus))
        async with serve_app(services) as base:
            head, _ = await exchange(
                port_of(base), b"GET /upstream/m/x HTTP/1.1\r\nConnection: close\r\n\r\n"
            )
            assert status_of(head) == 200
        nursery.cancel_scope.cancel()
    lines = [line.text for line in services.logs.proxy.lines() if "slow request" in line.text]
    assert len(lines) == 1, lines
    assert "for m took" in lines[0] and "upstream head 0." in lines[0]
    assert "(ended in response)" in lines[0]
