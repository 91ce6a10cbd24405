"""All the models' supervisors, each a task in the pool's own nursery.

Leaving the pool (`async with ProcessPool(...)`) first stops every child
gracefully, in parallel, each with its unloadTimeout; only then are the
supervisors cancelled, which kills whatever is somehow still alive with a
1 s grace. Even when the surrounding scope is cancelled (swapd got SIGTERM)
the graceful stop runs, shielded, within `stop_budget()`.

A reload comes in two steps so that requests in flight are never cut:
`stage(specs)` adds the new models at once and only *records* the new spec
of changed models and the removal of others; the router, which owns the
in-flight counts, calls `retire(models)` for each once it has drained, and
that stops the old process and puts the staged supervisor in its place.
`update(specs)` does both at once, for callers with nothing in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType

import trio

from swapd.events import EventBus
from swapd.process.logs import LogRing
from swapd.process.spec import ProcessSpec
from swapd.process.states import ProcessState
from swapd.process.stop import KILL_SETTLE_LIMIT
from swapd.process.supervisor import ProcessSnapshot, Supervisor

# Beyond the longest unloadTimeout, time for SIGKILL to land and pipes to close.
STOP_BUDGET_SLACK = KILL_SETTLE_LIMIT + 2.0


@dataclass(frozen=True)
class PoolUpdate:
    """What `ProcessPool.update` changed, by model ID."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    replaced: tuple[str, ...]  # spec changed: old process stopped, new supervisor in stopped

    @property
    def changed(self) -> tuple[str, ...]:
        """Models whose settings changed: for the pool, the replaced ones."""
        return self.replaced


