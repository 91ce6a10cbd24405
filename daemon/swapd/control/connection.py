"""One control connection: read requests, answer them, pump subscriptions.

Tasks per connection, all in its own nursery:

- the *reader* decodes lines (sans-IO `swapctl.codec`) and answers quick
  queries inline, in order;
- slow requests (`load`, `unload`, `reload`, the history's, `simulate`)
  each run in their own task, at most `max_slow_requests` at once, so a
  load that takes a minute does not hold up `status`;
- one *pump* per subscription moves events from its bounded bus
  subscription to the outbox, announcing drops with `lagged`;
- the *writer* is the only task that touches the socket's send side: it
  drains the bounded outbox, coalescing lines into one `send_all`.

A client that stops reading fills its socket buffer, then its outbox; its
pumps block and its bus subscriptions drop their oldest events. Nothing of
that reaches the daemon or any other connection.

When the client closes its sending side, subscriptions end, replies to slow
requests still in progress are delivered, and the connection closes. A
fatal error (an oversized line, a protocol version we do not serve) sends
one last error line, if the outbox has room, and closes.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
import trio

from swapctl import codec
from swapctl import protocol as p
from swapd.control.interface import ControlBackend, ControlError, EventSource

log = logging.getLogger("swapd.control")


@dataclass(frozen=True, slots=True)
class ControlLimits:
    """Every bound of the control server, with its overflow behaviour."""

    max_line: int = p.MAX_LINE_BYTES
    """Longer incoming line: error frame, then close. Longer reply: `reply_too_large`."""
    outbox: int = 64
    """Encoded lines waiting for the socket; when full, producers of this connection wait."""
    subscriber_buffer: int = 1024
    """Events per subscription; when full the oldest is dropped and counted for `lagged`."""
    max_subscriptions: int = 32
    """Per connection; more gets `busy`."""
    max_slow_requests: int = 16
    """Concurrent load/unload/reload per connection; more gets `busy`."""
    max_log_bytes: int = 512 * 1024
    """`logs.max_bytes` is clamped to this."""
    max_list: int = 10_000
    """`decisions.limit` and `matrix.limit` are clamped to this."""
    close_timeout: float = 5.0
    """How long a closing connection may take to flush its last lines."""
    hello_timeout: float = 60.0
    """A connection that has not said hello by then gets `hello_required` and is closed."""
    read_size: int = 64 * 1024


@dataclass(slots=True)
class ServerCounters:
    """Shared by every connection of one server: reported in `status`, awaited by tests."""

    connections: int = 0
    subscribers: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)

    def add(self, *, connections: int = 0, subscribers: int = 0) -> None:
        self.connections += connections
        self.subscribers += subscribers
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(
        self, *, connections: int | None = None, subscribers: int | None = None
    ) -> None:
        """Wait until the counters reach these values."""
        while (connections is not None and self.connections != connections) or (
            subscribers is not None and self.subscribers != subscribers
        ):
            await self._changed.wait()


@dataclass(slots=True)
class _Subscription:
    source: EventSource
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    dropped: int = 0
    """Events skipped because their line would exceed the bound; reported as lagged."""


class ControlConnection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        backend: ControlBackend,
        limits: ControlLimits,
        counters: ServerCounters,
    ) -> None:
        self._stream = stream
        self._backend = backend
        self._limits = limits
        self._counters = counters
        self._greeted = False
        self._slow = 0
        self._subs: dict[int, _Subscription] = {}
        self._sub_ids = itertools.count(1)
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](limits.outbox)
        self._work: trio.Nursery | None = None
        self._quick: dict[type[Any], Callable[[Any], Any]] = {
            p.StatusRequest: self._status,
            p.ModelsRequest: self._models,
            p.LogsRequest: self._logs,
            p.SubscribeRequest: self._subscribe,
            p.UnsubscribeRequest: self._unsubscribe,
            p.ExplainRequest: self._explain,
            p.MatrixRequest: self._matrix,
            p.DecisionsRequest: self._decisions,
            p.CaptureRequest: self._capture,
        }
        self._slow_handlers: dict[type[Any], Callable[[Any], Awaitable[Any]]] = {
            p.LoadRequest: self._load,
            p.UnloadRequest: self._unload,
            p.ReloadRequest: self._reload,
            p.ActivityRequest: self._activity,
            p.HistoryRequest: self._history,
            p.StatsRequest: self._stats,
            p.SimulateRequest: self._simulate,
        }

    # --- lifetime -----------------------------------------------------------

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as conn:
                writer_scope = trio.CancelScope()
                conn.start_soon(self._writer, writer_scope, conn.cancel_scope)
                async with trio.open_nursery() as work:
                    self._work = work
                    fatal = await self._reader()
                    for sub_id in list(self._subs):
                        self._end_subscription(sub_id)
                    if fatal:
                        work.cancel_scope.cancel()
                # Every producer is gone: let the writer flush, but not forever.
                writer_scope.deadline = trio.current_time() + self._limits.close_timeout
                self._out_send.close()
        finally:
            for sub_id in list(self._subs):
                self._end_subscription(sub_id)
            await trio.aclose_forcefully(self._stream)

    async def _writer(self, scope: trio.CancelScope, conn_scope: trio.CancelScope) -> None:
        with scope:
            try:
                async for line in self._out_recv:
                    batch, size = [line], len(line)
                    while size < self._limits.read_size:
                        try:
                            more = self._out_recv.receive_nowait()
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                        batch.append(more)
                        size += len(more)
                    await self._stream.send_all(b"".join(batch))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # The client is gone: nothing more to do for it.
                conn_scope.cancel()

    async def _reader(self) -> bool:
        """Read until EOF (returns False) or a fatal protocol error (returns True)."""
        decoder = codec.client_decoder(self._limits.max_line)
        hello_deadline = trio.current_time() + self._limits.hello_timeout
        while True:
            with trio.move_on_at(math.inf if self._greeted else hello_deadline) as waiting:
                try:
                    data = await self._stream.receive_some(self._limits.read_size)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return False
            if waiting.cancelled_caught:
                timeout = self._limits.hello_timeout
                self._last_words(
                    p.Error(code="hello_required", message=f"no hello within {timeout:g} s")
                )
                return True
            decoder.feed(data)
            try:
                while (item := decoder.next()) is not None:
                    if await self._handle(item):
                        return True
            except codec.FrameTooLarge as exc:
                self._last_words(p.Error(code="frame_too_large", message=str(exc)))
                return True
            if not data:
                return False

    def _last_words(self, error: p.Error) -> None:
        """Queue a final error line if there is room; a client that does not read gets none."""
        try:
            self._out_send.send_nowait(codec.encode(error))
        except trio.WouldBlock:
            pass

    async def _send(self, message: msgspec.Struct) -> None:
        line = codec.encode(message)
        if len(line) - 1 > self._limits.max_line:
            line = codec.encode(
                p.Error(
                    id=message.id if isinstance(message, (p.Reply, p.Error)) else None,
                    code="reply_too_large",
                    message=(
                        f"the reply would be {len(line) - 1} bytes, over the "
                        f"{self._limits.max_line} byte line limit; ask for less"
                    ),
                )
            )
        await self._out_send.send(line)

    # --- dispatch -----------------------------------------------------------

    async def _handle(self, item: p.ClientMessage | codec.BadLine) -> bool:
        """Answer one decoded line; True means close the connection."""
        if isinstance(item, codec.BadLine):
            await self._send(p.Error(id=item.id, code="bad_frame", message=item.problem))
            return False
        if isinstance(item, p.Hello):
            return await self._hello(item)
        request_id = item.id
        if not self._greeted:
            await self._send(
                p.Error(
                    id=request_id,
                    code="hello_required",
                    message=f'send {{"type":"hello","protocol":{p.PROTOCOL_VERSION}}} first',
                )
            )
            return False
        slow = self._slow_handlers.get(type(item))
        if slow is not None:
            if self._slow >= self._limits.max_slow_requests:
                await self._send(
                    p.Error(
                        id=request_id,
                        code="busy",
                        message=f"{self._slow} slow requests already in progress on this "
                        "connection; wait for their replies",
                    )
                )
                return False
            self._slow += 1
            assert self._work is not None
            self._work.start_soon(self._run_slow, slow, item)
            return False
        handler = self._quick[type(item)]
        try:
            reply = handler(item)
        except ControlError as exc:
            reply = exc.to_error(request_id)
        except Exception as exc:
            log.exception("control request %s failed", type(item).__name__)
            reply = p.Error(id=request_id, code="internal", message=f"{type(exc).__name__}: {exc}")
        await self._send(reply)
        return False

    async def _hello(self, hello: p.Hello) -> bool:
        if not p.MIN_PROTOCOL_VERSION <= hello.protocol <= p.PROTOCOL_VERSION:
            self._last_words(
                p.Error(
                    code="version_mismatch",
                    message=(
                        f"client speaks protocol {hello.protocol}; this daemon serves "
                        f"{p.MIN_PROTOCOL_VERSION} to {p.PROTOCOL_VERSION}: upgrade the "
                        + ("daemon" if hello.protocol > p.PROTOCOL_VERSION else "client")
                    ),
                )
            )
            return True
        self._greeted = True
        await self._send(p.Welcome(protocol=p.PROTOCOL_VERSION, daemon=self._backend.info()))
        return False

    async def _run_slow(self, handler: Callable[[Any], Awaitable[Any]], request: Any) -> None:
        try:
            reply = await handler(request)
        except ControlError as exc:
            reply = exc.to_error(request.id)
        except Exception as exc:
            log.exception("control request %s failed", type(request).__name__)
            reply = p.Error(id=request.id, code="internal", message=f"{type(exc).__name__}: {exc}")
        finally:
            self._slow -= 1
        await self._send(reply)

    # --- quick requests ---------------------------------------------------

    def _status(self, req: p.StatusRequest) -> p.StatusReply:
        status = self._backend.status()
        status = msgspec.structs.replace(status, subscribers=self._counters.subscribers)
        return p.StatusReply(id=req.id, status=status)

    def _models(self, req: p.ModelsRequest) -> p.ModelsReply:
        return p.ModelsReply(id=req.id, models=self._backend.models())

    def _logs(self, req: p.LogsRequest) -> p.LogsReply:
        if req.max_bytes < 0:
            raise ControlError("bad_request", "max_bytes must be >= 0")
        max_bytes = min(req.max_bytes, self._limits.max_log_bytes)
        return p.LogsReply(id=req.id, log=self._backend.logs(req.source, max_bytes))

    def _explain(self, req: p.ExplainRequest) -> p.ExplainReply:
        return p.ExplainReply(id=req.id, explanation=self._backend.explain(req.model))

    def _matrix(self, req: p.MatrixRequest) -> p.MatrixReply:
        if req.limit < 0:
            raise ControlError("bad_request", "limit must be >= 0")
        limit = min(req.limit, self._limits.max_list)
        return p.MatrixReply(id=req.id, matrix=self._backend.matrix(req.model, limit))

    def _decisions(self, req: p.DecisionsRequest) -> p.DecisionsReply:
        if req.limit < 0:
            raise ControlError("bad_request", "limit must be >= 0")
        limit = min(req.limit, self._limits.max_list)
        return p.DecisionsReply(id=req.id, decisions=self._backend.decisions(limit))

    def _capture(self, req: p.CaptureRequest) -> p.CaptureReply:
        return p.CaptureReply(id=req.id, capture=self._backend.capture(req.request))

    # --- slow requests ----------------------------------------------------

    async def _activity(self, req: p.ActivityRequest) -> p.ActivityReply:
        if req.limit < 0:
            raise ControlError("bad_request", "limit must be >= 0")
        return p.ActivityReply(id=req.id, records=await self._backend.activity(req))

    async def _history(self, req: p.HistoryRequest) -> p.HistoryReply:
        if req.limit < 0:
            raise ControlError("bad_request", "limit must be >= 0")
        return p.HistoryReply(id=req.id, records=await self._backend.history(req))

    async def _stats(self, req: p.StatsRequest) -> p.StatsReply:
        return p.StatsReply(id=req.id, stats=await self._backend.stats(req.since, req.until))

    async def _simulate(self, req: p.SimulateRequest) -> p.SimulateReply:
        return p.SimulateReply(id=req.id, simulation=await self._backend.simulate(req))

    async def _load(self, req: p.LoadRequest) -> p.LoadReply:
        return p.LoadReply(id=req.id, result=await self._backend.load(req.model))

    async def _unload(self, req: p.UnloadRequest) -> p.UnloadReply:
        if req.all and req.models:
            raise ControlError("bad_request", "give either models or all, not both")
        if not req.all and not req.models:
            raise ControlError("bad_request", "name the models to unload, or set all")
        models = None if req.all else list(req.models)
        reply = await self._backend.unload(models, now=req.now)
        return p.UnloadReply(id=req.id, models=reply.models, cut=reply.cut)

    async def _reload(self, req: p.ReloadRequest) -> p.ReloadReply:
        return p.ReloadReply(id=req.id, result=await self._backend.reload())

    # --- subscriptions ----------------------------------------------------

    def _subscribe(self, req: p.SubscribeRequest) -> p.Subscribed:
        unknown = sorted(set(req.topics) - set(p.TOPICS))
        if unknown:
            raise ControlError(
                "bad_request",
                f"unknown topic(s) {', '.join(unknown)}; topics are {', '.join(p.TOPICS)}",
            )
        if len(self._subs) >= self._limits.max_subscriptions:
            raise ControlError(
                "busy", f"at most {self._limits.max_subscriptions} subscriptions per connection"
            )
        topics = [t for t in p.TOPICS if t in req.topics] if req.topics else list(p.TOPICS)
        source = self._backend.subscribe(
            frozenset(topics),
            frozenset(req.models) if req.models else None,
            req.history,
            self._limits.subscriber_buffer,
        )
        sub_id = next(self._sub_ids)
        sub = _Subscription(source)
        self._subs[sub_id] = sub
        self._counters.add(subscribers=1)
        assert self._work is not None
        # The pump sends through the same FIFO outbox after this reply is queued,
        # so `subscribed` always precedes the subscription's first event.
        self._work.start_soon(self._pump, sub_id, sub)
        return p.Subscribed(id=req.id, subscription=sub_id, topics=topics, history=source.pending)

    def _unsubscribe(self, req: p.UnsubscribeRequest) -> p.Unsubscribed:
        if req.subscription not in self._subs:
            raise ControlError(
                "not_found", f"no subscription {req.subscription} on this connection"
            )
        self._end_subscription(req.subscription)
        return p.Unsubscribed(id=req.id, subscription=req.subscription)

    def _end_subscription(self, sub_id: int) -> None:
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            return
        self._counters.add(subscribers=-1)
        sub.scope.cancel()
        sub.source.close()

    async def _pump(self, sub_id: int, sub: _Subscription) -> None:
        with sub.scope:
            # Let the reader queue the `subscribed` reply before the first event.
            await trio.lowlevel.checkpoint()
            try:
                while True:
                    try:
                        data = await sub.source.receive()
                    except trio.EndOfChannel:
                        return
                    # No await between receive and take_lagged: every drop it counts
                    # happened to an event older than `data`.
                    missed = sub.source.take_lagged() + sub.dropped
                    sub.dropped = 0
                    if missed:
                        await self._send(p.Lagged(subscription=sub_id, missed=missed))
                    event = p.Event(
                        subscription=sub_id, topic=data.topic, data=cast(p.EventPayload, data)
                    )
                    line = codec.encode(event)
                    if len(line) - 1 > self._limits.max_line:
                        sub.dropped += 1
                        continue
                    await self._out_send.send(line)
            finally:
                self._end_subscription(sub_id)
