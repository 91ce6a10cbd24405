"""Times given on the command line, and the request trace `swapctl activity --export` writes.

A trace is JSON Lines, oldest request first, one object per request:
`{"t": seconds since the first exported request, "model": the name as the
client sent it, "service": seconds the upstream took once the request was
granted, "stream": bool}`. `service` is the request's duration less its
time queued and waiting for a load; it is null when the duration is not
known. Requests that named no model are left out (there is nothing to
replay).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime

import msgspec

from swapctl import protocol as p

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


class BadTime(ValueError):
    """A time on the command line that is neither a duration ago nor a date."""


def parse_when(value: str, now: float) -> float:
    """Unix seconds from `10m`, `1h`, `2d`, `90` (seconds ago) or an ISO date
    (`2026-12-07`, `2026-12-07T10:00`, local time unless it names its zone)."""
    match = _AGO.match(value)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2) or "s"]
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError:
        raise BadTime(
            f"{value!r} is not a time: give a duration ago (30s, 10m, 1h, 2d) or a date "
            "(2026-12-07T10:00)"
        ) from None


class TraceLine(msgspec.Struct, frozen=True):
    t: float
    model: str
    service: float | None
    stream: bool


def service_seconds(r: p.RequestRecord) -> float | None:
    """Seconds the upstream took once granted: duration less queue and load waits."""
    if r.duration_s is None:
        return None
    return max(0.0, r.duration_s - (r.queued_s or 0.0) - (r.load_wait_s or 0.0))


def trace_lines(records: Iterable[p.RequestRecord]) -> Iterator[TraceLine]:
    """The trace of `records` given oldest first."""
    first: float | None = None
    for r in records:
        if not r.requested:
            continue
        if first is None:
            first = r.start
        yield TraceLine(
            t=round(r.start - first, 6),
            model=r.requested,
            service=None if (s := service_seconds(r)) is None else round(s, 6),
            stream=r.stream,
        )


_encode = msgspec.json.Encoder().encode


def encode_trace(records: Iterable[p.RequestRecord]) -> Iterator[bytes]:
    for line in trace_lines(records):
        yield _encode(line) + b"\n"
