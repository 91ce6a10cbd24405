"""Sans-IO framing of the control protocol: bytes in, messages out, and back.

Neither class touches a socket; the trio server, the asyncio client and the
synchronous client each wrap them in a few lines of I/O (hypercorn's split).

- `Decoder.feed(data)` buffers bytes; `Decoder.next()` returns the next
  message, a `BadLine` for a line that is not valid JSON or not a known
  message (the connection stays usable), or None when more bytes are needed.
  A line longer than `max_line` raises `FrameTooLarge`: the peer is either
  broken or hostile, and the only safe reply is an error frame and a close.
- `encode(message)` gives one line, newline included.

Blank lines are ignored and a trailing CR is stripped, so `socat` users on
any terminal can type JSON by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from swapctl.protocol import MAX_LINE_BYTES, ClientMessage, ServerMessage

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


class FrameTooLarge(Exception):
    """A line exceeded the size bound; the connection must be closed."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"line of at least {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be decoded, and why, in words a person can act on.

    `id` is the line's request id when it was a JSON object carrying one, so a
    client waiting on that request gets its error instead of waiting forever.
    """

    line: bytes
    problem: str
    id: int | str | None = None


def encode(message: msgspec.Struct) -> bytes:
    """One protocol line: compact JSON and a newline."""
    return _encoder.encode(message) + b"\n"


def diagnose(line: bytes, error: msgspec.DecodeError) -> BadLine:
    """Name the problem: malformed JSON, not an object, an unknown `type`, or a bad field."""
    text = str(error)
    try:
        raw = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return BadLine(line, f"not valid JSON: {text}")
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        return BadLine(line, f"expected a JSON object with a 'type' field, got {kind}")
    found = raw.get("id")
    rid = found if isinstance(found, int | str) and not isinstance(found, bool) else None
    tag = raw.get("type")
    if tag is None:
        return BadLine(line, "missing the 'type' field", rid)
    if text.startswith("Invalid value") and text.endswith("at `$.type`"):
        return BadLine(line, f"unknown message type {tag!r}", rid)
    return BadLine(line, f"invalid {tag!r} message: {text}", rid)


class Decoder(Generic[T]):
    """Incremental newline-delimited decoder for one direction of a connection."""

    def __init__(self, message_type: Any, max_line: int = MAX_LINE_BYTES) -> None:
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(message_type)
        self._buffer = bytearray()
        self._start = 0
        """Where the current (unconsumed) line begins in the buffer."""
        self._scan_from = 0
        """Where to resume looking for a newline: bytes before it have none."""
        self._max_line = max_line
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a line."""
        return len(self._buffer) - self._start

    def feed(self, data: bytes | bytearray) -> None:
        """Add received bytes; `b""` marks the end of the stream."""
        if not data:
            self._eof = True
            return
        if self._start:
            del self._buffer[: self._start]
            self._scan_from -= self._start
            self._start = 0
        self._buffer += data

    def _take_line(self) -> bytes | None:
        newline = self._buffer.find(b"\n", max(self._scan_from, self._start))
        if newline < 0:
            self._scan_from = len(self._buffer)
            if self.buffered > self._max_line:
                raise FrameTooLarge(self.buffered, self._max_line)
            if not (self._eof and self.buffered):
                return None
            # The stream ended without a final newline: decode what is there.
            newline = len(self._buffer)
        line = bytes(self._buffer[self._start : newline])
        self._start = min(newline + 1, len(self._buffer))
        if len(line) > self._max_line:
            raise FrameTooLarge(len(line), self._max_line)
        return line

    def next(self) -> T | BadLine | None:
        """The next message or bad line, or None until more bytes arrive.

        Raises FrameTooLarge once the current line is longer than the bound,
        without waiting for its end (so a peer cannot make us buffer forever).
        """
        while (line := self._take_line()) is not None:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line.strip():
                continue
            try:
                try:
                    return self._decoder.decode(line)
                except msgspec.DecodeError as exc:
                    return diagnose(line, exc)
            except UnicodeDecodeError as exc:
                return BadLine(line, f"not valid JSON: invalid UTF-8 at byte {exc.start}")
            except RecursionError:
                return BadLine(line, "not valid JSON here: nested too deeply")
        return None

    def __iter__(self) -> Decoder[T]:
        return self

    def __next__(self) -> T | BadLine:
        item = self.next()
        if item is None:
            raise StopIteration
        return item


def client_decoder(max_line: int = MAX_LINE_BYTES) -> Decoder[ClientMessage]:
    """The daemon's decoder: reads what clients send."""
    return Decoder(ClientMessage, max_line)


def server_decoder(max_line: int = MAX_LINE_BYTES) -> Decoder[ServerMessage]:
    """A client's decoder: reads what the daemon sends."""
    return Decoder(ServerMessage, max_line)
