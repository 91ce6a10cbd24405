"""A synchronous client of the control socket, for scripts: plain blocking sockets.

    from swapctl.client import Client

    with Client() as swapd:                 # default socket path, hello/welcome done
        for model in swapd.models():
            print(model.id, model.state)
        swapd.load("llama")                 # returns once it is ready
        for event in swapd.events(swapd.subscribe(["state"])):
            print(event.data)

A refusal raises `DaemonError` (its `code`, `message`, `problems`); a socket
that cannot be reached or a connection that breaks raises `ConnectionFailed`.
Events that arrive while waiting for a reply are kept, in order, for
`events()` (at most `max_pending_events`; beyond that the oldest are dropped
and reported as a `Lagged` with subscription 0, meaning this client's own
buffer, like the daemon does per subscription).
"""

from __future__ import annotations

import itertools
import os
import socket
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import msgspec

from swapctl import codec
from swapctl import protocol as p
from swapctl.paths import resolve_socket_path

R = TypeVar("R")


class ConnectionFailed(Exception):
    """The daemon could not be reached, or the connection broke."""


class ConnectionClosed(ConnectionFailed):
    """The daemon closed the connection."""


class NoAnswer(ConnectionFailed):
    """Nothing arrived within the timeout."""


class DaemonError(Exception):
    """The daemon answered with an `error`."""

    def __init__(self, error: p.Error) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error
        self.code = error.code
        self.message = error.message
        self.problems = list(error.problems)
        self.log_tail = error.log_tail


def describe_connect_error(path: str | os.PathLike[str], exc: OSError) -> str:
    """One line saying why the socket could not be reached, and the likely cause."""
    if isinstance(exc, FileNotFoundError):
        return f"{path}: no such socket (is swapd running? see --socket)"
    if isinstance(exc, ConnectionRefusedError):
        return f"{path}: connection refused (swapd is not running)"
    if isinstance(exc, PermissionError):
        return f"{path}: permission denied (need the daemon's uid, root or its control.group)"
    return f"{path}: {exc.strerror or exc}"


