"""The dashboard's link to a daemon: the control socket, directly or over SSH.

`DaemonSource` implements `Source`. It connects (a Unix socket, or
`ssh HOST swapctl bridge` whose stdio carries the same protocol), says hello,
asks for the status, models, swap policy and decision log, and subscribes to
every topic with history. Events go into the `DashboardState` as they
arrive; a few of them (state changes, config reloads) make it re-ask for the
models and the matrix view, coalesced, never on a timer.

When the link drops or the daemon restarts, the state says "disconnected",
and the source retries with exponential backoff, then says hello and
subscribes again. Nothing the daemon sends (an error, a bad line, an unknown
message kind) can crash the app: it becomes a verdict or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from swapctl import protocol as p
from swapctl.codec import BadLine, FrameTooLarge, encode, server_decoder
from swapctl.paths import resolve_socket_path
from swaptui.state import DashboardState, Verdict, describe_changes

CLIENT_NAME = "swaptui"
READ_CHUNK = 64 * 1024
QUERY_TIMEOUT = 15.0
"""Seconds to wait for a query's reply; load, unload and reload wait as long as they take."""
REFETCH_DELAY = 0.2
"""Coalescing window for re-asking models/matrix after a burst of state changes."""


class LinkError(Exception):
    """The link to the daemon failed or the daemon refused us; the message says why."""


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

    def bridge_argv(self) -> list[str]:
        """`ssh HOST swapctl [--socket PATH] bridge`: stdio carries the protocol."""
        assert self.ssh_host is not None
        remote = ["swapctl"]
        if self.remote_socket:
            remote += ["--socket", self.remote_socket]
        remote.append("bridge")
        # -T: no tty, so the bridge's stdio stays binary-clean; BatchMode: never prompt
        # inside the dashboard (an operator authenticates with an agent or keys).
        return [*self.ssh_command, "-T", "-o", "BatchMode=yes", self.ssh_host, *remote]


class Link:
    """One connection: a byte stream both ways, framed by the sans-IO codec."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        process: asyncio.subprocess.Process | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.process = process
        self.decoder = server_decoder()

    @classmethod
    async def open(cls, target: Target) -> Link:
        if target.ssh_host is None:
            assert target.socket is not None
            try:
                reader, writer = await asyncio.open_unix_connection(
                    str(target.socket), limit=READ_CHUNK
                )
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise LinkError(f"no daemon at {target.socket} ({exc.strerror})") from exc
            except PermissionError as exc:
                raise LinkError(f"not allowed to use {target.socket}") from exc
            except OSError as exc:
                raise LinkError(f"cannot connect to {target.socket}: {exc}") from exc
            return cls(reader, writer)
        argv = target.bridge_argv()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise LinkError(f"cannot run {argv[0]}: {exc}") from exc
        assert process.stdout is not None and process.stdin is not None
        return cls(process.stdout, process.stdin, process)

    async def send(self, message: Any) -> None:
        self.writer.write(encode(message))
        await self.writer.drain()

    async def receive(self) -> Any:
        """The next message; raises LinkError at end of stream or on an oversized line.

        A line the codec cannot decode is returned as `BadLine` for the caller to report.
        """
        while True:
            try:
                item = self.decoder.next()
            except FrameTooLarge as exc:
                raise LinkError(f"the daemon sent an oversized line: {exc}") from exc
            if item is not None:
                return item
            data = await self.reader.read(READ_CHUNK)
            if not data:
                raise LinkError(await self._eof_reason())
            self.decoder.feed(data)

    async def _eof_reason(self) -> str:
        if self.process is None:
            return "the daemon closed the connection"
        # The ssh side: its stderr says why (host unreachable, swapctl missing, no daemon).
        stderr = b""
        if self.process.stderr is not None:
            with contextlib.suppress(TimeoutError, OSError):
                stderr = await asyncio.wait_for(self.process.stderr.read(4096), 2)
        lines = stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "the ssh bridge ended"

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        process = self.process
        if process is None:
            return
        try:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 2)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
        finally:
            # asyncio.subprocess.Process has no public close: without this its transport
            # is only closed by the garbage collector, after the loop may be gone.
            transport = getattr(process, "_transport", None)
            if transport is not None:
                transport.close()


class DaemonError(Exception):
    """The daemon answered a request with an `error` frame."""

    def __init__(self, error: p.Error) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


class Session:
    """One hello'd connection: requests with ids, replies matched to them, events to a callback."""

    def __init__(self, link: Link, on_message: Callable[[Any], None]) -> None:
        self.link = link
        self.on_message = on_message
        self._ids = itertools.count(1)
        self._pending: dict[p.RequestId, asyncio.Future[Any]] = {}
        self.closed = False

    async def hello(self) -> p.Welcome:
        await self.link.send(p.Hello(client=CLIENT_NAME, protocol=p.PROTOCOL_VERSION))
        reply = await asyncio.wait_for(self.link.receive(), QUERY_TIMEOUT)
        if isinstance(reply, p.Welcome):
            return reply
        if isinstance(reply, p.Error):
            raise LinkError(f"the daemon refused us: {reply.code}: {reply.message}")
        raise LinkError(f"expected welcome, got {type(reply).__name__}")

    async def read_forever(self) -> None:
        """Dispatch every incoming message until the link ends (then raise LinkError)."""
        try:
            while True:
                message = await self.link.receive()
                reply_id = getattr(message, "id", None)
                if reply_id is not None and reply_id in self._pending:
                    future = self._pending.pop(reply_id)
                    if not future.done():
                        future.set_result(message)
                    continue
                self.on_message(message)
        finally:
            self.closed = True
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(LinkError("the connection was lost"))
            self._pending.clear()

    async def request(self, message: p.Request, reply_within: float | None = QUERY_TIMEOUT) -> Any:
        """Send a request (its `id` is assigned here) and return the reply; raise DaemonError."""
        if self.closed:
            raise LinkError("not connected")
        request_id = next(self._ids)
        message = _with_id(message, request_id)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self.link.send(message)
            reply = await asyncio.wait_for(future, reply_within)
        except (ConnectionError, OSError) as exc:
            raise LinkError(f"the connection was lost: {exc}") from exc
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, p.Error):
            raise DaemonError(reply)
        return reply


