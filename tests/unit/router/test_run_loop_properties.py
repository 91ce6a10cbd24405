"""Random client behaviour against the real run loop (fake processes, mock clock).

Clients lease random models, leave at random moments (while queued, while
loading, right after their grant, while being served), loads fail at random,
unloads happen. Afterwards nothing may be stranded: no reservation, no
request in flight, no swap, no ticket, no hold on a process, and the
recorded inputs replay to the same decisions.
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from swapd.router.errors import RouterError
from swapd.router.group_swapper import GroupSwapper
from swapd.router.scheduler import FifoScheduler, SchedulerSettings
from tests.unit.router.fake_processes import FakeProcesses
from tests.unit.router.harness import Recorder
from tests.unit.router.test_run_loop import ABC, make_router

client = st.tuples(
    st.sampled_from(ABC),
    st.floats(0, 3),  # arrival delay
    st.one_of(st.none(), st.floats(0, 4)),  # give up after (None: never)
    st.floats(0, 2),  # serving time
)


@settings(max_examples=100)
@given(
    clients=st.lists(client, min_size=1, max_size=12),
    failing=st.sets(st.sampled_from(ABC), max_size=1),
    unload_at=st.one_of(st.none(), st.floats(0, 5)),
    max_wait=st.sampled_from([0.0, 2.0]),
)
def test_nothing_is_stranded(clients, failing, unload_at, max_wait):
    async def one(router, model, delay, give_up, serving, outcomes):
        await trio.sleep(delay)
        outcome = "gave up"
        with trio.move_on_after(give_up if give_up is not None else 1e9):
            try:
                async with router.lease(model):
                    outcome = "served"  # it may still give up while being served
                    await trio.sleep(serving)
            except RouterError as exc:
                outcome = exc.code
        outcomes.append(outcome)

    async def main():
        procs = FakeProcesses(ABC, load_seconds=1.0, failing=sorted(failing))
        router = make_router(procs, limit=4, max_wait=max_wait)
        outcomes: list[str] = []
        async with trio.open_nursery() as n:
            await n.start(router.run)
            async with trio.open_nursery() as clients_nursery:
                for model, delay, give_up, serving in clients:
                    clients_nursery.start_soon(
                        one, router, model, delay, give_up, serving, outcomes
                    )
                if unload_at is not None:
                    await trio.sleep(unload_at)
                    await router.unload(None)
            await trio.sleep(10)  # aborted loads report back
            await router.settled()
            snap = router.snapshot()
            assert snap.reserved == {} and snap.in_flight == {}
            assert snap.swaps == () and snap.queue == ()
            assert router._tickets == {} and router._gone == set()
            assert all(v == 0 for v in procs.held.values())
            await router.shutdown()
        assert len(outcomes) == len(clients)
        recorder = Recorder()
        fresh = FifoScheduler(
            router.settings.models,
            GroupSwapper.with_default({}, ABC),
            recorder,
            SchedulerSettings(max_wait=max_wait),
        )
        for step in router.inputs:
            fresh.handle(step.input, step.facts)
        assert recorder.decisions == router.decisions()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
