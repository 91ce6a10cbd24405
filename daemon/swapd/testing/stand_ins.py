"""Stand-ins for the router and the process pool, for the HTTP app without a daemon.

Benchmarks and tests that measure or exercise the relay alone build
`Services` with these: every lease is granted at once to the model's
configured upstream, no model has a process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from swapd.router.run_loop import RouterSnapshot


@dataclass(frozen=True)
class Grant:
    model: str
    upstream: str
    swap_id: int | None = None
    load_wait_s: float | None = None


class GrantAtOnce:
    """A router that grants every lease at once: the relay's cost without the scheduler."""

    def __init__(self, upstreams: Mapping[str, str]) -> None:
        self.upstreams = dict(upstreams)

    @asynccontextmanager
    async def lease(
        self,
        model: str,
        progress: Any = None,
        on_cut: Any = None,
        request_id: Any = None,
    ) -> AsyncIterator[Grant]:
        yield Grant(model, self.upstreams[model])

    async def unload(self, models: Any = None) -> None:
        return None

    def snapshot(self) -> RouterSnapshot:
        return RouterSnapshot.empty()


class NoPool:
    """A process pool with no processes: every model reports no state."""

    def states(self) -> dict[str, str]:
        return {}

    def __getitem__(self, model_id: str) -> Any:
        raise KeyError(model_id)
