"""The dashboard's link to a daemon: the control socket, directly or over SSH.

`DaemonSource` implements `Source` on `swapctl.aio_client.AsyncClient`. It
connects (a Unix socket, or `ssh HOST swapctl bridge` whose stdio carries the
same protocol), subscribes to every topic with history, and asks for the
status, models, swap policy and decision log. Events go into the
`DashboardState` as they arrive; a few (state changes, requests, reloads, lost
events) make it re-ask for the models and the matrix view, coalesced over a
short window, never on a timer.

When the link drops or the daemon restarts, the state says "disconnected"
with the reason, and the source retries with exponential backoff, then
subscribes again. Nothing the daemon sends (an error, a bad line) can crash
the app: it becomes a verdict, a log note, or a reconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from swapctl import protocol as p
from swapctl.aio_client import AsyncClient, ConnectionFailed, DaemonError
from swapctl.paths import resolve_socket_path
from swaptui.state import ACTIVITY_PROTOCOL, DashboardState, Verdict, describe_changes

CLIENT_NAME = "swaptui"
QUERY_TIMEOUT = 15.0
"""Seconds to wait for a query's reply; load, unload and reload wait as long as they take."""
REFETCH_DELAY = 0.2
"""Coalescing window for re-asking models/matrix after a burst of state changes."""
ACTIVITY_BACKLOG = 500
"""Request records asked for on connecting; new ones come with the `request` topic."""
MAX_PENDING_EVENTS = 20_000
"""Events the client buffers for us; beyond it the oldest are dropped and reported as lagged."""

T = TypeVar("T")


@dataclass
class Backoff:
    """Exponential retry delays: initial, ×factor each failure, capped; reset on success."""

    initial: float = 0.25
    factor: float = 2.0
    maximum: float = 10.0
    _next: float | None = None

    def next(self) -> float:
        delay = self.initial if self._next is None else self._next
        self._next = min(self.maximum, delay * self.factor)
        return delay

    def reset(self) -> None:
        self._next = None


@dataclass(frozen=True)
class Target:
    """Where the daemon is: a local socket path, or a host reached with ssh."""

    socket: Path | None = None
    ssh_host: str | None = None
    remote_socket: str | None = None
    ssh_command: tuple[str, ...] = ("ssh",)

    def describe(self) -> str:
        if self.ssh_host is not None:
            return f"ssh {self.ssh_host}"
        return str(self.socket)

    async def connect(self) -> AsyncClient:
        options: dict[str, Any] = {"name": CLIENT_NAME, "max_pending_events": MAX_PENDING_EVENTS}
        if self.ssh_host is not None:
            return await AsyncClient.connect_ssh(
                self.ssh_host, self.remote_socket, ssh=self.ssh_command, **options
            )
        return await AsyncClient.connect_unix(self.socket, **options)


def make_target(socket: str | None, ssh_host: str | None, remote_socket: str | None) -> Target:
    """The target the command line names; a local socket defaults as swapctl's does."""
    if ssh_host is not None:
        return Target(ssh_host=ssh_host, remote_socket=remote_socket)
    return Target(socket=resolve_socket_path(socket))


def error_verdict(action: str, error: p.Error) -> Verdict:
    """A daemon refusal as a verdict: its message, every problem located, the log tail."""
    problems = [problem.format() for problem in error.problems]
    if error.log_tail:
        problems += ["log tail:", *error.log_tail.rstrip().splitlines()[-10:]]
    return Verdict(
        action=action, ok=False, message=f"{error.code}: {error.message}", problems=tuple(problems)
    )


def unload_verdict(reply: p.UnloadReply, *, now: bool) -> Verdict:
    """What an unload stopped, and how many requests in flight it cut short."""
    message = "unloaded " + (", ".join(reply.models) or "nothing")
    warnings: tuple[str, ...] = ()
    if reply.cut:
        requests = f"{reply.cut} request{'s' if reply.cut != 1 else ''} in flight"
        when = "" if now else " (still running at the unloadTimeout)"
        warnings = (f"cut {requests}{when}: their clients got an error",)
    return Verdict(action="unload", ok=True, message=message, warnings=warnings)


def reload_result_verdict(result: p.ReloadResult) -> Verdict:
    """A reload that went through: what changed in each model, and the config's warnings."""
    return Verdict(
        action="reload",
        ok=True,
        message=describe_changes(result),
        warnings=tuple(warning.format() for warning in result.warnings),
    )


async def _query(call: Awaitable[T]) -> T:
    async with asyncio.timeout(QUERY_TIMEOUT):
        return await call


