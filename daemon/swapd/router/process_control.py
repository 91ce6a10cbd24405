"""What the run loop needs from the processes, and the adapter onto `ProcessPool`.

The run loop never reads a state to decide a start or a stop (llama-swap
#946): it calls `ensure_ready`, which decides inside the supervisor. `states`
is only the advisory snapshot the scheduler's inputs carry (running set,
fast path).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import trio

from swapd.router.events import SwapError

log = logging.getLogger(__name__)


class ProcessControl(Protocol):
    def states(self) -> Mapping[str, Any]:
        """Every model's state (a `ProcessState` or its text); advisory."""
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

    def hold(self, model: str) -> object:
        """A granted request starts using `model` (keeps the TTL from unloading it).

        Returns a token for `release`: after a reload replaced the model's
        supervisor, the release must still go to the one that was held.
        """
        ...

    def release(self, model: str, token: object) -> None: ...

    # Optional: `async retire(models, *, reason)` swaps in a reloaded config's staged
    # process for each model (stopping the old one first); see `PoolControl.retire`.
    # Without it the run loop only stops retired models.


def state_name(state: Any) -> str:
    """ "ready" from ProcessState.READY, "ready", or anything with a text value."""
    value = getattr(state, "value", state)
    return str(value).lower()


def swap_error(exc: BaseException) -> SwapError:
    """A start failure as plain data: `StartError`'s reason, exit code and log tail."""
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    tail = getattr(exc, "log_tail", "")
    if not isinstance(tail, str):
        tail = "\n".join(str(line) for line in tail)
    code = getattr(exc, "exit_code", None)
    return SwapError(
        reason=str(reason), log_tail=tail, exit_code=code if isinstance(code, int) else None
    )


class PoolControl:
    """`ProcessControl` over a `swapd.process.ProcessPool` (or anything shaped like it)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def states(self) -> Mapping[str, Any]:
        return self.pool.states()

    def upstream(self, model: str) -> str:
        return str(self.pool[model].spec.proxy_url)

    async def ensure_ready(self, model: str) -> None:
        await self.pool[model].ensure_ready()

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

    async def retire(self, models: Sequence[str], *, reason: str) -> None:
        """Stop each model's old process and put its staged replacement in place
        (`ProcessPool.stage`), or only stop it when the pool stages nothing."""
        retire = getattr(self.pool, "retire", None)
        if retire is not None:
            await retire(models, reason=reason)
        else:
            await self.stop(models, grace=None, reason=reason)

    def hold(self, model: str) -> object:
        if model not in self.pool:
            return None
        supervisor = self.pool[model]
        supervisor.hold()
        return supervisor

    def release(self, model: str, token: object) -> None:
        if token is not None:
            token.release()  # type: ignore[attr-defined]
