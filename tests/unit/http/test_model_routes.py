"""The relay handler called as ASGI in memory: body timeout, disconnect watching, fast path.

No sockets: the router and the upstream client are stand-ins, and time is a
MockClock that jumps when every task waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from swapd.events import EventBus
from swapd.http.disconnect import WATCH_AFTER
from swapd.http.logs_hub import LogHub
from swapd.http.model_routes import BODY_TIMEOUT, ModelRoutes
from swapd.http.services import Services
from swapd.http.settings import ApiSettings, ModelView
from swapd.router.run_loop import RouterSnapshot

BODY = b'{"model": "m", "messages": []}'
ANSWER = b'{"usage": {"prompt_tokens": 3, "completion_tokens": 2}}'


@dataclass
class Grant:
    upstream: str = "http://127.0.0.1:9"
    swap_id: int | None = None
    load_wait_s: float | None = None


@dataclass
class Router:
    """Grants at once, or holds the leases of `hold` (every model with True) until
    `release` is set."""

    hold: bool | str = False
    release: trio.Event = field(default_factory=trio.Event)
    entered: trio.Event = field(default_factory=trio.Event)
    left: int = 0
    granted: list[str] = field(default_factory=list)

    @asynccontextmanager
    async def lease(
        self,
        model: str,
        progress: Any = None,
        on_cut: Any = None,
        request_id: Any = None,
    ) -> AsyncIterator[Grant]:
        self.entered.set()
        try:
            if self.hold is True or self.hold == model:
                await self.release.wait()
            self.granted.append(model)
            yield Grant()
        finally:
            self.left += 1

    async def unload(self, models: Any = None) -> None:
        return None

    def snapshot(self) -> RouterSnapshot:
        return RouterSnapshot.empty()


class Pool:
    def states(self) -> dict[str, str]:
        return {}

    def __getitem__(self, model_id: str) -> Any:
        raise KeyError(model_id)


class Response:
    """An upstream answer that arrived whole with its head."""

    def __init__(self) -> None:
        self.status = 200
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(ANSWER)),
        ]
        self.truncated = False
        self.closed = False
        self.body_at_hand = True

    def body_if_buffered(self) -> bytes:
        return ANSWER

    async def chunks(self) -> AsyncIterator[bytes]:
        raise AssertionError("a buffered body is not read piece by piece")
        yield b""

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class Client:
    """The upstream client: answers at once, or only once `answer` is set."""

    answer: trio.Event | None = None
    sent: list[str] = field(default_factory=list)

    async def request(self, method: str, url: str, headers: Any, body: bytes, **_: Any) -> Any:
        self.sent.append(url)
        if self.answer is not None:
            await self.answer.wait()
        return Response()

    async def aclose(self) -> None:
        return None


class Exchange:
    """One request as the server sees it: `receive` and `send` with a record of the calls."""

    def __init__(self, body: bytes | None = BODY) -> None:
        self.body = body
        self.receives = 0
        self.gone = trio.Event()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        if self.receives == 1:
            if self.body is None:  # a slow-loris client: the body never comes
                await trio.sleep_forever()
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
    }


def routes(router: Router, client: Client) -> tuple[ModelRoutes, Services]:
    bus = EventBus()
    views = {m: ModelView(m, proxy="http://127.0.0.1:9") for m in ("m", "slow")}
    services = Services(
        ApiSettings(models=views), router, Pool(), bus, LogHub(bus), client=client,  # type: ignore[arg-type]
    )  # fmt: skip
    return ModelRoutes(services), services


@asynccontextmanager
async def watching(services: Services, shared: bool) -> AsyncIterator[trio.Nursery]:
    """A nursery for the test's requests; with `shared`, the app's `Watches` task runs
    (as in the daemon), else each request's watch times itself."""
    async with trio.open_nursery() as nursery:
        if shared:
            await nursery.start(services.watches.run)
        yield nursery
        nursery.cancel_scope.cancel()


SHARED = pytest.mark.parametrize("shared", [True, False], ids=["watches-task", "alone"])


@pytest.mark.trio
@SHARED
async def test_a_quick_request_never_listens_for_a_disconnect(
    autojump_clock: MockClock, shared: bool
) -> None:
    app, services = routes(Router(), Client())
    exchange = Exchange()
    async with watching(services, shared):
        await app(scope(), exchange.receive, exchange.send)
        assert exchange.status == 200
        assert exchange.sent[-1] == {
            "type": "http.response.body", "body": ANSWER, "more_body": False,
        }  # fmt: skip
        assert exchange.receives == 1  # only the body: the watch never asked the server
        assert services.in_flight.snapshot() == []
        assert trio.current_time() < WATCH_AFTER  # and it did not wait for its watch either
        await trio.sleep(WATCH_AFTER * 2)
        assert exchange.receives == 1  # nor listened once the request was over
        assert services.watches.pending == 0


@pytest.mark.trio
@SHARED
async def test_a_slow_request_listens_after_a_while(
    autojump_clock: MockClock, shared: bool
) -> None:
    answer = trio.Event()
    app, services = routes(Router(), Client(answer=answer))
    exchange = Exchange()
    async with watching(services, shared) as nursery:
        nursery.start_soon(app, scope(), exchange.receive, exchange.send)
        await trio.sleep(WATCH_AFTER / 2)
        assert exchange.receives == 1
        await trio.sleep(WATCH_AFTER)
        assert exchange.receives == 2  # the watch listens now
        answer.set()
        await trio.testing.wait_all_tasks_blocked()
    assert exchange.status == 200  # and the answer still went out whole


@pytest.mark.trio
@SHARED
async def test_leaving_while_queued_leaves_the_queue(
    autojump_clock: MockClock, shared: bool
) -> None:
    router = Router(hold=True)
    client = Client()
    app, services = routes(router, client)
    exchange = Exchange()
    async with watching(services, shared) as nursery:
        done = trio.Event()

        async def request() -> None:
            await app(scope(), exchange.receive, exchange.send)
            done.set()

        nursery.start_soon(request)
        await router.entered.wait()
        exchange.gone.set()  # the client leaves at once, before the watch listens
        await done.wait()
    assert trio.current_time() >= WATCH_AFTER  # noticed once the watch listened
    assert router.left == 1 and client.sent == []
    assert exchange.sent == []  # nobody to answer
    assert services.in_flight.snapshot() == []


@pytest.mark.trio
@SHARED
async def test_leaving_while_the_upstream_thinks_cancels_it(
    autojump_clock: MockClock, shared: bool
) -> None:
    answer = trio.Event()
    client = Client(answer=answer)
    router = Router()
    app, services = routes(router, client)
    exchange = Exchange()
    async with watching(services, shared) as nursery:
        done = trio.Event()

        async def request() -> None:
            await app(scope(), exchange.receive, exchange.send)
            done.set()

        nursery.start_soon(request)
        await trio.sleep(WATCH_AFTER * 2)
        assert client.sent
        exchange.gone.set()
        await done.wait()
    assert not answer.is_set() and router.left == 1
    assert exchange.sent == []


@pytest.mark.trio
async def test_a_body_that_never_comes_is_408(autojump_clock: MockClock) -> None:
    router = Router()
    app, _ = routes(router, Client())
    exchange = Exchange(body=None)
    await app(scope(), exchange.receive, exchange.send)
    assert exchange.status == 408
    assert trio.current_time() == pytest.approx(BODY_TIMEOUT)
    assert b"did not arrive within" in exchange.sent[-1]["body"]
    assert not router.entered.is_set()