class DaemonSource:
    """The real `Source`: a daemon's control socket, kept connected."""

    def __init__(self, target: Target, *, backoff: Backoff | None = None) -> None:
        self.target = target
        self.backoff = backoff or Backoff()
        self.client: AsyncClient | None = None
        self.connections = 0
        """How many sessions got through their first snapshot (tests watch it for reconnects)."""
        self._state: DashboardState | None = None
        self._changed: Callable[[], None] = lambda: None
        self._refetch: set[str] = set()
        self._refetch_task: asyncio.Task[None] | None = None
        self._explain_model: str | None = None
        self._activity_broke: int | None = None
        """The pid of a daemon that dropped the link when asked for its activity."""

    def describe(self) -> str:
        return self.target.describe()

    # -- the connection loop --------------------------------------------------

    async def run(self, state: DashboardState, changed: Callable[[], None]) -> None:
        self._state, self._changed = state, changed
        while True:
            state.set_connection("connecting")
            changed()
            try:
                detail = await self._session(state)
            except (ConnectionFailed, DaemonError) as exc:
                detail = str(exc)
            except TimeoutError:
                detail = f"no answer within {QUERY_TIMEOUT:.0f}s"
            except Exception as exc:
                # Whatever went wrong (a reply we could not use, a bug of ours), the
                # dashboard must keep trying rather than freeze on stale data.
                detail = f"{type(exc).__name__}: {exc}"
            delay = self.backoff.next()
            state.set_connection("disconnected", detail, retry_in=delay)
            changed()
            await asyncio.sleep(delay)

    async def _session(self, state: DashboardState) -> str:
        """One connection, from welcome to its end; returns why it ended."""
        client = await self.target.connect()
        try:
            if client.welcome is not None:
                state.apply_welcome(client.welcome)
            # Subscribe first: what changes while we take the snapshot arrives after it.
            await _query(client.subscribe(p.TOPICS, history=True))
            # First: should the daemon drop the link over it, nothing was shown yet.
            await self._fetch_activity(client)
            state.apply_status(await _query(client.status()))
            await self._fetch(client, {"models", "matrix", "decisions"})
            self.client = client
            self.connections += 1
            self.backoff.reset()
            state.set_connection("connected")
            self._changed()
            async for item in client.events():
                self._on_message(item)
            return client.close_reason or "the daemon closed the connection"
        finally:
            self.client = None
            if self._refetch_task is not None:
                self._refetch_task.cancel()
                self._refetch_task = None
            await client.aclose()

    async def _fetch(self, client: AsyncClient, what: set[str]) -> None:
        state = self._require_state()
        if "status" in what:
            state.apply_status(await _query(client.status()))
        if "models" in what:
            state.apply_models(await _query(client.models()))
        if "matrix" in what:
            state.apply_matrix(await self._matrix(client))
        if "decisions" in what:
            state.apply_decisions(await _query(client.decisions()))
        self._changed()

    async def _fetch_activity(self, client: AsyncClient) -> None:
        """The latest request records; a daemon that keeps none is said so, not an error.

        The records are optional: a daemon that drops the link when asked for them is
        not asked again (until it restarts), so it cannot keep the dashboard away."""
        state = self._require_state()
        welcome = client.welcome
        protocol = welcome.protocol if welcome is not None else 0
        daemon = welcome.daemon.pid if welcome is not None else None
        if protocol < ACTIVITY_PROTOCOL:
            state.activity_unavailable(
                f"this swapd speaks protocol {protocol}: it keeps no request records"
            )
            return
        if daemon is not None and daemon == self._activity_broke:
            state.activity_unavailable("this swapd dropped the link when asked for its activity")
            return
        try:
            reply = await _query(
                client.request(p.ActivityRequest(limit=ACTIVITY_BACKLOG), p.ActivityReply)
            )
        except DaemonError as exc:
            state.activity_unavailable(f"{exc.error.code}: {exc.error.message}")
            return
        except ConnectionFailed:
            self._activity_broke = daemon
            raise
        state.apply_activity(reply.records)

    async def _matrix(self, client: AsyncClient) -> p.MatrixView:
        """The matrix view, with the selected model explained when the daemon knows it."""
        model = self._explain_model
        try:
            return await _query(client.matrix(model))
        except DaemonError as exc:
            if model is None or exc.error.code != "not_found":
                raise
        # Removed from the config since it was selected: nothing to explain, and no
        # reason to doubt the link.
        self._explain_model = None
        self._require_state().nothing_to_explain(model)
        return await _query(client.matrix(None))

    # -- incoming messages ----------------------------------------------------

    def _on_message(self, message: p.Event | p.Lagged | p.Error) -> None:
        state = self._require_state()
        match message:
            case p.Event():
                state.apply_event(message.data)
                self._after_event(message.data)
            case p.Lagged():
                state.apply_lagged(message.missed)
                # Events were lost: only a fresh snapshot is trustworthy now.
                self._schedule_refetch({"models", "matrix"})
            case p.Error():
                state.add_note(f"daemon error {message.code}: {message.message}")
        self._changed()

    def _after_event(self, event: p.EventPayload) -> None:
        # Events carry the change, not the whole row (pid, port, TTL left, running set,
        # a failed model's counts): re-ask for those, coalesced. A request's events do
        # not say how many are in flight on its model (a cancelled one names no model),
        # the models reply does.
        if isinstance(event, p.StateChanged):
            self._schedule_refetch({"models", "matrix"})
        elif isinstance(event, p.RequestEvent):
            self._schedule_refetch({"models"})
        elif isinstance(event, p.ConfigReloaded) and event.ok:
            self._schedule_refetch({"status", "models", "matrix"})

    def _schedule_refetch(self, what: set[str]) -> None:
        self._refetch |= what
        if self._refetch_task is None or self._refetch_task.done():
            self._refetch_task = asyncio.create_task(self._refetch_later())

    async def _refetch_later(self) -> None:
        await asyncio.sleep(REFETCH_DELAY)
        what, self._refetch = self._refetch, set()
        client = self.client
        if client is None or not what:
            return
        try:
            await self._fetch(client, what)
        except (ConnectionFailed, TimeoutError):
            pass  # the session notices a lost link itself; the next event refetches
        except DaemonError as exc:
            # A refusal is an answer, not a lost link: say so and keep the session.
            error = exc.error
            self._require_state().add_note(
                f"refreshing {', '.join(sorted(what))}: {error.code}: {error.message}"
            )
            self._changed()
        except Exception as exc:
            self._require_state().add_note(f"refreshing {', '.join(sorted(what))} failed: {exc!r}")
            self._changed()

    def _require_state(self) -> DashboardState:
        assert self._state is not None, "run() has not started"
        return self._state

    # -- actions ----------------------------------------------------------------

    async def _act(self, action: str, call: Callable[[AsyncClient], Awaitable[Verdict]]) -> Verdict:
        client = self.client
        if client is None:
            return Verdict(action=action, ok=False, message="not connected to the daemon")
        try:
            return await call(client)
        except DaemonError as exc:
            return error_verdict(action, exc.error)
        except (ConnectionFailed, OSError) as exc:
            return Verdict(action=action, ok=False, message=str(exc))

    async def load(self, model: str) -> Verdict:
        async def call(client: AsyncClient) -> Verdict:
            result = await client.load(model)
            if result.seconds is None:
                message = f"{result.model} is {result.state}"
            else:
                message = f"{result.model} {result.state} in {result.seconds:.1f}s"
            return Verdict(action="load", ok=True, message=message)

        return await self._act("load", call)

    async def unload(self, models: Sequence[str] | None, *, now: bool = False) -> Verdict:
        async def call(client: AsyncClient) -> Verdict:
            return unload_verdict(await client.unload_reply(models, now=now), now=now)

        return await self._act("unload", call)

    async def reload(self) -> Verdict:
        async def call(client: AsyncClient) -> Verdict:
            return reload_result_verdict(await client.reload())

        return await self._act("reload", call)

    async def explain(self, model: str) -> None:
        """The matrix view with `model` explained (one reply, and the running set stays fresh)."""
        self._explain_model = model
        client = self.client
        if client is None:
            return
        state = self._require_state()
        try:
            state.apply_matrix(await self._matrix(client))
        except DaemonError as exc:
            why = f"{exc.error.code}: {exc.error.message}"
            state.apply_explanation(p.Explanation(model=model, action="error", why=why))
        except (ConnectionFailed, TimeoutError, OSError):
            return
        self._changed()

    async def capture(self, request_id: int) -> None:
        """A request's capture, or why there is none, into the state."""
        state = self._require_state()
        client = self.client
        if client is None:
            state.apply_capture(request_id, "not connected to the daemon")
            self._changed()
            return
        try:
            reply = await _query(
                client.request(p.CaptureRequest(request=request_id), p.CaptureReply)
            )
        except DaemonError as exc:
            if exc.error.code == "not_found":
                why = "none kept (captureBuffer off, or it has been overwritten)"
            else:
                why = f"{exc.error.code}: {exc.error.message}"
            state.apply_capture(request_id, why)
        except (ConnectionFailed, TimeoutError, OSError) as exc:
            state.apply_capture(request_id, f"not fetched: {exc}")
        else:
            state.apply_capture(request_id, reply.capture)
        self._changed()
