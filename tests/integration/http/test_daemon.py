"""A whole swapd (config, pool, router, app) with fake upstreams: swaps, unloads, disconnects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from tests.integration.http.conftest import client, daemon
from tests.integration.http.test_local_models import FAKE, config, wait_state


async def wait_router(d: Any, predicate: Any) -> None:
    """Wait until `predicate(queue_length, in_flight)` holds, re-checked on queue events."""
    source = d.services.metrics.source
    with trio.fail_after(10), d.bus.subscribe(topics=("queue", "request")) as sub:
        while not predicate(source.queue_length(), source.in_flight()):
            await sub.receive()


async def wait_handlers_gone(d: Any) -> None:
    """Wait until no HTTP handler is in flight, then until the router has heard of it all."""
    with trio.fail_after(10), d.bus.subscribe(topics=("inflight",)) as sub:
        while d.services.in_flight.snapshot():
            await sub.receive()
    await d.router.settled()


@pytest.mark.trio
async def test_unload_routes(tmp_path: Path) -> None:
    async with daemon(tmp_path, config()) as (base, _), client(base) as c:
        assert (await c.post("/v1/chat/completions", json={"model": "a"})).status_code == 200
        r = await c.post("/api/models/unload/alpha")
        assert (r.status_code, r.text) == (200, "OK")
        assert (await c.get("/running")).json() == {"running": []}
        assert (await c.post("/api/models/unload/nobody")).status_code == 404
        assert (await c.post("/v1/chat/completions", json={"model": "a"})).status_code == 200
        r = await c.get("/unload")
        assert (r.status_code, r.text) == (200, "OK")
        assert (await c.get("/running")).json() == {"running": []}
        assert (await c.post("/api/models/unload")).json() == {"msg": "ok"}
        metrics = (await c.get("/metrics")).text
        assert 'swapd_swaps_total{model="a",result="ok"} 2.0' in metrics
        assert 'swapd_model_state{model="a",state="stopped"} 1.0' in metrics


async def leave_after(
    c: httpx2.AsyncClient,
    payload: dict[str, Any],
    leave: trio.Event,
    first_byte: trio.Event | None = None,
) -> None:
    """Send a request and drop the connection when `leave` is set."""
    async with trio.open_nursery() as nursery:

        async def go() -> None:
            async with c.stream("POST", "/v1/chat/completions", json=payload) as r:
                async for _ in r.aiter_bytes():
                    if first_byte is not None:
                        first_byte.set()

        nursery.start_soon(go)
        await leave.wait()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_disconnects_leave_nothing_behind(tmp_path: Path) -> None:
    models = f"""
  slowload:
    cmd: {FAKE} --load-delay 1.5
  endless:
    cmd: {FAKE} --token-interval 0.01 --tokens 100000
"""
    async with daemon(tmp_path, config(models)) as (base, d), client(base) as c:
        # mid-stream: the client leaves while tokens flow
        leave, flowing = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            payload = {"model": "endless", "stream": True}
            nursery.start_soon(leave_after, c, payload, leave, flowing)
            await flowing.wait()
            assert d.router.snapshot().in_flight == {"endless": 1}
            leave.set()
        await wait_handlers_gone(d)
        assert d.router.snapshot().in_flight == {}
        # while loading: the client leaves during slowload's load
        leave = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(leave_after, c, {"model": "slowload", "stream": True}, leave)
            await wait_state(d, "slowload", "starting")
            leave.set()
        # while queued: a request for a waits behind the load of slowload
        leave_loader, leave_queued = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(leave_after, c, {"model": "slowload"}, leave_loader)
            await wait_state(d, "slowload", "starting")
            nursery.start_soon(leave_after, c, {"model": "a"}, leave_queued)
            await wait_router(d, lambda queued, serving: queued == 1)
            leave_queued.set()
            await wait_router(d, lambda queued, serving: queued == 0)
            leave_loader.set()
        await wait_handlers_gone(d)
        snapshot = d.router.snapshot()
        assert (snapshot.queue, snapshot.in_flight, snapshot.reserved) == ((), {}, {})
        # nothing leaked: every model still serves, and the router holds no request
        for model in ("endless", "slowload", "a"):
            r = await c.post("/v1/chat/completions", json={"model": model, "max_tokens": 1})
            assert r.status_code == 200, (model, r.text)
        metrics = (await c.get("/metrics")).text
        in_flight = [line for line in metrics.splitlines() if line.startswith("swapd_in_flight")]
        assert all(line.endswith(" 0.0") for line in in_flight), in_flight
        assert "swapd_queue_length 0.0" in metrics


@pytest.mark.trio
async def test_stop_drains_in_flight_and_refuses_new(tmp_path: Path) -> None:
    models = f"""
  steady:
    cmd: {FAKE} --token-interval 0.02 --tokens 25
"""
    async with daemon(tmp_path, config(models)) as (base, d), client(base) as c:
        async with c.stream(
            "POST", "/v1/chat/completions", json={"model": "steady", "stream": True}
        ) as r:
            chunks = r.aiter_text()
            text = await anext(chunks)
            d.request_stop()
            refused = await c.post("/v1/chat/completions", json={"model": "steady"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "service_unavailable"
            assert refused.json()["error"]["reason"] == "shutting_down"
            text += "".join([t async for t in chunks])
        assert text.endswith("data: [DONE]\n\n"), "the request in flight was allowed to finish"


@pytest.mark.trio
async def test_leaving_while_the_upstream_thinks(tmp_path: Path) -> None:
    """A non-streaming request whose answer is long in coming: the client leaving ends it."""
    models = f"""
  thinker:
    cmd: {FAKE} --response-delay 60
"""
    async with daemon(tmp_path, config(models)) as (base, d), client(base) as c:
        leave = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(leave_after, c, {"model": "thinker"}, leave)
            await wait_router(d, lambda queued, serving: serving == {"thinker": 1})
            leave.set()
        await wait_handlers_gone(d)
        assert d.router.snapshot().in_flight == {}
