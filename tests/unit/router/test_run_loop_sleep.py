"""The swap task with a budget plan that puts a model to sleep: the sleep runs in
parallel with the stops, and a model that does not go to sleep is stopped instead."""

from __future__ import annotations

import trio
import trio.testing

from swapd.events import EventBus
from swapd.router.budget_swapper import BudgetSwapper, EvictCosts
from swapd.router.footprints import Budgeting, FootprintTable, ModelResources
from swapd.router.run_loop import Router, RouterSettings
from swapd.router.scheduler import ModelPolicy
from tests.unit.router.fake_processes import FakeProcesses

MODELS = ["a", "b", "c"]


def make_router(procs: FakeProcesses) -> Router:
    """vram 10: a (6, 1 asleep) can sleep, c (3) cannot; b (8) needs a asleep and c gone."""
    models = {
        "a": ModelResources({"vram": 6}, sleeps=True, asleep={"vram": 1}),
        "b": ModelResources({"vram": 8}),
        "c": ModelResources({"vram": 3}),
    }
    table = FootprintTable(Budgeting({"vram": 10}, learn=False), models)
    swapper = BudgetSwapper(table, EvictCosts("uniform"), MODELS)
    settings = RouterSettings(models={m: ModelPolicy() for m in MODELS}, max_wait=30.0)
    return Router(procs, swapper, EventBus(), settings)


async def use(router: Router, model: str) -> None:
    async with router.lease(model):
        pass


def run_with(procs: FakeProcesses) -> tuple[Router, float, dict[str, str]]:
    """Serve a, c, then b: the router, the seconds before b's load began, and the
    states then (before the shutdown stops everything)."""
    out: list[Router | float] = []
    states: dict[str, str] = {}

    async def main() -> None:
        router = make_router(procs)
        async with trio.open_nursery() as n:
            await n.start(router.run)
            await use(router, "a")
            await use(router, "c")
            began = trio.current_time()
            await use(router, "b")
            out.extend([router, procs.ready_at["b"] - procs.load_seconds - began])
            states.update(procs.state)
            stops = list(procs.stops)
            await router.shutdown()
            procs.stops[:] = stops

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    router, seconds = out
    assert isinstance(router, Router) and isinstance(seconds, float)
    return router, seconds, states


def test_the_swap_sleeps_a_and_stops_c_in_parallel_then_loads_b() -> None:
    procs = FakeProcesses(MODELS, sleepers=["a"], stop_seconds=0.1)
    router, before_load, states = run_with(procs)
    assert procs.sleeps == [("a", "making room for b")]
    assert procs.stops == [("c", "evicted for b")]
    assert states == {"a": "asleep", "b": "ready", "c": "stopped"}
    assert abs(before_load - 0.1) < 1e-9, "the sleep and the stop overlap"
    (swap,) = [d for d in router.decisions() if d.action == "swap" and d.model == "b"]
    assert (swap.evict, swap.sleep) == (("c",), ("a",))


def test_a_model_that_does_not_go_to_sleep_is_stopped_instead() -> None:
    procs = FakeProcesses(MODELS, sleepers=["a"], sleep_fails=["a"], stop_seconds=0.1)
    _, _, states = run_with(procs)
    assert procs.sleeps == [("a", "making room for b")]
    assert sorted(procs.stops) == [
        ("a", "evicted for b (sleep failed)"),
        ("c", "evicted for b"),
    ]
    assert states == {"a": "stopped", "b": "ready", "c": "stopped"}
