"""The daemon's event bus: one publisher side, many bounded subscribers.

Supervisors, the router and the log capture publish typed events here; the
HTTP `/api/events` stream, the control socket and tests subscribe. Publishing
never blocks and never fails: each subscriber has its own bounded buffer, and
one that falls behind loses its oldest events and is told how many it missed
(`Subscription.take_lagged`). A slow subscriber therefore never slows the
daemon or any other subscriber.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, Self, TypeVar

import trio

DEFAULT_SUBSCRIBER_BUFFER = 1024


class BusEvent(Protocol):
    """Anything published on the bus: it names its topic ("state", "swap", "log", ...),
    as a class attribute of each event type."""

    @property
    def topic(self) -> str: ...


T = TypeVar("T")
Predicate = Callable[[BusEvent], bool]


def topic_of(event: BusEvent) -> str:
    """An event's topic."""
    return event.topic


class Receiver(Generic[T]):
    """Waiting and async iteration on top of a non-blocking `receive_nowait()`.

    Subclasses buffer items, set `self._wakeup` whenever one arrives or they
    close, and raise `trio.WouldBlock` (nothing yet) or `trio.EndOfChannel`
    (closed and drained) from `receive_nowait()`.
    """

    _wakeup: trio.Event

    def receive_nowait(self) -> T:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def receive(self) -> T:
        """Wait for the next item; raises trio.EndOfChannel once closed and drained."""
        while True:
            try:
                return self.receive_nowait()
            except trio.WouldBlock:
                self._wakeup = trio.Event()
                await self._wakeup.wait()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscription(Receiver[BusEvent]):
    """A bounded, lossy view of the bus for one consumer.

    Iterate with `async for event in sub` or call `receive()`. When the buffer
    is full the oldest event is dropped and counted; `take_lagged()` returns
    and resets that count so the consumer can report it.
    """

    def __init__(
        self,
        bus: EventBus,
        maxlen: int,
        topics: Iterable[str] | None,
        predicate: Predicate | None,
    ) -> None:
        if maxlen < 1:
            raise ValueError("subscriber buffer must hold at least one event")
        self._bus = bus
        self._buffer: deque[BusEvent] = deque()
        self._maxlen = maxlen
        self.topics: frozenset[str] | None = frozenset(topics) if topics is not None else None
        self._predicate = predicate
        self._lagged = 0
        self._closed = False
        self._wakeup = trio.Event()

    def wants(self, event: BusEvent) -> bool:
        if self.topics is not None and topic_of(event) not in self.topics:
            return False
        return self._predicate is None or bool(self._predicate(event))

    def _offer(self, event: BusEvent) -> None:
        if self._closed or not self.wants(event):
            return
        self._put(event)

    def _deliver(self, event: BusEvent) -> None:
        """`_offer` for an event the bus already routed to this subscription's topics."""
        if self._closed or (self._predicate is not None and not self._predicate(event)):
            return
        self._put(event)

    def _put(self, event: BusEvent) -> None:
        if len(self._buffer) >= self._maxlen:
            self._buffer.popleft()
            self._lagged += 1
        self._buffer.append(event)
        self._wakeup.set()

    def take_lagged(self) -> int:
        """How many events were dropped since the last call."""
        lagged, self._lagged = self._lagged, 0
        return lagged

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def receive_nowait(self) -> BusEvent:
        """The next buffered event; raises trio.WouldBlock when there is none."""
        if self._buffer:
            return self._buffer.popleft()
        if self._closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._unsubscribe(self)
            self._wakeup.set()


class EventBus:
    """Fan-out of events to subscribers, with a small history per topic for late joiners.

    History is kept per topic so that a chatty topic (log lines) cannot push
    the rare, important ones (state changes, swaps) out of it.

    Publishing is on every request's path (the router publishes several
    records per request), so the subscriptions that want a topic are worked
    out once per topic and kept until a subscription comes or goes: a publish
    visits only those, not every subscriber.
    """

    def __init__(self, history: int = 256) -> None:
        self._subscribers: set[Subscription] = set()
        self._history_len = max(history, 0)
        self._history: dict[str, deque[tuple[int, BusEvent]]] = {}
        self._seq = 0
        # topic -> the subscriptions whose topics include it (a cache, see above)
        self._routes: dict[str, tuple[Subscription, ...]] = {}

    def publish(self, event: BusEvent) -> None:
        """Deliver to every interested subscriber. Never blocks, never raises."""
        topic = event.topic
        if self._history_len:
            self._seq += 1
            ring = self._history.get(topic)
            if ring is None:
                ring = self._history[topic] = deque(maxlen=self._history_len)
            ring.append((self._seq, event))
        subs = self._routes.get(topic)
        if subs is None:
            subs = self._route(topic)
        for sub in subs:
            sub._deliver(event)

    def _route(self, topic: str) -> tuple[Subscription, ...]:
        subs = tuple(s for s in self._subscribers if s.topics is None or topic in s.topics)
        self._routes[topic] = subs
        return subs

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        self._routes.clear()

    def subscribe(
        self,
        *,
        topics: Iterable[str] | None = None,
        predicate: Predicate | None = None,
        maxlen: int = DEFAULT_SUBSCRIBER_BUFFER,
        history: bool = False,
    ) -> Subscription:
        """A new subscription; with `history=True` it starts with the recent events."""
        sub = Subscription(self, maxlen, topics, predicate)
        if history:
            for event in self.recent(topics):
                sub._offer(event)
        self._subscribers.add(sub)
        self._routes.clear()
        return sub

    def recent(
        self, topics: Iterable[str] | None = None, limit: float = math.inf
    ) -> list[BusEvent]:
        """The recent history in publication order, optionally filtered by topic."""
        wanted = self._history.keys() if topics is None else frozenset(topics)
        merged = heapq.merge(*(self._history[t] for t in wanted if t in self._history))
        items = [event for _, event in merged]
        if limit < len(items):
            items = items[len(items) - int(limit) :]
        return items

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        for sub in tuple(self._subscribers):
            sub.close()
