"""The router over a real ProcessPool of fake upstreams: supervisors, processes, HTTP.

Real time, bounded by `trio.fail_after`; nothing sleeps to wait for an event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
import trio

from swapd.events import EventBus
from swapd.process import ProcessPool, ProcessSpec, StateChanged
from swapd.router import GroupSwapper, ModelPolicy, PoolControl, Router, RouterSettings
from swapd.router.errors import LoadFailed, RequestAborted
from tests.integration.conftest import fake_argv, free_port

WAIT = 30.0  # generous: 2 shared, loaded cores


def spec(model: str, *options: str) -> ProcessSpec:
    port = free_port()
    return ProcessSpec(
        model_id=model,
        argv=fake_argv(port, "--quiet", "--model", model, *options),
        proxy_url=f"http://127.0.0.1:{port}",
        health_check_timeout=WAIT,
        unload_timeout=5.0,
    )


@asynccontextmanager
async def running_router(
    specs: Sequence[ProcessSpec], *, max_wait: float = 30.0
) -> AsyncIterator[tuple[Router, ProcessPool, Counter[str]]]:
    """A pool and a router over it (one model at a time); yields the loads counter."""
    bus = EventBus()
    loads: Counter[str] = Counter()
    models = [s.model_id for s in specs]
    states = bus.subscribe(topics=["state"], maxlen=10_000)

    async def count_loads() -> None:
        async for event in states:
            if isinstance(event, StateChanged) and str(event.new) == "starting":
                loads[event.model] += 1

    async with ProcessPool(specs, bus) as pool, trio.open_nursery() as nursery:
        nursery.start_soon(count_loads)
        router = Router(
            PoolControl(pool),
            GroupSwapper.with_default({}, models),
            bus,
            RouterSettings(models={m: ModelPolicy() for m in models}, max_wait=max_wait),
        )
        await nursery.start(router.run)
        try:
            yield router, pool, loads
        finally:
            with trio.CancelScope(shield=True), trio.fail_after(WAIT):
                await router.shutdown()
            nursery.cancel_scope.cancel()


async def get(upstream: str, path: str) -> str:
    """A bare HTTP/1.0 GET: proves the granted upstream really answers."""
    host, port = upstream.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
    return data.decode(errors="replace")


@pytest.mark.trio
async def test_abcabc_concurrently_loads_each_model_once():
    specs = [spec(m) for m in "abc"]
    order: list[str] = []

    async def client(router: Router, pool: ProcessPool, model: str) -> None:
        async with router.lease(model) as grant:
            assert pool[model].in_flight >= 1  # held: the TTL cannot unload it now
            answer = await get(grant.upstream, "/v1/models")
            assert " 200 " in answer.splitlines()[0] and f'"{model}"' in answer
            order.append(model)

    with trio.fail_after(WAIT):
        async with running_router(specs) as (router, pool, loads):
            async with trio.open_nursery() as clients:
                for m in "abcabc":
                    clients.start_soon(client, router, pool, m)
                    await router.settled()  # each arrives before the next
            assert loads == {"a": 1, "b": 1, "c": 1}
            assert order == ["a", "a", "b", "b", "c", "c"]
            assert all(pool[m].in_flight == 0 for m in "abc")
            await router.settled()
            assert router.snapshot().reserved == {}


@pytest.mark.trio
async def test_steady_stream_for_a_does_not_starve_b_beyond_max_wait():
    max_wait = 2.0
    specs = [spec("a"), spec("b")]
    served_b = trio.Event()

    async def a_client(router: Router) -> None:
        try:
            async with router.lease("a"):
                await trio.sleep(0.3)  # a request that takes a while to serve
        except RequestAborted:
            pass  # still queued at the end of the test

    async def b_client(router: Router) -> None:
        async with router.lease("b") as grant:
            assert " 200 " in (await get(grant.upstream, "/health")).splitlines()[0]
            served_b.set()

    with trio.fail_after(WAIT):
        async with running_router(specs, max_wait=max_wait) as (router, _, loads):
            async with trio.open_nursery() as clients:
                clients.start_soon(a_client, router)
                for _ in range(5):  # a is loaded and busy: overlapping requests
                    await trio.sleep(0.1)
                    clients.start_soon(a_client, router)
                asked = trio.current_time()
                clients.start_soon(b_client, router)
                with trio.move_on_after(max_wait + 10) as waited:
                    while not served_b.is_set():
                        clients.start_soon(a_client, router)
                        with trio.move_on_after(0.1):
                            await served_b.wait()
                assert not waited.cancelled_caught, "b starved"
                took = trio.current_time() - asked
                clients.cancel_scope.cancel()
            # maxWait, then a drains (0.3 s), a stops and b loads: a few seconds at most.
            assert took < max_wait + 6.0
            assert loads["b"] == 1


@pytest.mark.trio
async def test_unload_while_loading_stops_the_process_and_fails_the_waiters():
    specs = [spec("a", "--load-delay", "20")]
    errors: list[Exception] = []

    async def waiter(router: Router) -> None:
        try:
            async with router.lease("a"):
                raise AssertionError("a never becomes ready")
        except RequestAborted as exc:
            errors.append(exc)

    with trio.fail_after(WAIT):
        async with running_router(specs) as (router, pool, _):
            starting = router.bus.subscribe(
                topics=["state"], predicate=lambda e: str(e.new) == "starting"
            )
            async with trio.open_nursery() as clients:
                clients.start_soon(waiter, router)
                clients.start_soon(waiter, router)
                await starting.receive()
                pid = pool["a"].pid
                assert pid is not None
                await router.unload(["a"])
                assert str(pool.states()["a"]) == "stopped"
                assert pool["a"].pid is None
            assert len(errors) == 2 and all(e.status == 503 for e in errors)
            await router.settled()
            assert router.snapshot().reserved == {} and router.snapshot().swaps == ()


@pytest.mark.trio
async def test_load_failure_reaches_every_waiter():
    specs = [spec("a", "--exit-during-start", "0.05", "--load-delay", "5")]
    failures: list[LoadFailed] = []

    async def waiter(router: Router) -> None:
        try:
            async with router.lease("a"):
                raise AssertionError("the load must fail")
        except LoadFailed as exc:
            failures.append(exc)

    with trio.fail_after(WAIT):
        async with running_router(specs) as (router, _, loads):
            async with trio.open_nursery() as clients:
                for _ in range(3):
                    clients.start_soon(waiter, router)
                    await router.settled()
            assert len(failures) == 3
            assert loads["a"] == 1  # one load, its failure fanned out to every waiter
            assert all(f.status == 500 and f.reason for f in failures)
            await router.settled()
            assert router.snapshot().reserved == {}


@pytest.mark.trio
async def test_abandoned_load_is_aborted():
    """Beyond llama-swap (#727): the last waiter leaves, the load is stopped."""
    specs = [spec("a", "--load-delay", "20")]
    with trio.fail_after(WAIT):
        async with running_router(specs) as (router, pool, _):
            finished = router.bus.subscribe(topics=["swap"], predicate=lambda e: hasattr(e, "ok"))
            starting = router.bus.subscribe(
                topics=["state"], predicate=lambda e: str(e.new) == "starting"
            )
            async with trio.open_nursery() as clients:

                async def leaving_client() -> None:
                    async with router.lease("a"):
                        raise AssertionError("never ready")

                clients.start_soon(leaving_client)
                await starting.receive()
                clients.cancel_scope.cancel()
            result = await finished.receive()
            assert result.error is not None and result.error.aborted
            assert str(pool.states()["a"]) == "stopped"
            await router.settled()
            assert router.snapshot().swaps == () and router.snapshot().reserved == {}
