"""The run loop's draining reload with fake processes on a mock clock: the retire
task runs only once a model is idle, the drain timer enforces the bound."""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.testing

from swapd.router.group_swapper import GroupSwapper
from swapd.router.run_loop import Router, RouterSettings
from swapd.router.scheduler import ModelPolicy
from tests.unit.router.fake_processes import FakeProcesses
from tests.unit.router.test_run_loop import ABC, make_router, run


class RetiringProcesses(FakeProcesses):
    """Fake processes with the pool's `retire`: the old process stops, a fresh one
    (stopped) takes its place."""

    def __init__(self, models: Sequence[str]) -> None:
        super().__init__(models)
        self.retired: list[tuple[str, float, int]] = []  # model, clock, holders then
        self.retiring = trio.Event()

    async def retire(self, models: Sequence[str], *, reason: str) -> None:
        for m in models:
            self.retired.append((m, trio.current_time(), self.held[m]))
        self.retiring.set()
        await self.stop(models, grace=None, reason=reason)


def settings_for(models: Sequence[str]) -> RouterSettings:
    return RouterSettings(models={m: ModelPolicy() for m in models}, record_inputs=True)


class Leases:
    """Leases run as tasks; `granted` records (model, clock) and wakes `wait_for`."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.granted: list[tuple[str, float]] = []
        self._changed = trio.Event()

    async def hold(self, model: str, seconds: float) -> None:
        async with self.router.lease(model):
            self.granted.append((model, trio.current_time()))
            self._changed.set()
            await trio.sleep(seconds)

    async def wait_for(self, count: int) -> None:
        while len(self.granted) < count:
            self._changed = trio.Event()
            await self._changed.wait()


def test_a_changed_model_is_retired_after_its_stream_and_reloaded_for_the_next():
    async def main():
        procs = RetiringProcesses(ABC)
        router = make_router(procs)
        leases = Leases(router)
        async with trio.open_nursery() as n:
            await n.start(router.run)
            n.start_soon(leases.hold, "a", 10.0)  # a long stream
            await leases.wait_for(1)
            await router.reload(GroupSwapper.with_default({}, ABC), settings_for(ABC), {"a": 60})
            n.start_soon(leases.hold, "a", 1.0)  # for the new process
            await router.settled()
            assert router.explain("a").verdict == "queue" and procs.retired == []
            await leases.wait_for(2)
            (model, at, holders), *_ = procs.retired
            assert model == "a" and holders == 0 and at >= 11.0  # after the stream ended
            assert leases.granted[1][1] > at and procs.loads["a"] == 2
            await router.shutdown()

    run(main)


def test_the_drain_timer_retires_a_model_at_its_bound_with_nothing_else_happening():
    async def main():
        procs = RetiringProcesses(ABC)
        router = make_router(procs)
        leases = Leases(router)
        async with trio.open_nursery() as n:
            await n.start(router.run)
            n.start_soon(leases.hold, "a", 1000.0)  # never ends in time
            await leases.wait_for(1)
            start = trio.current_time()
            await router.reload(GroupSwapper.with_default({}, ABC), settings_for(ABC), {"a": 25})
            await procs.retiring.wait()
            assert procs.retired[0][0] == "a" and procs.retired[0][1] - start == 25.0
            retire = [d for d in router.decisions() if d.action == "retire"]
            assert retire and "drain bound reached" in retire[0].reason
            await router.shutdown()
            n.cancel_scope.cancel()

    run(main)


def test_a_removed_model_is_stopped_once_idle_and_unknown_after():
    async def main():
        procs = FakeProcesses(ABC)  # no retire: the run loop only stops the model
        router = make_router(procs)
        leases = Leases(router)
        async with trio.open_nursery() as n:
            await n.start(router.run)
            n.start_soon(leases.hold, "c", 3.0)
            await leases.wait_for(1)
            ab = ["a", "b"]
            with router.bus.subscribe(topics=["decision"]) as decisions:
                await router.reload(GroupSwapper.with_default({}, ab), settings_for(ab), {"c": 60})
                assert procs.state["c"] == "ready" and router.explain("c").verdict == "not_found"
                async for d in decisions:
                    if d.action == "retired":
                        break
            assert procs.state["c"] == "stopped"
            assert trio.current_time() >= 4.0  # loaded in 1 s, then served for 3 s
            assert ("c", "config reloaded (drained)") in procs.stops
            assert router.snapshot().in_flight == {} and router.snapshot().reserved == {}
            await router.shutdown()

    run(main)
