"""A whole swapd (config, pool, router, app) with fake upstreams: swaps, unloads, disconnects."""

from __future__ import annotations

import json
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
        assert (await c.get("/running")).json() == {"running": [], "pending": {}}
        assert (await c.post("/api/models/unload/nobody")).status_code == 404
        assert (await c.post("/v1/chat/completions", json={"model": "a"})).status_code == 200
        r = await c.get("/unload")
        assert (r.status_code, r.text) == (200, "OK")
        assert (await c.get("/running")).json() == {"running": [], "pending": {}}
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


async def first_chunk_then_rest(c: httpx2.AsyncClient, model: str, started: trio.Event) -> str:
    """A streaming chat request: signal once its first chunk arrived, return its whole text."""
    async with c.stream("POST", "/v1/chat/completions", json={"model": model, "stream": True}) as r:
        assert r.status_code == 200
        chunks = r.aiter_text()
        text = await anext(chunks)
        started.set()
        return text + "".join([t async for t in chunks])


@pytest.mark.trio
async def test_unload_waits_for_a_stream_in_flight_then_stops(tmp_path: Path) -> None:
    models = f"""
  steady:
    cmd: {FAKE} --token-interval 0.02 --tokens 40
"""
    async with daemon(tmp_path, config(models)) as (base, d), client(base) as c:
        streamed = trio.Event()
        result: dict[str, Any] = {}

        async def stream() -> None:
            result["text"] = await first_chunk_then_rest(c, "steady", streamed)
            result["ended_at"] = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream)
            await streamed.wait()
            r = await c.post("/api/models/unload/steady")
            unloaded_at = trio.current_time()
        assert r.status_code == 200
        assert result["text"].endswith("data: [DONE]\n\n"), "the stream was not cut"
        assert unloaded_at >= result["ended_at"], "the unload returned after the stream ended"
        assert d.services.state_of("steady") == "stopped"
        waits = [x for x in d.router.decisions() if x.action == "unload_wait"]
        assert waits and "1 request(s) in flight" in waits[0].reason


@pytest.mark.trio
async def test_unload_now_ends_a_stream_with_an_error_event_and_records_it_aborted(
    tmp_path: Path,
) -> None:
    models = f"""
  endless:
    cmd: {FAKE} --token-interval 0.01 --tokens 100000
"""
    async with daemon(tmp_path, config(models)) as (base, d), client(base) as c:
        streamed = trio.Event()
        result: dict[str, str] = {}
        with d.bus.subscribe(topics=("request",)) as requests:

            async def stream() -> None:
                result["text"] = await first_chunk_then_rest(c, "endless", streamed)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream)
                await streamed.wait()
                with trio.fail_after(10):
                    cut = await d.router.unload(["endless"], now=True)
            assert cut == 1
            with trio.fail_after(10):
                phases = []
                while "aborted" not in phases:
                    phases.append((await requests.receive()).phase)
            assert "done" not in phases
        last = result["text"].rstrip("\n").split("\n\n")[-1]
        assert last.startswith("data: ") and "[DONE]" not in result["text"]
        error = json.loads(last[len("data: ") :])["error"]
        assert (error["code"], error["reason"]) == ("service_unavailable", "request_aborted")
        assert "endless was unloaded while 1 request(s) were in flight" in error["message"]
        assert d.services.state_of("endless") == "stopped"
        assert d.router.snapshot().in_flight == {}


@pytest.mark.trio
async def test_an_evicted_server_that_ignores_sigterm_gets_its_own_unload_timeout(
    tmp_path: Path,
) -> None:
    """Not the global healthCheckTimeout (15 s here) as llama-swap gives it."""
    models = f"""
  stubborn:
    cmd: {FAKE} --ignore-sigterm
    unloadTimeout: 1
  other:
    cmd: {FAKE}
"""
    async with daemon(tmp_path, config(models)) as (base, d), client(base) as c:
        assert (await c.post("/v1/chat/completions", json={"model": "stubborn"})).status_code == 200
        started = trio.current_time()
        assert (await c.post("/v1/chat/completions", json={"model": "other"})).status_code == 200
        assert trio.current_time() - started < 8, "killed after 1 s, not after 15 s"
        assert d.services.state_of("stubborn") == "stopped"
