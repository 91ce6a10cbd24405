"""A `ProcessControl` fake: loads and stops take (mock-clock) time, no processes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import trio

from swapd.process.states import ProcessState
from swapd.process.supervisor import StartError


def fake_start_error(model: str, reason: str) -> StartError:
    return StartError(model, reason, 3, ["line 1", "line 2"])


class _Held:
    """A hold of one model: its `release` gives the slot back."""

    def __init__(self, procs: FakeProcesses, model: str) -> None:
        self.procs = procs
        self.model = model

    def release(self) -> None:
        self.procs.held[self.model] -= 1
        assert self.procs.held[self.model] >= 0


class FakeProcesses:
    def __init__(
        self,
        models: Sequence[str],
        *,
        load_seconds: float = 1.0,
        stop_seconds: float = 0.1,
        failing: Sequence[str] = (),
        sleepers: Sequence[str] = (),
        sleep_fails: Sequence[str] = (),
    ) -> None:
        self.state: dict[str, str] = {m: "stopped" for m in models}
        self.load_seconds = load_seconds
        self.stop_seconds = stop_seconds
        self.failing = set(failing)
        self.loads: Counter[str] = Counter()
        self.stops: list[tuple[str, str]] = []
        self.held: Counter[str] = Counter()
        self.ready_at: dict[str, float] = {}
        self.sleepers = set(sleepers)
        self.sleep_fails = set(sleep_fails)
        self.sleeps: list[tuple[str, str]] = []

    def states(self) -> Mapping[str, ProcessState]:
        return {m: ProcessState(s) for m, s in self.state.items()}

    def upstream(self, model: str) -> str:
        return f"http://fake/{model}"

    async def ensure_ready(self, model: str) -> None:
        if self.state[model] == "ready":
            return
        waking = self.state[model] == "asleep"
        self.state[model] = "starting"
        if not waking:
            self.loads[model] += 1
        try:
            await trio.sleep(self.load_seconds)
        except trio.Cancelled:
            # A start keeps going when its caller leaves; only a stop ends it.
            raise
        if model in self.failing:
            self.state[model] = "stopped"
            raise fake_start_error(model, "exited prematurely")
        if self.state[model] == "starting":
            self.state[model] = "ready"
            self.ready_at[model] = trio.current_time()

    async def stop(self, models: Sequence[str], *, grace: float | None, reason: str) -> None:
        for m in models:
            self.stops.append((m, reason))
            if self.state[m] != "stopped":
                self.state[m] = "stopping"
        await trio.sleep(self.stop_seconds)
        for m in models:
            self.state[m] = "stopped"

    async def sleep(self, model: str, *, reason: str) -> bool:
        self.sleeps.append((model, reason))
        await trio.sleep(self.stop_seconds)
        if model not in self.sleepers or model in self.sleep_fails:
            return False
        if self.state[model] == "ready":
            self.state[model] = "asleep"
        return self.state[model] == "asleep"

    async def retire(self, models: Sequence[str], *, reason: str) -> None:
        await self.stop(models, grace=None, reason=reason)

    def hold(self, model: str) -> _Held:
        self.held[model] += 1
        return _Held(self, model)
