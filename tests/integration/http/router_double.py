"""A stand-in for `swapd.router.Router.lease`, over a real ProcessPool, for HTTP tests.

It admits (with a per-model limit), reports progress like the real router,
starts the model through its supervisor and counts requests in flight; it
does not queue or evict (every model may run at once). The HTTP layer's own
behaviour (relay, loading stream, errors, disconnects) is what these tests
exercise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from swapd.process.pool import ProcessPool
from swapd.process.states import ProcessState
from swapd.process.supervisor import StartError
from swapd.router.errors import LoadFailed, ModelNotFound, TooManyRequests
from swapd.router.events import Progress


@dataclass
class Grant:
    upstream: str


@dataclass
class Snapshot:
    queue: tuple[Any, ...]
    in_flight: dict[str, int]


class PoolRouter:
    def __init__(self, pool: ProcessPool, limits: dict[str, int]) -> None:
        self.pool = pool
        self.limits = limits
        self.reserved: Counter[str] = Counter()
        self.serving: Counter[str] = Counter()

    @asynccontextmanager
    async def lease(
        self, model_id: str, progress: trio.MemorySendChannel[Any] | None = None
    ) -> AsyncIterator[Grant]:
        if model_id not in self.pool:
            raise ModelNotFound(f"no model {model_id}", model=model_id)
        if self.reserved[model_id] >= self.limits.get(model_id, 10):
            raise TooManyRequests("Too many requests", model=model_id)
        self.reserved[model_id] += 1
        try:
            supervisor = self.pool[model_id]
            if progress is not None:
                progress.send_nowait(Progress(kind="admitted", model=model_id))
                if supervisor.state is not ProcessState.READY:
                    progress.send_nowait(Progress(kind="loading", model=model_id))
            try:
                await supervisor.ensure_ready()
            except StartError as exc:
                raise LoadFailed(
                    f"{model_id} could not be started",
                    model=model_id,
                    reason=exc.reason,
                    log_tail="\n".join(getattr(exc, "log_tail", ()) or ()),
                ) from None
            if progress is not None:
                progress.send_nowait(Progress(kind="granted", model=model_id))
            self.serving[model_id] += 1
            try:
                with supervisor.in_use():
                    yield Grant(supervisor.spec.proxy_url)
            finally:
                self.serving[model_id] -= 1
        finally:
            self.reserved[model_id] -= 1

    async def unload(self, models: Sequence[str] | None = None) -> None:
        for model_id in models if models is not None else list(self.pool):
            await self.pool[model_id].stop()

    def snapshot(self) -> Snapshot:
        return Snapshot((), {m: n for m, n in self.serving.items()})