class _Member:
    """A supervisor and the cancel scope that ends its life."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        # Shielded: a cancellation around the pool must not reach the supervisors
        # before the pool has stopped them gracefully; the pool ends them itself.
        self.scope = trio.CancelScope(shield=True)
        self.finished = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self.scope:
                await self.supervisor.run(task_status=task_status)
        finally:
            self.finished.set()

    async def retire(self, reason: str) -> None:
        """Stop gracefully, then end the supervisor (state becomes shutdown)."""
        await self.supervisor.stop(reason=reason)
        self.scope.cancel()
        await self.finished.wait()


class ProcessPool:
    """One supervisor per model. Use as `async with ProcessPool(specs, bus) as pool`."""

    def __init__(
        self, specs: Iterable[ProcessSpec], bus: EventBus, proxy_log: LogRing | None = None
    ) -> None:
        self.bus = bus
        self.proxy_log = proxy_log if proxy_log is not None else LogRing("proxy", bus=bus)
        self._initial = list(specs)
        ids = [spec.model_id for spec in self._initial]
        if len(set(ids)) != len(ids):
            raise ValueError("model IDs must be unique in a process pool")
        self._members: dict[str, _Member] = {}
        # Reloaded specs waiting for `retire`: the new spec, or None when removed.
        self._staged: dict[str, ProcessSpec | None] = {}
        self._nursery: trio.Nursery | None = None
        self._cm: AbstractAsyncContextManager[ProcessPool] | None = None

    # ----- lifetime ---------------------------------------------------------

    async def __aenter__(self) -> ProcessPool:
        self._cm = self._lifetime()
        return await self._cm.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._cm is not None
        return await self._cm.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _lifetime(self) -> AsyncIterator[ProcessPool]:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for spec in self._initial:
                await self._add(spec)
            try:
                yield self
            finally:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + self.stop_budget()
                    await self.stop_all()
                for member in self._members.values():
                    member.scope.cancel()

    def stop_budget(self) -> float:
        """How long the graceful stop of everything may take when leaving the pool."""
        longest = max((_stop_seconds(m.supervisor.spec) for m in self._members.values()), default=0)
        return longest + STOP_BUDGET_SLACK

    async def _add(self, spec: ProcessSpec) -> None:
        assert self._nursery is not None, "the pool is not running"
        member = _Member(Supervisor(spec, self.bus, self.proxy_log))
        await self._nursery.start(member.run)
        self._members[spec.model_id] = member

    # ----- access -----------------------------------------------------------

    def __getitem__(self, model_id: str) -> Supervisor:
        return self._members[model_id].supervisor

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._members))

    def __len__(self) -> int:
        return len(self._members)

    def states(self) -> dict[str, ProcessState]:
        """Every model's state; a report, never a basis for a start or stop decision."""
        return {mid: m.supervisor.state for mid, m in self._members.items()}

    def snapshots(self) -> dict[str, ProcessSnapshot]:
        return {mid: m.supervisor.snapshot() for mid, m in self._members.items()}

    # ----- operations -------------------------------------------------------

    async def stop_all(self, *, grace: float | None = None, reason: str = "shutdown") -> None:
        """Stop every model in parallel, each with `grace` or its own unloadTimeout."""
        async with trio.open_nursery() as nursery:
            for member in tuple(self._members.values()):
                nursery.start_soon(_stop, member.supervisor, grace, reason)

    async def update(self, specs: Iterable[ProcessSpec]) -> PoolUpdate:
        """Apply a reloaded config now: new models get supervisors, removed ones are
        stopped and retired, and models whose spec changed are stopped and replaced
        (requests in flight on them are cut). Unchanged models keep running untouched.
        """
        update = await self.stage(specs)
        await self.retire(tuple(self._staged))
        return update

    async def stage(self, specs: Iterable[ProcessSpec]) -> PoolUpdate:
        """Take a reloaded config without touching a running process.

        New models get their supervisor (stopped) at once. For a changed or
        removed model the new spec (or its removal) is recorded for `retire`;
        until then `pool[model]` is still the old supervisor serving the
        requests in flight. The comparison is against what the model will run
        once staged changes are applied, so a second reload before the first
        drained reports only its own changes; an unchanged model is never
        touched.
        """
        wanted = {spec.model_id: spec for spec in specs}
        added = [mid for mid in wanted if mid not in self._members]
        removed: list[str] = []
        replaced: list[str] = []
        for mid, member in self._members.items():
            target = self._staged[mid] if mid in self._staged else member.supervisor.spec
            new = wanted.get(mid)
            if new is None:
                if target is not None:
                    removed.append(mid)
                self._staged[mid] = None
            elif new != target:
                replaced.append(mid)
                self._staged[mid] = new
        for mid in added:
            await self._add(wanted[mid])
        return PoolUpdate(tuple(added), tuple(removed), tuple(replaced))

    def staged(self) -> dict[str, ProcessSpec | None]:
        """The changes `stage` recorded and `retire` has not applied yet (a report)."""
        return dict(self._staged)

    async def retire(self, models: Iterable[str], *, reason: str = "config reloaded") -> None:
        """Apply the staged change of each model, in parallel: stop the old process,
        then start the staged spec's supervisor (stopped), or drop the model when
        it was removed. A staged spec equal to the running one (a reload undone)
        leaves the process alone; a model with nothing staged is skipped."""

        async def one(mid: str) -> None:
            spec = self._staged.pop(mid)
            member = self._members[mid]
            if spec == member.supervisor.spec:
                return
            await member.retire(reason)
            if spec is None:
                del self._members[mid]
            else:
                await self._add(spec)

        async with trio.open_nursery() as nursery:
            for mid in dict.fromkeys(models):
                if mid in self._staged and mid in self._members:
                    nursery.start_soon(one, mid)


def _stop_seconds(spec: ProcessSpec) -> float:
    """The longest a graceful stop of `spec` takes: saving its slots, then its grace."""
    return spec.unload_timeout + (spec.kv.timeout if spec.kv is not None else 0.0)


async def _stop(supervisor: Supervisor, grace: float | None, reason: str) -> None:
    await supervisor.stop(timeout=grace, reason=reason)
