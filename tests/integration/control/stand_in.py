"""A stand-in router keeping the router's contract (lease, unload, explain, decisions,
snapshot) with the simplest policy: a lease makes its model ready, nothing is evicted.

It lets the control backend be tested on real processes and real records
independently of the router's own policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import trio

from swapd.events import EventBus
from swapd.process.pool import ProcessPool
from swapd.process.spec import ProcessSpec
from swapd.process.supervisor import StartError
from swapd.router.decision_log import DecisionLog
from swapd.router.errors import LoadFailed, ModelNotFound
from swapd.router.events import Decision
from swapd.router.explain import Explanation
from swapd.router.run_loop import Grant
from swapd.router.snapshot import QueuedEntry, RouterSnapshot


def specs(loaded: Any) -> list[ProcessSpec]:
    return [
        ProcessSpec(
            model_id=model_id,
            argv=tuple(m.argv),
            proxy_url=m.proxy,
            check_endpoint=m.check_endpoint,
            health_check_timeout=float(m.health_check_timeout),
            ttl=float(m.ttl),
            unload_timeout=float(m.unload_timeout),
        )
        for model_id, m in loaded.models.items()
    ]


class StandInRouter:
    def __init__(self, pool: ProcessPool, bus: EventBus) -> None:
        self.pool = pool
        self.bus = bus
        self.log = DecisionLog()
        self.seq = 0

    def _decide(self, model: str, action: Any, reason: str) -> None:
        self.seq += 1
        decision = Decision(
            seq=self.seq,
            time=trio.current_time(),
            input="request",
            action=action,
            model=model,
            reason=reason,
        )
        self.log.append(decision)
        self.bus.publish(decision)

    @asynccontextmanager
    async def lease(
        self,
        model: str,
        progress: Any = None,
        on_cut: Any = None,
        request_id: Any = None,
    ) -> AsyncIterator[Grant]:
        if model not in self.pool:
            raise ModelNotFound(f"no model {model}", model=model)
        self._decide(model, "serve", "stand-in: start and serve")
        try:
            await self.pool[model].ensure_ready()
        except StartError as exc:
            raise LoadFailed(
                f"{model} failed to start",
                model=model,
                reason=exc.reason,
                log_tail="\n".join(exc.log_tail),
            ) from None
        supervisor = self.pool[model]
        supervisor.hold()
        try:
            yield Grant(model, supervisor.snapshot().proxy_url, 0)
        finally:
            supervisor.release()

    async def unload(self, models: Sequence[str] | None = None, *, now: bool = False) -> int:
        for model in models if models is not None else list(self.pool):
            await self.pool[model].stop(reason="unload")
        return 0

    def evicted_for(self, request_id: int) -> tuple[str, ...]:
        return ()

    def explain(self, model: str) -> Explanation:
        state = str(self.pool[model].state)
        verdict = "serve" if state == "ready" else "swap"
        return Explanation(model=model, verdict=verdict, reason="stand-in", state=state)

    def decisions(self, limit: int) -> list[Decision]:
        return self.log.recent(limit)

    def snapshot(self) -> RouterSnapshot:
        queue = tuple(QueuedEntry(rid, "b", rid, 0.0) for rid in (1, 2))
        return msgspec.structs.replace(RouterSnapshot.empty(), queue=queue, queued={"b": 2})
