"""A `ProcessControl` fake: loads and stops take (mock-clock) time, no processes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import trio


class FakeStartError(Exception):
    def __init__(self, model: str, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = ["line 1", "line 2"]
        self.exit_code = 3


class FakeProcesses:
    def __init__(
        self,
        models: Sequence[str],
        *,
        load_seconds: float = 1.0,
        stop_seconds: float = 0.1,
        failing: Sequence[str] = (),
    ) -> None:
        self.state: dict[str, str] = {m: "stopped" for m in models}
        self.load_seconds = load_seconds
        self.stop_seconds = stop_seconds
        self.failing = set(failing)
        self.loads: Counter[str] = Counter()
        self.stops: list[tuple[str, str]] = []
        self.held: Counter[str] = Counter()
        self.ready_at: dict[str, float] = {}

    def states(self) -> Mapping[str, str]:
        return dict(self.state)

    def upstream(self, model: str) -> str:
        return f"http://fake/{model}"

    async def ensure_ready(self, model: str) -> None:
        if self.state[model] == "ready":
            return
        self.state[model] = "starting"
        self.loads[model] += 1
        try:
            await trio.sleep(self.load_seconds)
        except trio.Cancelled:
            # A start keeps going when its caller leaves; only a stop ends it.
            raise
        if model in self.failing:
            self.state[model] = "stopped"
            raise FakeStartError(model, "exited prematurely")
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

    def hold(self, model: str) -> object:
        self.held[model] += 1
        return model

    def release(self, model: str, token: object) -> None:
        assert token == model
        self.held[model] -= 1
        assert self.held[model] >= 0