class Client:
    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        name: str = "swapctl",
        timeout: float | None = 30.0,
        max_pending_events: int = 10_000,
    ) -> None:
        self.path = resolve_socket_path(path)
        self.name = name
        self.timeout = timeout
        self.welcome: p.Welcome | None = None
        self._sock: socket.socket | None = None
        self._decoder: codec.Decoder[Any] = codec.server_decoder()
        self._ids = itertools.count(1)
        self._events: deque[p.Event | p.Lagged] = deque()
        self._max_events = max_pending_events
        self._dropped = 0
        self._eof = False

    # --- connection -------------------------------------------------------

    def connect(self) -> p.Welcome:
        """Connect and say hello; returns the daemon's welcome."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fspath(self.path))
        except OSError as exc:
            sock.close()
            raise ConnectionFailed(describe_connect_error(self.path, exc)) from None
        self._sock = sock
        return self.handshake()

    @classmethod
    def from_socket(cls, sock: socket.socket, **kwargs: Any) -> Client:
        """A client on an already connected socket (call `handshake()` next)."""
        client = cls(kwargs.pop("path", "(socket)"), **kwargs)
        sock.settimeout(client.timeout)
        client._sock = sock
        return client

    def handshake(self) -> p.Welcome:
        """Send hello and wait for welcome; a refusal raises DaemonError."""
        self._send(p.Hello(client=self.name, protocol=p.PROTOCOL_VERSION))
        reply = self._receive_reply(None, hello=True)
        assert isinstance(reply, p.Welcome)
        self.welcome = reply
        return reply

    def set_timeout(self, seconds: float | None) -> None:
        """How long to wait for each reply from now on (None: as long as it takes)."""
        self.timeout = seconds
        if self._sock is not None:
            self._sock.settimeout(seconds)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        if self._sock is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- low level --------------------------------------------------------

    def _send(self, message: msgspec.Struct) -> None:
        if self._sock is None:
            raise ConnectionFailed("not connected")
        try:
            self._sock.sendall(codec.encode(message))
        except BrokenPipeError:
            pass  # the daemon hung up; its last words (if any) are read next
        except OSError as exc:
            raise ConnectionFailed(f"{self.path}: {exc.strerror or exc}") from None

    def _next_message(self) -> Any:
        assert self._sock is not None
        while True:
            try:
                item = self._decoder.next()
            except codec.FrameTooLarge as exc:
                raise ConnectionFailed(f"the daemon sent an oversized line: {exc}") from None
            if isinstance(item, codec.BadLine):
                raise ConnectionFailed(f"the daemon sent an undecodable line: {item.problem}")
            if item is not None:
                return item
            if self._eof:
                raise ConnectionClosed("the daemon closed the connection")
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                timeout = self._sock.gettimeout()
                raise NoAnswer(f"no answer from swapd within {timeout} s") from None
            except OSError as exc:
                raise ConnectionFailed(f"{self.path}: {exc.strerror or exc}") from None
            self._decoder.feed(data)
            self._eof = not data

    def _keep_event(self, event: p.Event | p.Lagged) -> None:
        if len(self._events) >= self._max_events:
            dropped = self._events.popleft()
            if isinstance(dropped, p.Lagged):
                self._dropped += dropped.missed
            else:
                self._dropped += 1
        self._events.append(event)

    def _receive_reply(self, request_id: p.RequestId | None, *, hello: bool = False) -> Any:
        while True:
            message = self._next_message()
            if isinstance(message, (p.Event, p.Lagged)):
                self._keep_event(message)
                continue
            if isinstance(message, p.Error) and (message.id is None or message.id == request_id):
                raise DaemonError(message)
            if hello and isinstance(message, p.Welcome):
                return message
            if getattr(message, "id", object()) == request_id:
                return message
            # A reply to a request this client no longer waits for: ignore it.

    @overload
    def request(self, message: p.Request) -> p.ServerMessage: ...

    @overload
    def request(self, message: p.Request, reply_type: type[R]) -> R: ...

    def request(self, message: p.Request, reply_type: type[object] | None = None) -> object:
        """Send one request (its id is assigned here) and wait for its reply, which must
        be a `reply_type` when one is given."""
        if self._sock is None:
            self.connect()
        message = msgspec.structs.replace(message, id=next(self._ids))
        self._send(message)
        reply = self._receive_reply(message.id)
        if reply_type is not None and not isinstance(reply, reply_type):
            raise ConnectionFailed(f"unexpected reply {type(reply).__name__} to {message}")
        return reply

    # --- the requests -------------------------------------------------------

    def status(self) -> p.Status:
        return self.request(p.StatusRequest(), p.StatusReply).status

    def models(self) -> list[p.ModelInfo]:
        return self.request(p.ModelsRequest(), p.ModelsReply).models

    def load(self, model: str) -> p.LoadResult:
        return self.request(p.LoadRequest(model=model), p.LoadReply).result

    def unload(self, models: Sequence[str] | None = None, *, now: bool = False) -> list[str]:
        """Unload these models, or all of them when `models` is None; returns the running
        ones that were stopped. Each stops once its requests in flight are done (at most
        its unloadTimeout); with `now`, at once, cutting them (`unload_reply` counts them)."""
        return (self.unload_reply(models, now=now)).models

    def unload_reply(
        self, models: Sequence[str] | None = None, *, now: bool = False
    ) -> p.UnloadReply:
        """`unload`, with the whole reply: the models and how many requests were cut."""
        if models is None:
            request = p.UnloadRequest(all=True, now=now)
        else:
            request = p.UnloadRequest(models=list(models), now=now)
        return self.request(request, p.UnloadReply)

    def reload(self) -> p.ReloadResult:
        return self.request(p.ReloadRequest(), p.ReloadReply).result

    def logs(self, source: str = "proxy", max_bytes: int = 64 * 1024) -> p.LogText:
        return self.request(p.LogsRequest(source=source, max_bytes=max_bytes), p.LogsReply).log

    def explain(self, model: str) -> p.Explanation:
        return self.request(p.ExplainRequest(model=model), p.ExplainReply).explanation

    def matrix(self, model: str | None = None, limit: int = 1000) -> p.MatrixView:
        return self.request(p.MatrixRequest(model=model, limit=limit), p.MatrixReply).matrix

    def decisions(self, limit: int = 100) -> list[p.Decision]:
        return self.request(p.DecisionsRequest(limit=limit), p.DecisionsReply).decisions

    def activity(
        self,
        *,
        model: str | None = None,
        outcome: p.Outcome | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[p.RequestRecord]:
        """Finished requests, newest first."""
        query = p.ActivityRequest(
            model=model, outcome=outcome, since=since, until=until, limit=limit
        )
        return self.request(query, p.ActivityReply).records

    def history(
        self,
        *,
        kinds: Sequence[p.HistoryKind] = (),
        model: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[p.HistoryRecord]:
        """Swaps, exits and reloads, newest first."""
        query = p.HistoryRequest(
            kinds=list(kinds), model=model, since=since, until=until, limit=limit
        )
        return self.request(query, p.HistoryReply).records

    def stats(self, since: float | None = None, until: float | None = None) -> p.Stats:
        return self.request(p.StatsRequest(since=since, until=until), p.StatsReply).stats

    def capture(self, request_id: int) -> p.Capture:
        return self.request(p.CaptureRequest(request=request_id), p.CaptureReply).capture

    def simulate(
        self,
        config: str | None = None,
        *,
        since: float | None = None,
        load_times: Mapping[str, float] | None = None,
    ) -> p.Simulation:
        """The daemon's history replayed through `config` (a path the daemon reads;
        None: its config file) and through the config it runs, NEW first."""
        ask = p.SimulateRequest(config=config, since=since, load_times=dict(load_times or {}))
        return self.request(ask, p.SimulateReply).simulation

    def subscribe(
        self,
        topics: Sequence[str] = (),
        models: Sequence[str] = (),
        *,
        history: bool = False,
    ) -> int:
        """Start a subscription; returns its number. Read it with `events()`."""
        request = p.SubscribeRequest(topics=list(topics), models=list(models), history=history)
        return self.request(request, p.Subscribed).subscription

    def unsubscribe(self, subscription: int) -> None:
        self.request(p.UnsubscribeRequest(subscription=subscription), p.Unsubscribed)

    def events(self, timeout: float | None = None) -> Iterator[p.Event | p.Lagged]:
        """Events and lagged notices of every subscription, as they arrive, until EOF.

        `timeout` (None: wait forever) ends the iteration when nothing arrived
        for that long.
        """
        assert self._sock is not None
        self._sock.settimeout(timeout)
        try:
            while True:
                if self._dropped:
                    dropped, self._dropped = self._dropped, 0
                    yield p.Lagged(subscription=0, missed=dropped)
                while self._events:
                    yield self._events.popleft()
                try:
                    message = self._next_message()
                except (NoAnswer, ConnectionClosed):
                    return
                if isinstance(message, (p.Event, p.Lagged)):
                    yield message
        finally:
            if self._sock is not None:
                self._sock.settimeout(self.timeout)


def connect(path: str | os.PathLike[str] | Path | None = None, **kwargs: Any) -> Client:
    """A connected Client (use it as a context manager to close it)."""
    client = Client(path, **kwargs)
    client.connect()
    return client
