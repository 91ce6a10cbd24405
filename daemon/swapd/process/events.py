"""Typed events the process package publishes on the daemon's EventBus."""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

from swapd.process.states import ProcessState


class StateChanged(msgspec.Struct, frozen=True):
    """A real change of a model's process state (setting the same state again publishes none)."""

    topic: ClassVar[str] = "state"
    model: str
    old: ProcessState
    new: ProcessState
    time: float  # wall clock, seconds since the epoch
    reason: str = ""


class ProcessExited(msgspec.Struct, frozen=True, kw_only=True):
    """A model's server process ended, whether swapd stopped it or it ended on its own."""

    topic: ClassVar[str] = "exit"
    model: str
    pid: int
    returncode: int | None
    """Its exit status as `subprocess` gives it (negative: the signal); None if unknown."""
    reason: str
    """What stopped it (`ttl`, `unload`), or how it ended on its own."""
    failed: bool
    """It ended on its own (a crash or a failed start)."""
    uptime: float
    """Seconds from spawn to exit."""
    time: float  # wall clock, seconds since the epoch


class LogLine(msgspec.Struct, frozen=True):
    """One line of output: a model's stdout/stderr, or swapd's own words about it.

    `source` is the model ID, or "proxy" for swapd's lifecycle messages;
    `stream` is "stdout", "stderr", "swapd" (the supervisor's own notes) or
    "dropped" (a marker telling a live subscriber how many lines it missed).
    """

    topic: ClassVar[str] = "log"
    source: str
    stream: str
    text: str
    time: float


class LogBatch(msgspec.Struct, frozen=True):
    """Consecutive lines of one source and stream, read from a child in one go.

    A child's output goes on the bus per read chunk, not per line: a model
    printing thousands of lines as it starts then costs bus subscribers a few
    events instead of overflowing their bounded buffers. Each line is still
    its own `LogLine` in the model's ring.
    """

    topic: ClassVar[str] = "log"
    source: str
    stream: str
    texts: tuple[str, ...]
    time: float

    def lines(self) -> list[LogLine]:
        return [LogLine(self.source, self.stream, text, self.time) for text in self.texts]


class KvActivity(msgspec.Struct, frozen=True, kw_only=True):
    """A save of a model's KV-cache slots before a planned stop, or their restore after
    a start: how many slots, how many bytes, how long, and what went wrong (logged;
    the stop or the requests never wait beyond the model's `kvCache.timeout`)."""

    topic: ClassVar[str] = "kv"
    model: str
    action: Literal["save", "restore"]
    slots: int  # slots saved or restored
    bytes: int
    seconds: float
    time: float  # wall clock when it ended
    timed_out: bool = False
    errors: tuple[str, ...] = ()
