"""What the control server needs from the daemon, as a small typed interface.

The server speaks only in protocol payloads (`swapctl.protocol`); turning the
router's, the pool's and the config's own objects into them is the backend's
job. Keeping the seam here lets the server be tested against an in-memory
fake and keeps imports flowing one way: control calls the router, never back.

Queries are synchronous and must not block (they read reports; they decide
nothing). `load`, `unload` and `reload` are asynchronous and may take as long
as the daemon needs. A refusal is a `ControlError`; anything else raised is a
bug, answered with an `internal` error and logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from swapctl import protocol as p


class ControlError(Exception):
    """A refusal the client should see: `code` is one of `protocol.ERROR_CODES`."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        problems: Iterable[p.Problem] = (),
        log_tail: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = list(problems)
        self.log_tail = log_tail

    def to_error(self, request_id: p.RequestId | None) -> p.Error:
        return p.Error(
            id=request_id,
            code=self.code,
            message=self.message,
            problems=self.problems,
            log_tail=self.log_tail,
        )


class EventSource(Protocol):
    """A bounded, lossy stream of protocol event payloads (an EventBus subscription).

    `receive` raises `trio.EndOfChannel` once closed and drained; `take_lagged`
    returns and resets how many events were dropped since the last call;
    `pending` is how many are buffered (right after subscribing: the history).
    """

    @property
    def pending(self) -> int: ...

    async def receive(self) -> p.EventData: ...

    def take_lagged(self) -> int: ...

    def close(self) -> None: ...


class ControlBackend(Protocol):
    def info(self) -> p.DaemonInfo:
        """Who we are, for `welcome`."""
        ...

    def status(self) -> p.Status: ...

    def models(self) -> list[p.ModelInfo]: ...

    async def load(self, model: str) -> p.LoadResult:
        """Make `model` ready through the router (the router decides what to evict)."""
        ...

    async def unload(self, models: Sequence[str] | None, now: bool = False) -> p.UnloadReply:
        """Stop these models (None: all) through the router: once their requests in flight
        are done, or at once with `now`. The reply names the running ones asked to stop
        and counts the requests cut."""
        ...

    async def reload(self) -> p.ReloadResult:
        """Reload the config file; ControlError("config_invalid", problems=...) keeps the old."""
        ...

    def logs(self, source: str, max_bytes: int) -> p.LogText: ...

    def subscribe(
        self,
        topics: frozenset[str],
        models: frozenset[str] | None,
        history: bool,
        maxlen: int,
    ) -> EventSource:
        """A new bounded subscription; with `history`, recent events (and log text) first."""
        ...

    def explain(self, model: str) -> p.Explanation: ...

    def matrix(self, model: str | None, limit: int) -> p.MatrixView: ...

    def decisions(self, limit: int) -> list[p.Decision]: ...

    async def activity(self, query: p.ActivityRequest) -> list[p.RequestRecord]:
        """Finished requests, newest first; ControlError("unavailable") without a history."""
        ...

    async def history(self, query: p.HistoryRequest) -> list[p.HistoryRecord]: ...

    async def stats(self, since: float | None, until: float | None) -> p.Stats: ...

    def capture(self, request_id: int) -> p.Capture:
        """The capture of a request; ControlError("not_found") when none is kept."""
        ...

    async def simulate(self, request: p.SimulateRequest) -> p.Simulation:
        """The history replayed through a config file and the running config;
        ControlError("config_invalid") for a file with problems."""
        ...
