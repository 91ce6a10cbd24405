"""What the daemon's faces (the HTTP API and the control socket) need from its core.

One protocol for the router and one for the process pool, typed with the
core's own types. `swapd.daemon` passes the real `Router` and `ProcessPool`;
tests may pass stand-ins that satisfy the same protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import trio

from swapd.process.logs import LogRing
from swapd.process.spec import ProcessSpec
from swapd.process.states import ProcessState
from swapd.process.supervisor import ProcessSnapshot
from swapd.router.events import Decision, Progress
from swapd.router.explain import Explanation
from swapd.router.run_loop import Grant
from swapd.router.snapshot import RouterSnapshot


class RouterPort(Protocol):
    """The router as the faces use it (`swapd.router.run_loop.Router`)."""

    def lease(
        self,
        model: str,
        progress: trio.MemorySendChannel[Progress] | None = None,
        on_cut: Callable[[str], None] | None = None,
        request_id: int | None = None,
    ) -> AbstractAsyncContextManager[Grant]: ...

    async def unload(self, models: Sequence[str] | None = None, *, now: bool = False) -> int: ...

    def snapshot(self) -> RouterSnapshot: ...

    def evicted_for(self, request_id: int) -> tuple[str, ...]: ...

    def explain(self, model: str) -> Explanation: ...

    def decisions(self, limit: int | None = None) -> list[Decision]: ...


class MemberPort(Protocol):
    """One model's supervisor as the faces read it (`swapd.process.supervisor.Supervisor`)."""

    @property
    def spec(self) -> ProcessSpec: ...

    @property
    def logs(self) -> LogRing: ...


class PoolPort(Protocol):
    """The process pool as the faces read it (`swapd.process.pool.ProcessPool`)."""

    def states(self) -> Mapping[str, ProcessState]: ...

    def snapshots(self) -> Mapping[str, ProcessSnapshot]: ...

    def __getitem__(self, model_id: str) -> MemberPort: ...

    def __contains__(self, model_id: object) -> bool: ...