def _with_id(message: p.Request, request_id: int) -> p.Request:
    return msgspec.structs.replace(message, id=request_id)


class DaemonSource:
    """The real `Source`: a daemon's control socket, kept connected."""

    def __init__(self, target: Target, *, backoff: Backoff | None = None) -> None:
        self.target = target
        self.backoff = backoff or Backoff()
        self.session: Session | None = None
        self.connected = asyncio.Event()
        self._state: DashboardState | None = None
        self._changed: Callable[[], None] = lambda: None
        self._refetch: set[str] = set()
        self._refetch_task: asyncio.Task[None] | None = None
        self._explain_model: str | None = None
        self.connections = 0
        """How many sessions reached `welcome` (tests watch it to see a reconnect)."""

    def describe(self) -> str:
        return self.target.describe()

    # -- the connection loop --------------------------------------------------

    async def run(self, state: DashboardState, changed: Callable[[], None]) -> None:
        self._state, self._changed = state, changed
        while True:
            state.set_connection("connecting")
            changed()
            try:
                detail = await self._connect_once(state)
            except LinkError as exc:
                detail = str(exc)
            except (OSError, TimeoutError) as exc:
                detail = f"{type(exc).__name__}: {exc}"
            delay = self.backoff.next()
            state.set_connection("disconnected", detail, retry_in=delay)
            changed()
            await asyncio.sleep(delay)

    async def _connect_once(self, state: DashboardState) -> str:
        link = await Link.open(self.target)
        session = Session(link, self._on_message)
        try:
            welcome = await session.hello()
            state.apply_welcome(welcome)
            reader = asyncio.create_task(session.read_forever())
            try:
                await self._start(session)
                self.session = session
                self.connections += 1
                self.backoff.reset()
                state.set_connection("connected")
                self.connected.set()
                self._changed()
                await reader
            finally:
                self.session = None
                self.connected.clear()
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, LinkError):
                    await reader
                if self._refetch_task is not None:
                    self._refetch_task.cancel()
                    self._refetch_task = None
            return "the daemon closed the connection"
        finally:
            await link.close()

    async def _start(self, session: Session) -> None:
        """Everything a fresh connection needs: snapshot, then live events."""
        state = self._require_state()
        status = await session.request(p.StatusRequest())
        state.apply_status(status.status)
        # Subscribe before the snapshot queries so no change falls between them.
        await session.request(p.SubscribeRequest(topics=list(p.TOPICS), history=True))
        await self._fetch(session, {"models", "matrix", "decisions"})

    async def _fetch(self, session: Session, what: set[str]) -> None:
        state = self._require_state()
        if "status" in what:
            state.apply_status((await session.request(p.StatusRequest())).status)
        if "models" in what:
            state.apply_models((await session.request(p.ModelsRequest())).models)
        if "matrix" in what:
            reply = await session.request(p.MatrixRequest(model=self._explain_model))
            state.apply_matrix(reply.matrix)
        if "decisions" in what:
            state.apply_decisions((await session.request(p.DecisionsRequest())).decisions)
        self._changed()

    # -- incoming messages ----------------------------------------------------

    def _on_message(self, message: Any) -> None:
        state = self._require_state()
        match message:
            case p.Event():
                state.apply_event(message.data)
                self._after_event(message.data)
            case p.Lagged():
                state.apply_lagged(message.missed)
                # We missed events: the snapshot is the only trustworthy picture now.
                self._schedule_refetch({"models", "matrix"})
            case BadLine():
                state.add_note(f"swaptui: undecodable line from the daemon: {message.problem}")
            case p.Error():
                state.add_note(f"swaptui: daemon error {message.code}: {message.message}")
            case _:
                pass
        self._changed()

    def _after_event(self, event: p.EventPayload) -> None:
        # Events carry the change, not the whole row (pid, port, TTL left, running set):
        # re-ask for those, coalesced over a short window.
        if isinstance(event, p.StateChanged):
            self._schedule_refetch({"models", "matrix"})
        elif isinstance(event, p.ConfigReloaded) and event.ok:
            self._schedule_refetch({"status", "models", "matrix"})

    def _schedule_refetch(self, what: set[str]) -> None:
        self._refetch |= what
        if self._refetch_task is None or self._refetch_task.done():
            self._refetch_task = asyncio.create_task(self._refetch_later())

    async def _refetch_later(self) -> None:
        await asyncio.sleep(REFETCH_DELAY)
        what, self._refetch = self._refetch, set()
        session = self.session
        if session is None or not what:
            return
        with contextlib.suppress(LinkError, DaemonError, TimeoutError):
            await self._fetch(session, what)

    def _require_state(self) -> DashboardState:
        assert self._state is not None, "run() has not started"
        return self._state

    # -- actions ----------------------------------------------------------------

    async def _act(
        self, action: str, request: p.Request, describe: Callable[[Any], str]
    ) -> Verdict:
        session = self.session
        if session is None:
            return Verdict(action=action, ok=False, message="not connected to the daemon")
        try:
            reply = await session.request(request, reply_within=None)
        except DaemonError as exc:
            return error_verdict(action, exc.error)
        except (LinkError, OSError) as exc:
            return Verdict(action=action, ok=False, message=str(exc))
        return Verdict(action=action, ok=True, message=describe(reply))

    async def load(self, model: str) -> Verdict:
        def describe(reply: p.LoadReply) -> str:
            r = reply.result
            if r.seconds is None:
                return f"{r.model} is {r.state}"
            return f"{r.model} {r.state} in {r.seconds:.1f}s"

        return await self._act("load", p.LoadRequest(model=model), describe)

    async def unload(self, models: Sequence[str] | None) -> Verdict:
        def describe(reply: p.UnloadReply) -> str:
            return "unloaded " + (", ".join(reply.models) or "nothing")

        request = (
            p.UnloadRequest(all=True) if models is None else p.UnloadRequest(models=list(models))
        )
        return await self._act("unload", request, describe)

    async def reload(self) -> Verdict:
        return await self._act(
            "reload", p.ReloadRequest(), lambda reply: describe_changes(reply.result)
        )

    async def explain(self, model: str) -> None:
        self._explain_model = model
        session = self.session
        if session is None:
            return
        state = self._require_state()
        try:
            reply = await session.request(p.MatrixRequest(model=model))
        except DaemonError as exc:
            state.apply_explanation(
                p.Explanation(
                    model=model, action="error", why=f"{exc.error.code}: {exc.error.message}"
                )
            )
        except (LinkError, TimeoutError, OSError):
            return
        else:
            state.apply_matrix(reply.matrix)
        self._changed()


def error_verdict(action: str, error: p.Error) -> Verdict:
    """A daemon refusal as a verdict: its message, every problem located, the log tail."""
    problems = [problem.format() for problem in error.problems]
    if error.log_tail:
        problems += ["log tail:", *error.log_tail.rstrip().splitlines()[-10:]]
    return Verdict(
        action=action, ok=False, message=f"{error.code}: {error.message}", problems=tuple(problems)
    )


def make_target(socket: str | None, ssh_host: str | None, remote_socket: str | None) -> Target:
    """The target the command line names; a local socket defaults as swapctl's does."""
    if ssh_host is not None:
        return Target(ssh_host=ssh_host, remote_socket=remote_socket)
    return Target(socket=resolve_socket_path(socket, os.environ))
