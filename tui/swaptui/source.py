"""The dashboard's window on a daemon: where its data comes from, where actions go.

The app talks only to a `Source`. `connection.DaemonSource` is the real one
(the control socket, directly or over `ssh HOST swapctl bridge`); tests use an
in-memory fake that feeds the same protocol messages. A source writes what it
learns into the `DashboardState` and calls `changed()`; the app repaints on
its own tick. Actions return a `Verdict` and never raise: a daemon error, or
no daemon at all, is something to show, not a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from swaptui.state import DashboardState, Verdict


class Source(Protocol):
    def describe(self) -> str:
        """What we are connected to, for the header: a socket path or `ssh HOST`."""
        ...

    async def run(self, state: DashboardState, changed: Callable[[], None]) -> None:
        """Keep `state` current until cancelled: connect, subscribe, reconnect on loss."""
        ...

    async def load(self, model: str) -> Verdict: ...

    async def unload(self, models: Sequence[str] | None, *, now: bool = False) -> Verdict:
        """Unload these models, or every model when `models` is None. Each stops once its
        requests in flight are done (at most its unloadTimeout); with `now`, at once,
        cutting them (the verdict says how many)."""
        ...

    async def reload(self) -> Verdict:
        """Ask the daemon to reload its config; the verdict carries every problem."""
        ...

    async def explain(self, model: str) -> None:
        """Ask the matrix view and explanation for `model`; the answer lands in the state."""
        ...

    async def capture(self, request_id: int) -> None:
        """Ask for a request's capture; it (or why there is none) lands in the state."""
        ...
