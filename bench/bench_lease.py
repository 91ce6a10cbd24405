"""Router overhead: CPU time of one `Router.lease` round trip on a ready, idle model.

Every relayed request goes through `async with router.lease(model)`: the
request reaches the scheduler through the run loop's inbox, the loop grants
it, and leaving the block reports serve-done, which the loop handles too. This measures that whole
round trip, the serve-done processing included (the run is settled before
the clock stops), with no HTTP and no processes: a fake `ProcessControl` whose target model
is ready. The bus has the daemon's standing subscribers (state/swap, inflight,
log), none of which wants router records, as when no TUI is connected.

Each worker repeats `async with router.lease(m): await trio.lowlevel.checkpoint()` (the
checkpoint stands for the relay's I/O, which keeps the workers' leases
overlapping). Rows: 1 worker, and 32 workers at once (32 leases in flight
together). "harness" is the same loop with a bare checkpoint in place of the
lease; "router" is the row minus the harness. Figures are process CPU time
(`time.process_time`) per lease, in microseconds. "before" is the lease
column measured on the router as it was before its steps were made cheaper
(commit ff96bed), for reference.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Sequence
from typing import Any

import trio

from swapd.events import EventBus
from swapd.process.states import ProcessState
from swapd.router import GroupSwapper, ModelPolicy, Router, RouterSettings

#: The lease column before the router's cheaper steps (ff96bed), best of several runs
#: on the 2-core development machine; a reference, not a measurement of this run.
BEFORE_US = {1: 87.5, 32: 52.9}
LEASES = 20_000
MODELS = 6
TARGET = "m0"


class _Held:
    def __init__(self, pool: FakeProcesses, model: str) -> None:
        self.pool, self.model = pool, model

    def release(self) -> None:
        self.pool.held[self.model] -= 1


class FakeProcesses:
    """A `ProcessControl` with no processes: `TARGET` ready, the rest stopped."""

    def __init__(self, models: int) -> None:
        self.state = {
            f"m{i}": ProcessState.READY if i == 0 else ProcessState.STOPPED for i in range(models)
        }
        self.held = dict.fromkeys(self.state, 0)

    def states(self) -> dict[str, ProcessState]:
        return dict(self.state)

    def upstream(self, model: str) -> str:
        return f"http://127.0.0.1:9/{model}"

    async def ensure_ready(self, model: str) -> None:
        self.state[model] = ProcessState.READY

    async def stop(self, models: Sequence[str], *, grace: float | None, reason: str) -> None:
        for model in models:
            self.state[model] = ProcessState.STOPPED

    async def retire(self, models: Sequence[str], *, reason: str) -> None:
        await self.stop(models, grace=None, reason=reason)

    def hold(self, model: str) -> _Held:
        self.held[model] += 1
        return _Held(self, model)


def make_router(models: int, bus: EventBus) -> Router:
    names = [f"m{i}" for i in range(models)]
    settings = RouterSettings(models={m: ModelPolicy(limit=64) for m in names})
    return Router(FakeProcesses(models), GroupSwapper.with_default({}, names), bus, settings)


def daemon_bus() -> EventBus:
    """A bus with the daemon's standing subscriptions (none wants router records)."""
    bus = EventBus()
    bus.subscribe(topics=("inflight",))
    bus.subscribe(topics=("swap", "state"), maxlen=256)
    bus.subscribe(topics=("log",), maxlen=4096)
    return bus


async def _lease_worker(router: Router, rounds: int) -> None:
    for _ in range(rounds):
        async with router.lease(TARGET):
            await trio.lowlevel.checkpoint()


async def _bare_worker(router: Router, rounds: int) -> None:
    for _ in range(rounds):
        await trio.lowlevel.checkpoint()


async def _measure(workers: int, leases: int, models: int, bare: bool) -> float:
    """CPU microseconds per lease for `workers` tasks sharing `leases` round trips."""
    router = make_router(models, daemon_bus())
    rounds = max(1, leases // workers)
    worker = _bare_worker if bare else _lease_worker
    async with trio.open_nursery() as nursery:
        await nursery.start(router.run)
        async with trio.open_nursery() as warm:  # first grants, caches, allocator
            for _ in range(workers):
                warm.start_soon(worker, router, min(rounds, 200))
        await router.settled()
        gc.collect()
        start = time.process_time()
        async with trio.open_nursery() as run:
            for _ in range(workers):
                run.start_soon(worker, router, rounds)
        await router.settled()  # the last serve-dones are part of the cost
        cpu = time.process_time() - start
        snap = router.snapshot()
        assert snap.in_flight == {} and snap.reserved == {}, snap
        await router.shutdown()
    return cpu / (rounds * workers) * 1e6


def measure(workers: int, leases: int, models: int, repeat: int) -> dict[str, Any]:
    """Best of `repeat` runs (the least disturbed), lease and harness alike."""
    lease = min(trio.run(_measure, workers, leases, models, False) for _ in range(repeat))
    bare = min(trio.run(_measure, workers, leases, models, True) for _ in range(repeat))
    return {
        "workers": workers,
        "leases": max(1, leases // workers) * workers,
        "lease_us": lease,
        "harness_us": bare,
        "router_us": lease - bare,
    }


def run(leases: int = LEASES, models: int = MODELS, repeat: int = 3) -> dict[str, Any]:
    rows = {f"concurrent_{w}": measure(w, leases, models, repeat) for w in (1, 32)}
    return {
        "rows": rows,
        "models": models,
    }


def table(figures: dict[str, Any]) -> str:
    lines = [
        f"router lease round trip: CPU microseconds per lease ({figures['models']} models, "
        "target ready and idle)",
        f"{'case':<22}{'leases':>8}{'lease':>9}{'harness':>9}{'router':>9}{'before':>9}",
    ]
    for row in figures["rows"].values():
        label = f"{row['workers']} concurrent"
        before = BEFORE_US.get(row["workers"])
        lines.append(
            f"{label:<22}{row['leases']:>8}{row['lease_us']:>9.1f}{row['harness_us']:>9.1f}"
            f"{row['router_us']:>9.1f}{'' if before is None else f'{before:.1f}':>9}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_lease", description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=LEASES)
    parser.add_argument("--models", type=int, default=MODELS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    figures = run(args.leases, args.models, args.repeat)
    print(table(figures))
    return figures


if __name__ == "__main__":
    main()
