"""Bounded log capture: a ring of recent lines per model, and lossy live subscribers.

Writing never blocks and never waits for a reader, so a slow log viewer can
never slow the drain of a child's stdout (llama-swap issue #875). Each live
subscriber has its own bounded buffer; when it is full new lines are dropped
from that subscriber's feed only (the ring keeps them), and the next line it
receives is a marker saying how many it missed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence

import trio

from swapd.events import EventBus, Receiver
from swapd.process.events import LogBatch, LogLine
from swapd.process.spec import DEFAULT_LOG_RING_BYTES

# Each line costs its length in characters plus this, so that a flood of empty
# lines is bounded too.
LINE_OVERHEAD = 48
# A line longer than this is cut into pieces of this size (a child printing
# without newlines must not grow a partial line forever).
MAX_LINE_BYTES = 16 * 1024
DEFAULT_SUBSCRIBER_LINES = 1024
READ_CHUNK = 64 * 1024


def line_cost(line: LogLine) -> int:
    return len(line.text) + LINE_OVERHEAD


def dropped_marker(source: str, count: int) -> LogLine:
    noun = "line" if count == 1 else "lines"
    return LogLine(source, "dropped", f"— {count} {noun} dropped —", time.time())


class LogSubscription(Receiver[LogLine]):
    """A live feed of one ring; iterate it, or `receive()`. Bounded, drops newest on overflow."""

    def __init__(self, ring: LogRing, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("a log subscriber must buffer at least one line")
        self._ring = ring
        self._buffer: deque[LogLine] = deque()
        self._maxlen = maxlen
        self._dropped = 0
        self._markers = 0  # queued markers, which take no slot of the bound
        self._closed = False
        self._wakeup = trio.Event()

    def _offer(self, line: LogLine) -> None:
        if len(self._buffer) - self._markers >= self._maxlen:
            self._dropped += 1
            return
        if self._dropped:
            # the marker stands where the missing lines were; it takes no slot
            self._buffer.append(dropped_marker(self._ring.source, self._dropped))
            self._markers += 1
            self._dropped = 0
        self._buffer.append(line)
        self._wakeup.set()

    @property
    def dropped(self) -> int:
        """Lines dropped since the last marker was queued."""
        return self._dropped

    def receive_nowait(self) -> LogLine:
        if self._buffer:
            line = self._buffer.popleft()
            if line.stream == "dropped":
                self._markers -= 1
            return line
        if self._dropped:
            marker = dropped_marker(self._ring.source, self._dropped)
            self._dropped = 0
            return marker
        if self._closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._ring._subscribers.discard(self)
            self._wakeup.set()


class LogRing:
    """The recent output of one source, bounded by `max_bytes`; oldest lines go first.

    It belongs to the supervisor, not to one run of the child, so a model's
    history spans its restarts. With a `bus`, every line is also published as
    a `LogLine` event (topic "log").
    """

    def __init__(
        self, source: str, max_bytes: int = DEFAULT_LOG_RING_BYTES, bus: EventBus | None = None
    ) -> None:
        if max_bytes < LINE_OVERHEAD:
            raise ValueError(f"a log ring needs at least {LINE_OVERHEAD} bytes")
        self.source = source
        self.max_bytes = max_bytes
        self._bus = bus
        self._lines: deque[LogLine] = deque()
        self._bytes = 0
        self._subscribers: set[LogSubscription] = set()
        self.total_lines = 0

    def write(self, stream: str, text: str, at: float | None = None) -> LogLine:
        """Record one line (without its newline) and hand it to every live subscriber."""
        line = self._append(LogLine(self.source, stream, text, time.time() if at is None else at))
        if self._bus is not None:
            self._bus.publish(line)
        return line

    def write_batch(self, stream: str, texts: Sequence[str], at: float | None = None) -> None:
        """Record lines read together; the bus gets them as one `LogBatch` event."""
        if not texts:
            return
        batch = LogBatch(self.source, stream, tuple(texts), time.time() if at is None else at)
        for line in batch.lines():
            self._append(line)
        if self._bus is not None:
            self._bus.publish(batch)

    def _append(self, line: LogLine) -> LogLine:
        self._lines.append(line)
        self._bytes += line_cost(line)
        while self._bytes > self.max_bytes and len(self._lines) > 1:
            self._bytes -= line_cost(self._lines.popleft())
        self.total_lines += 1
        for sub in tuple(self._subscribers):
            sub._offer(line)
        return line

    def lines(self, limit: int | None = None) -> list[LogLine]:
        """The buffered lines, oldest first (the last `limit` of them when given)."""
        if limit is None or limit >= len(self._lines):
            return list(self._lines)
        return list(self._lines)[len(self._lines) - limit :] if limit > 0 else []

    def tail(self, limit: int = 20, streams: tuple[str, ...] = ("stdout", "stderr")) -> list[str]:
        """The texts of the last `limit` lines of the given streams (for error reports)."""
        picked = [line.text for line in reversed(self._lines) if line.stream in streams]
        return picked[:limit][::-1]

    def subscribe(
        self, maxlen: int = DEFAULT_SUBSCRIBER_LINES, history: bool = False
    ) -> LogSubscription:
        """A live feed; with `history=True` it starts with the buffered lines (up to `maxlen`)."""
        sub = LogSubscription(self, maxlen)
        if history:
            for line in self.lines(maxlen):
                sub._offer(line)
        self._subscribers.add(sub)
        return sub

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[LogLine]:
        return iter(tuple(self._lines))


class LineSplitter:
    """Bytes in, complete text lines out; a partial line waits for its end, up to a bound."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._partial = bytearray()
        self._max_line = max_line

    def feed(self, data: bytes | bytearray) -> list[str]:
        self._partial += data
        out: list[str] = []
        while True:
            end = self._partial.find(b"\n")
            if end < 0:
                break
            out.append(decode(self._partial[:end]))
            del self._partial[: end + 1]
        while len(self._partial) >= self._max_line:
            out.append(decode(self._partial[: self._max_line]))
            del self._partial[: self._max_line]
        return out

    def flush(self) -> list[str]:
        """The unterminated rest, at end of stream."""
        if not self._partial:
            return []
        rest = decode(self._partial)
        self._partial.clear()
        return [rest]


def decode(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", "replace").rstrip("\r")


async def drain(stream: trio.abc.ReceiveStream, ring: LogRing, name: str) -> None:
    """Copy a child's pipe into its ring, line by line, until EOF. Never waits for readers."""
    splitter = LineSplitter()
    try:
        while data := await stream.receive_some(READ_CHUNK):
            ring.write_batch(name, splitter.feed(data))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        ring.write_batch(name, splitter.flush())
