"""An asyncio client of the control protocol, for the Textual TUI and async scripts.

Two transports carry the same lines:

- a Unix socket: `await AsyncClient.connect_unix(path)`;
- a child process's stdin/stdout: `await AsyncClient.connect_command([...])`,
  typically `ssh HOST swapctl bridge` (`connect_ssh(host)` builds that), so
  a laptop can drive a remote daemon without port forwarding.

Requests may be issued concurrently from many tasks: each gets its own id
and its reply is matched to it. Events of every subscription go to one
bounded queue read with `async for item in client.events()`; when the reader
falls behind by more than `max_pending_events` the oldest are dropped and a
`Lagged(subscription=0, missed=N)` takes their place in the stream.

When the link drops, pending requests fail with `ConnectionFailed`, the
events iterator ends, and `closed` is set with `close_reason` (for ssh, the
tail of its stderr says why). Reconnecting is the caller's policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar, overload

import msgspec

from swapctl import codec
from swapctl import protocol as p
from swapctl.client import ConnectionClosed, ConnectionFailed, DaemonError, describe_connect_error
from swapctl.paths import resolve_socket_path

__all__ = ["AsyncClient", "ConnectionClosed", "ConnectionFailed", "DaemonError", "ssh_command"]

R = TypeVar("R")

STDERR_TAIL = 4096


def ssh_command(
    host: str, remote_socket: str | None = None, ssh: Sequence[str] = ("ssh",)
) -> list[str]:
    """`ssh HOST swapctl [--socket PATH] bridge`, with ssh options that suit a pipe."""
    remote = ["swapctl"]
    if remote_socket:
        remote += ["--socket", remote_socket]
    remote.append("bridge")
    return [*ssh, "-o", "BatchMode=yes", "-T", host, *remote]


class AsyncClient:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        name: str = "swapctl-aio",
        max_pending_events: int = 10_000,
        process: asyncio.subprocess.Process | None = None,
        describe: str = "",
    ) -> None:
        self.name = name
        self.describe = describe
        self.welcome: p.Welcome | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""
        self._reader = reader
        self._writer = writer
        self._process = process
        self._decoder: codec.Decoder[Any] = codec.server_decoder()
        self._ids = itertools.count(1)
        self._pending: dict[p.RequestId, asyncio.Future[Any]] = {}
        self._events: deque[p.Event | p.Lagged | p.Error] = deque()
        self._events_ready = asyncio.Event()
        self._max_events = max_pending_events
        self._dropped = 0
        self._write_lock = asyncio.Lock()
        self._stderr = bytearray()
        self._tasks: list[asyncio.Task[None]] = []
        self._stderr_task: asyncio.Task[None] | None = None
        self._hello: asyncio.Future[p.Welcome] | None = None

    # --- connecting -----------------------------------------------------------

    @classmethod
    async def connect_unix(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        connect_timeout: float = 10.0,
        **kwargs: Any,
    ) -> AsyncClient:
        socket_path = resolve_socket_path(path)
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_unix_connection(os.fspath(socket_path))
        except TimeoutError:
            raise ConnectionFailed(f"{socket_path}: no answer within {connect_timeout} s") from None
        except OSError as exc:
            raise ConnectionFailed(describe_connect_error(socket_path, exc)) from None
        client = cls(reader, writer, describe=str(socket_path), **kwargs)
        await client._start(connect_timeout)
        return client

    @classmethod
    async def connect_command(
        cls, argv: Sequence[str], *, connect_timeout: float = 30.0, **kwargs: Any
    ) -> AsyncClient:
        """Speak the protocol over a child's stdin/stdout (e.g. `ssh HOST swapctl bridge`)."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ConnectionFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        assert process.stdin is not None and process.stdout is not None
        client = cls(
            process.stdout, process.stdin, process=process, describe=" ".join(argv), **kwargs
        )
        await client._start(connect_timeout)
        return client

    @classmethod
    async def connect_ssh(
        cls,
        host: str,
        remote_socket: str | None = None,
        *,
        ssh: Sequence[str] = ("ssh",),
        **kwargs: Any,
    ) -> AsyncClient:
        return await cls.connect_command(ssh_command(host, remote_socket, ssh), **kwargs)

    async def _start(self, connect_timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self._hello = loop.create_future()
        self._tasks.append(asyncio.create_task(self._read_loop()))
        if self._process is not None and self._process.stderr is not None:
            self._stderr_task = asyncio.create_task(self._read_stderr(self._process.stderr))
            self._tasks.append(self._stderr_task)
        try:
            await self._send(p.Hello(client=self.name, protocol=p.PROTOCOL_VERSION))
            async with asyncio.timeout(connect_timeout):
                self.welcome = await self._hello
        except ConnectionClosed as exc:
            # A child that died before reading the hello (ssh: host unreachable,
            # no swapctl there) explains itself on stderr: report that instead.
            reason = await self._last_words() or str(exc)
            await self.aclose()
            raise ConnectionFailed(reason) from None
        except TimeoutError:
            await self.aclose()
            raise ConnectionFailed(
                f"{self.describe}: no welcome within {connect_timeout} s"
            ) from None
        except BaseException:
            await self.aclose()
            raise

    # --- lifetime -------------------------------------------------------------

    async def aclose(self) -> None:
        self._finish("closed by the client")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            self._writer.close()
        if self._process is not None:
            try:
                if self._process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        self._process.terminate()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._process.wait(), 5)
            finally:
                # asyncio.subprocess.Process has no public close: without this the
                # pipe transport is closed by the collector, possibly after the loop
                # is gone ("Exception ignored ... Event loop is closed"). Also when
                # this close is itself cancelled.
                transport = getattr(self._process, "_transport", None)
                if transport is not None:
                    transport.close()
        if self._hello is not None and self._hello.done() and not self._hello.cancelled():
            self._hello.exception()  # retrieved: a failed hello is reported by _start

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _finish(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
        error = ConnectionClosed(reason)
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(error)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        self._events_ready.set()

    # --- reading --------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason = "the daemon closed the connection"
        try:
            while True:
                data = await self._reader.read(65536)
                self._decoder.feed(data)
                while (item := self._decoder.next()) is not None:
                    if isinstance(item, codec.BadLine):
                        reason = f"the daemon sent an undecodable line: {item.problem}"
                        return
                    self._dispatch(item)
                if not data:
                    reason = await self._last_words() or reason
                    return
        except codec.FrameTooLarge as exc:
            reason = f"the daemon sent an oversized line: {exc}"
        except (ConnectionError, OSError) as exc:
            reason = f"connection lost: {exc}"
        finally:
            self._finish(reason)

    async def _last_words(self) -> str:
        """The last stderr line of a child transport (ssh), waiting briefly for it to end."""
        if self._stderr_task is None:
            return ""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 2)
        tail = self._stderr.decode(errors="replace").strip()
        return tail.splitlines()[-1] if tail else ""

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(4096):
            self._stderr += chunk
            del self._stderr[:-STDERR_TAIL]

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, p.Welcome):
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(message)
            return
        if isinstance(message, (p.Event, p.Lagged)):
            self._keep_event(message)
            return
        request_id = getattr(message, "id", None)
        if isinstance(message, p.Error) and request_id is None:
            if self._hello is not None and not self._hello.done():
                self._hello.set_exception(DaemonError(message))
            else:
                self._keep_event(message)
            return
        future = self._pending.pop(request_id, None) if request_id is not None else None
        if future is None or future.done():
            return  # a reply nobody waits for any more
        if isinstance(message, p.Error):
            future.set_exception(DaemonError(message))
        else:
            future.set_result(message)

    def _keep_event(self, item: p.Event | p.Lagged | p.Error) -> None:
        if len(self._events) >= self._max_events:
            dropped = self._events.popleft()
            self._dropped += dropped.missed if isinstance(dropped, p.Lagged) else 1
        self._events.append(item)
        self._events_ready.set()

    async def events(self) -> AsyncIterator[p.Event | p.Lagged | p.Error]:
        """Every event (and lagged notice, and id-less error) until the connection closes."""
        while True:
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                yield p.Lagged(subscription=0, missed=dropped)
            if self._events:
                yield self._events.popleft()
                continue
            if self.closed.is_set():
                return
            self._events_ready.clear()
            await self._events_ready.wait()

    # --- requests -------------------------------------------------------------

    async def _send(self, message: msgspec.Struct) -> None:
        if self.closed.is_set():
            raise ConnectionClosed(self.close_reason)
        async with self._write_lock:
            try:
                self._writer.write(codec.encode(message))
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                self._finish(f"connection lost: {exc}")
                raise ConnectionClosed(self.close_reason) from None

    @overload
    async def request(self, message: p.Request) -> p.ServerMessage: ...

    @overload
    async def request(self, message: p.Request, reply_type: type[R]) -> R: ...

    async def request(self, message: p.Request, reply_type: type[object] | None = None) -> object:
        """Send a request (its id is assigned here) and wait for its reply."""
        message = msgspec.structs.replace(message, id=next(self._ids))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message.id] = future
        try:
            await self._send(message)
            reply = await future
        finally:
            self._pending.pop(message.id, None)
        if reply_type is not None and not isinstance(reply, reply_type):
            raise ConnectionFailed(f"unexpected reply {type(reply).__name__} to {message}")
        return reply

    async def status(self) -> p.Status:
        return (await self.request(p.StatusRequest(), p.StatusReply)).status

    async def models(self) -> list[p.ModelInfo]:
        return (await self.request(p.ModelsRequest(), p.ModelsReply)).models

    async def load(self, model: str) -> p.LoadResult:
        return (await self.request(p.LoadRequest(model=model), p.LoadReply)).result

    async def unload(self, models: Sequence[str] | None = None, *, now: bool = False) -> list[str]:
        """Unload these models, or all of them when `models` is None; returns the running
        ones that were stopped. Each stops once its requests in flight are done (at most
        its unloadTimeout); with `now`, at once, cutting them (`unload_reply` counts them)."""
        return (await self.unload_reply(models, now=now)).models

    async def unload_reply(
        self, models: Sequence[str] | None = None, *, now: bool = False
    ) -> p.UnloadReply:
        """`unload`, with the whole reply: the models and how many requests were cut."""
        if models is None:
            request = p.UnloadRequest(all=True, now=now)
        else:
            request = p.UnloadRequest(models=list(models), now=now)
        return await self.request(request, p.UnloadReply)

    async def reload(self) -> p.ReloadResult:
        return (await self.request(p.ReloadRequest(), p.ReloadReply)).result

    async def logs(self, source: str = "proxy", max_bytes: int = 64 * 1024) -> p.LogText:
        request = p.LogsRequest(source=source, max_bytes=max_bytes)
        return (await self.request(request, p.LogsReply)).log

    async def explain(self, model: str) -> p.Explanation:
        return (await self.request(p.ExplainRequest(model=model), p.ExplainReply)).explanation

    async def matrix(self, model: str | None = None, limit: int = 1000) -> p.MatrixView:
        request = p.MatrixRequest(model=model, limit=limit)
        return (await self.request(request, p.MatrixReply)).matrix

    async def decisions(self, limit: int = 100) -> list[p.Decision]:
        request = p.DecisionsRequest(limit=limit)
        return (await self.request(request, p.DecisionsReply)).decisions

    async def subscribe(
        self,
        topics: Sequence[str] = (),
        models: Sequence[str] = (),
        *,
        history: bool = False,
    ) -> int:
        request = p.SubscribeRequest(topics=list(topics), models=list(models), history=history)
        return (await self.request(request, p.Subscribed)).subscription

    async def unsubscribe(self, subscription: int) -> None:
        await self.request(p.UnsubscribeRequest(subscription=subscription), p.Unsubscribed)
