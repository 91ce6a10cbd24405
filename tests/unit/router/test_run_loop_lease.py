"""A lease's round trip through the run loop.

Every record is kept and the decisions replay; a caller already cancelled
never reaches the loop; one cancelled by its own grant still reports done;
an unload holds back requests for its own model only; a pool that hands
out a live states dict is read afresh.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.testing

from swapd.events import EventBus
from swapd.router.events import Progress, RequestEvent
from swapd.router.group_swapper import Group, GroupSwapper
from swapd.router.run_loop import Router, RouterSettings
from swapd.router.scheduler import FifoScheduler, ModelPolicy, SchedulerSettings
from tests.unit.router.fake_processes import FakeProcesses
from tests.unit.router.harness import Recorder
from tests.unit.router.test_run_loop import ABC, make_router, run


def ready(*models: str) -> FakeProcesses:
    procs = FakeProcesses(ABC)
    for m in models:
        procs.state[m] = "ready"
    return procs


def drained(sub) -> list:  # type: ignore[no-untyped-def]
    return [sub.receive_nowait() for _ in range(sub.pending)]


def test_ready_model_is_served_and_every_record_is_kept():
    async def main():
        procs = ready("a")
        router = make_router(procs)
        requests = router.bus.subscribe(topics=["request"])
        async with trio.open_nursery() as n:
            await n.start(router.run)
            await router.settled()
            for _ in range(3):
                async with router.lease("a") as grant:
                    assert procs.held["a"] == 1 and grant.upstream == "http://fake/a"
                await router.settled()
            snap = router.snapshot()
            assert snap.in_flight == {} and snap.reserved == {}
            assert router._tickets == {} and procs.held["a"] == 0
            await router.shutdown()
        phases = [(e.request_id, e.phase) for e in drained(requests)]
        assert phases == [(i, p) for i in (1, 2, 3) for p in ("admitted", "granted", "done")]
        assert [d.action for d in router.decisions()][:3] == ["serve"] * 3
        fresh_decisions = replay(router, ABC)
        assert fresh_decisions == router.decisions()

    run(main)


def replay(router: Router, models: Sequence[str]) -> list:
    recorder = Recorder()
    fresh = FifoScheduler(
        router.settings.models,
        GroupSwapper.with_default({}, models),
        recorder,
        SchedulerSettings(max_wait=router.settings.max_wait),
    )
    for step in router.inputs:
        fresh.handle(step.input, step.facts)
    return recorder.decisions


def test_caller_already_cancelled_never_reaches_the_loop():
    async def main():
        procs = ready("a")
        router = make_router(procs)
        async with trio.open_nursery() as n:
            await n.start(router.run)
            await router.settled()
            with trio.CancelScope() as scope:
                scope.cancel()
                async with router.lease("a"):
                    raise AssertionError("cancelled before anything")
            await router.settled()
            assert router._tickets == {} and router._gone == set()
            assert router.snapshot().reserved == {}
            await router.shutdown()
        assert [d.action for d in router.decisions()] == ["shutdown"]
        assert [type(i.input).__name__ for i in router.inputs] == ["Shutdown"]
        assert procs.held["a"] == 0

    run(main)


def test_cancelled_by_its_own_grant_does_not_enter_and_still_reports_done():
    async def main():
        procs = ready("a")
        router = make_router(procs)
        requests = router.bus.subscribe(topics=["request"])
        scope = trio.CancelScope()

        class CancelOnGrant:
            def send_nowait(self, p: Progress) -> None:
                if p.kind == "granted":
                    scope.cancel()

        async with trio.open_nursery() as n:
            await n.start(router.run)
            await router.settled()
            with scope:
                async with router.lease("a", progress=CancelOnGrant()):  # type: ignore[arg-type]
                    raise AssertionError("cancelled as it was granted")
            await router.settled()
            snap = router.snapshot()
            assert snap.in_flight == {} and snap.reserved == {}
            await router.shutdown()
        phases = [e.phase for e in drained(requests) if isinstance(e, RequestEvent)]
        assert phases == ["admitted", "granted", "done"]
        assert procs.held["a"] == 0

    run(main)


def test_an_unload_holds_back_requests_for_its_model_only():
    """The loop never waits on a stop: a request for another model is served at once,
    one for the model being unloaded waits for the stop, then starts it again."""

    async def main():
        procs = ready("a", "b")
        together = {"all": Group(members=tuple(ABC), swap=False)}
        settings = RouterSettings(models={m: ModelPolicy() for m in ABC})
        router = Router(procs, GroupSwapper(together), EventBus(), settings)
        async with trio.open_nursery() as n:
            await n.start(router.run)
            await router.settled()
            start = trio.current_time()
            with router.bus.subscribe(topics=["decision"]) as decisions:
                n.start_soon(router.unload, ["b"])
                async for d in decisions:
                    if d.action == "stop" and d.model == "b":
                        break
            await trio.testing.wait_all_tasks_blocked()  # b's stop task has begun
            async with router.lease("a"):
                assert procs.state["b"] == "stopping", "served while b is still stopping"
            async with router.lease("b"):
                assert trio.current_time() - start >= procs.stop_seconds
            assert procs.loads["b"] == 1, "b was started again after its unload"
            await router.shutdown()
        actions = [d.action for d in router.decisions()]
        assert actions[:4] == ["unload", "stop", "serve", "queue"]

    run(main)


class LiveStates(FakeProcesses):
    """Hands out the very dict it keeps changing, as a ProcessControl may."""

    def states(self) -> dict[str, str]:
        return self.state


def test_states_are_read_again_when_a_live_dict_changes():
    async def main():
        procs = LiveStates(ABC)
        router = make_router(procs)
        async with trio.open_nursery() as n:
            await n.start(router.run)
            for _ in range(2):
                async with router.lease("a"):
                    pass
            await router.shutdown()
        actions = [d.action for d in router.decisions() if d.model == "a"]
        assert actions[:4] == ["swap", "swap_done", "grant", "serve"]
        assert procs.loads == {"a": 1}

    run(main)


class _Yields(trio.abc.Instrument):
    """Counts the times a task gave the scheduler its turn."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.count = 0

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.count += 1


def test_a_lease_the_loop_can_grant_at_once_needs_no_scheduling_round():
    """With nothing in the inbox, the request, its grant and its serve-done are handled
    in the caller's task, in the order the loop would have handled them."""

    async def main():
        procs = ready("a")
        router = make_router(procs)
        requests = router.bus.subscribe(topics=["request"])
        async with trio.open_nursery() as n:
            await n.start(router.run)
            await router.settled()
            yields = _Yields(trio.lowlevel.current_task())
            trio.lowlevel.add_instrument(yields)
            try:
                async with router.lease("a"):
                    assert procs.held["a"] == 1
            finally:
                trio.lowlevel.remove_instrument(yields)
            assert yields.count == 0
            assert router.snapshot().in_flight == {}
            await router.shutdown()
        phases = [e.phase for e in drained(requests) if isinstance(e, RequestEvent)]
        assert phases == ["admitted", "granted", "done"]
        assert replay(router, ABC) == router.decisions()

    run(main)
