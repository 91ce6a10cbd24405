"""The run loop with a fake ProcessControl on a mock clock: leases, cancellation,
abandoned loads, unload, shutdown, progress, bounded wait and replay."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing

from swapd.events import EventBus
from swapd.router.errors import LoadFailed, ModelNotFound, RequestAborted, TooManyRequests
from swapd.router.events import Progress, SwapFinished
from swapd.router.group_swapper import GroupSwapper
from swapd.router.run_loop import Router, RouterSettings
from swapd.router.scheduler import FifoScheduler, ModelPolicy, SchedulerSettings
from tests.unit.router.fake_processes import FakeProcesses
from tests.unit.router.harness import Recorder

ABC = ["a", "b", "c"]


def make_router(
    procs: FakeProcesses,
    models: Sequence[str] = ABC,
    *,
    limit: int = 10,
    max_wait: float = 30.0,
    keep: bool = False,
) -> Router:
    settings = RouterSettings(
        models={m: ModelPolicy(limit=limit) for m in models},
        max_wait=max_wait,
        keep_abandoned_loads=keep,
        record_inputs=True,
    )
    return Router(procs, GroupSwapper.with_default({}, models), EventBus(), settings)


def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def serve(router: Router, model: str, order: list[str], seconds: float = 0.5) -> None:
    async with router.lease(model) as grant:
        assert grant.upstream == f"http://fake/{model}"
        order.append(model)
        await trio.sleep(seconds)


async def serve_unless_aborted(router: Router, model: str, order: list[str], seconds: float):
    try:
        await serve(router, model, order, seconds)
    except RequestAborted:
        pass


def run(fn):
    trio.run(fn, clock=mock_clock())


def test_abcabc_is_served_aabbcc_with_three_loads():
    async def main():
        procs = FakeProcesses(ABC)
        router = make_router(procs)
        order: list[str] = []
        async with trio.open_nursery() as n:
            await n.start(router.run)
            async with trio.open_nursery() as clients:
                for m in "abcabc":
                    clients.start_soon(serve, router, m, order)
                    await trio.testing.wait_all_tasks_blocked()
            await router.settled()
            snap = router.snapshot()
            assert snap.in_flight == {} and snap.reserved == {} and snap.queue == ()
            await router.shutdown()
        assert order == ["a", "a", "b", "b", "c", "c"]
        assert procs.loads == {"a": 1, "b": 1, "c": 1}
        assert sum(procs.held.values()) == 0

    run(main)


def test_errors_at_admission_and_load_failure_reach_every_waiter():
    async def main():
        procs = FakeProcesses(ABC, failing=["b"])
        router = make_router(procs, limit=2)
        results: list[object] = []

        async def attempt(model: str) -> None:
            try:
                async with router.lease(model):
                    await trio.sleep(1)
                    results.append("ok")
            except (LoadFailed, ModelNotFound, TooManyRequests) as exc:
                results.append(exc)

        async with trio.open_nursery() as n:
            await n.start(router.run)
            async with trio.open_nursery() as clients:
                for m in ["b", "b", "b", "nope"]:
                    clients.start_soon(attempt, m)
                    await trio.testing.wait_all_tasks_blocked()
            await router.shutdown()
        too_many, not_found, *failed = results
        assert isinstance(too_many, TooManyRequests) and too_many.status == 429
        assert isinstance(not_found, ModelNotFound) and not_found.status == 404
        assert len(failed) == 2 and all(isinstance(e, LoadFailed) for e in failed)
        assert failed[0].reason == "exited prematurely"
        assert failed[0].log_tail == "line 1\nline 2"
        assert router.snapshot().reserved == {}

    run(main)


def test_cancel_while_queued_leaves_no_trace():
    async def main():
        procs = FakeProcesses(ABC)
        router = make_router(procs)
        order: list[str] = []
        async with trio.open_nursery() as n:
            await n.start(router.run)
            n.start_soon(serve, router, "a", order, 5.0)
            await trio.sleep(1.5)  # a is loaded and serving
            with trio.move_on_after(0.5):
                async with router.lease("b"):
                    raise AssertionError("b must not be granted")
            await router.settled()
            snap = router.snapshot()
            assert snap.queue == () and snap.reserved == {"a": 1}
            await router.shutdown()
        assert procs.loads == {"a": 1}

    run(main)


def test_abandoned_load_is_aborted_and_kept_when_configured():
    async def main(keep: bool):
        procs = FakeProcesses(ABC, load_seconds=10)
        router = make_router(procs, keep=keep)
        async with trio.open_nursery() as n:
            await n.start(router.run)
            with trio.move_on_after(1):
                async with router.lease("a"):
                    raise AssertionError("not ready yet")
            await router.settled()
            await trio.sleep(20)
            await router.settled()
            state = procs.state["a"]
            aborted = ("a", "load aborted") in procs.stops
            await router.shutdown()
        return state, aborted

    results = {}

    async def both():
        results[False] = await main(False)
        results[True] = await main(True)

    run(both)
    assert results[False] == ("stopped", True)
    assert results[True] == ("ready", False)


def test_handler_cancelled_after_its_grant_still_reports_serve_done():
    """Granted, then cancelled before it resumed: serve-done is still reported."""

    async def main():
        procs = FakeProcesses(ABC)
        router = make_router(procs)
        scope = trio.CancelScope()

        class CancelOnGrant:
            def send_nowait(self, p: Progress) -> None:
                if p.kind == "granted":
                    scope.cancel()

        entered = []

        async def handler():
            with scope:
                async with router.lease("a", progress=CancelOnGrant()):  # type: ignore[arg-type]
                    entered.append(True)

        async with trio.open_nursery() as n:
            await n.start(router.run)
            n.start_soon(handler)
            await trio.sleep(5)
            await router.settled()
            snap = router.snapshot()
            assert not entered
            assert snap.in_flight == {} and snap.reserved == {}
            await router.shutdown()

    run(main)


def test_unload_while_loading_fails_waiters_and_stops_before_returning():
    async def main():
        procs = FakeProcesses(ABC, load_seconds=10)
        router = make_router(procs)
        errors: list[Exception] = []

        async def waiter():
            try:
                async with router.lease("a"):
                    pass
            except RequestAborted as exc:
                errors.append(exc)

        async with trio.open_nursery() as n:
            await n.start(router.run)
            n.start_soon(waiter)
            n.start_soon(waiter)
            await trio.sleep(1)
            assert procs.state["a"] == "starting"
            await router.unload(["a"])
            assert procs.state["a"] == "stopped"
            await trio.sleep(20)
            assert procs.state["a"] == "stopped"  # the aborted load did not come back
            await router.shutdown()
        assert len(errors) == 2 and errors[0].status == 503

    run(main)


def test_shutdown_fails_waiters_stops_processes_and_refuses_new_leases():
    async def main():
        procs = FakeProcesses(ABC)
        router = make_router(procs)
        errors: list[Exception] = []

        async def waiter(model):
            try:
                async with router.lease(model):
                    await trio.sleep(100)
            except RequestAborted as exc:
                errors.append(exc)

        async with trio.open_nursery() as n:
            await n.start(router.run)
            n.start_soon(waiter, "a")
            await trio.sleep(2)  # a is served
            n.start_soon(waiter, "b")
            await trio.testing.wait_all_tasks_blocked()
            await router.shutdown()
            assert [e.status for e in errors] == [503]
            assert set(procs.state.values()) == {"stopped"}
            with pytest.raises(RequestAborted):
                async with router.lease("a"):
                    pass
            n.cancel_scope.cancel()

    run(main)


def test_progress_reports_admission_queue_position_loading_and_grant():
    async def main():
        procs = FakeProcesses(ABC)
        router = make_router(procs)
        send, recv = trio.open_memory_channel[Progress](100)
        order: list[str] = []
        async with trio.open_nursery() as n:
            await n.start(router.run)
            n.start_soon(serve, router, "a", order, 3.0)
            await trio.testing.wait_all_tasks_blocked()
            async with router.lease("b", progress=send):
                pass
            await router.shutdown()
        kinds = []
        while True:
            try:
                p = recv.receive_nowait()
            except trio.WouldBlock:
                break
            kinds.append((p.kind, p.position))
        assert kinds == [("admitted", None), ("queued", 1), ("loading", None), ("granted", None)]

    run(main)


def test_steady_stream_for_a_cannot_starve_b_beyond_max_wait():
    async def main():
        procs = FakeProcesses(["a", "b"], load_seconds=2)
        router = make_router(procs, ["a", "b"], max_wait=10)
        order: list[str] = []
        b_served_at: list[float] = []

        async def b_request():
            async with router.lease("b"):
                b_served_at.append(trio.current_time())

        async with trio.open_nursery() as n:
            await n.start(router.run)
            for _ in range(4):  # overlapping requests: a is never idle
                n.start_soon(serve_unless_aborted, router, "a", order, 1.5)
                await trio.sleep(0.5)
            t0 = trio.current_time()
            n.start_soon(b_request)
            while not b_served_at and trio.current_time() - t0 < 60:
                n.start_soon(serve_unless_aborted, router, "a", order, 1.5)
                await trio.sleep(0.5)
            assert b_served_at, "b starved"
            waited = b_served_at[0] - t0
            assert waited <= 10 + 1.5 + 2 + 0.1 + 1  # maxWait + drain + load + stop + slack
            await router.shutdown()
            n.cancel_scope.cancel()

    run(main)


def test_recorded_inputs_replay_to_the_same_decisions():
    async def main():
        procs = FakeProcesses(ABC, failing=["c"])
        router = make_router(procs, max_wait=3)
        order: list[str] = []

        async def attempt(model, seconds):
            try:
                await serve(router, model, order, seconds)
            except Exception:
                pass

        async with trio.open_nursery() as n:
            await n.start(router.run)
            for i, m in enumerate("abcabcaab"):
                n.start_soon(attempt, m, 0.3 * (i % 4))
                await trio.sleep(0.2)
            with trio.move_on_after(0.1):
                await serve(router, "b", order)
            await trio.sleep(30)
            await router.unload(None)
            await router.shutdown()
        recorder = Recorder()
        fresh = FifoScheduler(
            router.settings.models,
            GroupSwapper.with_default({}, ABC),
            recorder,
            SchedulerSettings(max_wait=3),
        )
        for step in router.inputs:
            fresh.handle(step.input, step.facts)
        assert recorder.decisions == router.decisions()
        assert len(recorder.decisions) > 20

    run(main)


def test_swap_events_and_explain():
    async def main():
        procs = FakeProcesses(ABC)
        router = make_router(procs)
        sub = router.bus.subscribe(topics=["swap"])
        order: list[str] = []
        async with trio.open_nursery() as n:
            await n.start(router.run)
            n.start_soon(serve, router, "a", order, 5.0)
            await trio.sleep(2)
            x = router.explain("b")
            assert x.verdict == "queue" and x.evict == ("a",) and x.in_flight == {"a": 1}
            assert router.explain("a").verdict == "serve"
            assert router.explain("zzz").verdict == "not_found"
            await router.shutdown()
        finished = [e for e in iter(lambda: sub.receive_nowait() if sub.pending else None, None)]
        assert any(isinstance(e, SwapFinished) and e.ok for e in finished)
        assert [d.action for d in router.decisions(2)] == ["fail", "shutdown"] or router.decisions()

    run(main)


def test_reload_takes_effect_in_the_running_loop():
    async def main():
        procs = FakeProcesses(ABC)
        router = make_router(procs)
        errors: list[Exception] = []

        async def waiter(model):
            try:
                async with router.lease(model):
                    pass
            except RequestAborted as exc:
                errors.append(exc)

        async with trio.open_nursery() as n:
            await n.start(router.run)
            order: list[str] = []
            n.start_soon(serve, router, "a", order, 5.0)
            await trio.sleep(2)
            n.start_soon(waiter, "c")
            await trio.testing.wait_all_tasks_blocked()
            await router.settled()
            settings = RouterSettings(
                models={"a": ModelPolicy(), "b": ModelPolicy()}, record_inputs=True
            )
            await router.reload(GroupSwapper.with_default({}, ["a", "b"]), settings)
            await trio.testing.wait_all_tasks_blocked()
            assert [e.status for e in errors] == [503]
            assert router.explain("c").verdict == "not_found"
            assert router.decisions(1)[0].action == "reload"
            await router.shutdown()

    run(main)


def test_preload_goes_through_the_request_path_in_order():
    """Two preloads of one swap group leave only the last one loaded."""

    async def main():
        procs = FakeProcesses(ABC, failing=["c"])
        router = make_router(procs)
        events = router.bus.subscribe(topics=["preload"])
        async with trio.open_nursery() as n:
            await n.start(router.run)
            await router.preload(["a", "b", "c", "nope"])
            await router.settled()
            assert procs.loads == {"a": 1, "b": 1, "c": 1}
            assert procs.state == {"a": "stopped", "b": "stopped", "c": "stopped"}
            await router.shutdown()
        seen = [(e.model, e.ok) for e in [events.receive_nowait() for _ in range(events.pending)]]
        assert seen == [("a", True), ("b", True), ("c", False), ("nope", False)]

    run(main)


def test_shutdown_twice_and_handlers_gone_before_the_loop_saw_them():
    async def main():
        procs = FakeProcesses(ABC)
        router = make_router(procs)
        async with trio.open_nursery() as n:
            await n.start(router.run)
            with trio.CancelScope() as scope:
                scope.cancel()  # the handler is gone before its request is processed
                async with router.lease("a"):
                    raise AssertionError("cancelled before anything")
            await trio.sleep(5)  # whatever it started is aborted and reported back
            await router.settled()
            assert router._tickets == {} and router._gone == set()
            snap = router.snapshot()
            assert snap.reserved == {} and snap.swaps == () and snap.queue == ()
            assert procs.state["a"] == "stopped"
            async with trio.open_nursery() as both:
                both.start_soon(router.shutdown)
                both.start_soon(router.shutdown)
            await router.shutdown()

    run(main)
