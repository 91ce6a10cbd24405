"""What the run loop needs from the processes, and its implementation over `ProcessPool`.

The run loop never reads a state to decide a start or a stop (llama-swap
#946): it calls `ensure_ready`, which decides inside the supervisor. `states`
is only the advisory snapshot the scheduler's facts carry (running set, fast
path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import trio

from swapd.process.pool import ProcessPool
from swapd.process.states import ProcessState
from swapd.process.supervisor import StartError, Supervisor
from swapd.router.events import SwapError

log = logging.getLogger(__name__)


class Hold(Protocol):
    """What `hold` hands out: `release` must go back to the very supervisor held,
    even after a reload replaced the model's supervisor."""

    def release(self) -> None: ...


class ProcessControl(Protocol):
    def states(self) -> Mapping[str, ProcessState]:
        """Every model's state; advisory."""
        ...

    def upstream(self, model: str) -> str:
        """The model's proxy base URL, e.g. "http://127.0.0.1:5801"."""
        ...

    async def ensure_ready(self, model: str) -> None:
        """Return once `model` is ready, starting it if needed; raise if it cannot be."""
        ...

    async def stop(self, models: Sequence[str], *, grace: float | None, reason: str) -> None:
        """Stop these models in parallel; return once all are stopped. Never raises for
        a model that fails to stop (logged instead). `grace` before SIGKILL; None: each
        model's unloadTimeout."""
        ...

    async def sleep(self, model: str, *, reason: str) -> bool:
        """Put `model` to sleep; True once it is asleep, False when it could not be (it
        cannot sleep, is not ready, or the sleep call failed). Never raises."""
        ...

    async def retire(self, models: Sequence[str], *, reason: str) -> None:
        """Stop each model's old process and put the reloaded config's staged
        supervisor in its place (none for a removed model); just stop the model when
        nothing is staged for it."""
        ...

    def hold(self, model: str) -> Hold | None:
        """A granted request starts using `model` (keeps the TTL from unloading it)."""
        ...


def swap_error(exc: BaseException) -> SwapError:
    """A start failure as plain data: its reason, exit code and log tail."""
    if isinstance(exc, StartError):
        return SwapError(
            reason=exc.reason, log_tail="\n".join(exc.log_tail), exit_code=exc.exit_code
        )
    return SwapError(reason=str(exc) or type(exc).__name__)


class PoolControl:
    """`ProcessControl` over a `swapd.process.ProcessPool`."""

    def __init__(
        self, pool: ProcessPool, placement: Callable[[str], str | None] | None = None
    ) -> None:
        """`placement`: the device a model with devices was given (by the budget)."""
        self.pool = pool
        self.placement = placement

    def states(self) -> Mapping[str, ProcessState]:
        return self.pool.states()

    def upstream(self, model: str) -> str:
        return self.pool[model].spec.proxy_url

    async def ensure_ready(self, model: str) -> None:
        device = self.placement(model) if self.placement is not None else None
        await self.pool[model].ensure_ready(device)

    async def stop(self, models: Sequence[str], *, grace: float | None, reason: str) -> None:
        async with trio.open_nursery() as nursery:
            for model in dict.fromkeys(models):
                if model in self.pool:
                    nursery.start_soon(self._stop_one, model, grace, reason)

    async def _stop_one(self, model: str, grace: float | None, reason: str) -> None:
        try:
            await self.pool[model].stop(timeout=grace, reason=reason)
        except Exception:
            log.exception("stopping %s failed", model)

    async def sleep(self, model: str, *, reason: str) -> bool:
        if model not in self.pool:
            return False
        try:
            return await self.pool[model].sleep(reason=reason)
        except Exception:
            log.exception("putting %s to sleep failed", model)
            return False

    async def retire(self, models: Sequence[str], *, reason: str) -> None:
        await self.pool.retire(models, reason=reason)

    def hold(self, model: str) -> Supervisor | None:
        if model not in self.pool:
            return None
        supervisor = self.pool[model]
        supervisor.hold()
        return supervisor
