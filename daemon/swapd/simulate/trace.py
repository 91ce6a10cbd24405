"""The trace: one request per line of JSON, read and written (docs/trace.md).

    {"t": 12.5, "model": "llama", "service": 3.2, "stream": true}

`t` is the arrival in seconds since the start of the trace, `model` the name
the client sent (an ID or an alias), `service` the seconds the upstream took
once the request was granted (null when not known: replayed as 0 s),
`stream` whether it asked for a stream. Keys
other than these are ignored, so a trace may carry notes of its own. A bad
line is reported as `file:line: reason`; nothing is guessed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import msgspec

#: Longest line read; a trace line is a few dozen bytes.
MAX_LINE = 64 * 1024


class TraceRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One request of a trace."""

    t: float
    """Arrival, seconds since the start of the trace."""
    model: str
    """The name the client sent: a model ID or an alias."""
    service: float
    """Seconds the upstream took once the request was granted."""
    stream: bool = False


class TraceError(Exception):
    """A trace that cannot be read: `file:line: reason`."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        self.file, self.line, self.reason = file, line, reason
        super().__init__(f"{file}:{line}: {reason}" if line else f"{file}: {reason}")


class _Line(msgspec.Struct, frozen=True, kw_only=True):
    """A line as written: `service` may be null (not known), replayed as 0 s."""

    t: float
    model: str
    service: float | None
    stream: bool = False


_decoder = msgspec.json.Decoder(_Line)
_encoder = msgspec.json.Encoder()


def parse_line(text: bytes | str, *, file: str = "<trace>", line: int = 1) -> TraceRequest:
    """One trace line, checked: finite non-negative `t` and `service`, a non-empty model."""
    try:
        raw = _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise TraceError(file, line, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise TraceError(file, line, f"not a JSON object: {exc}") from None
    req = TraceRequest(t=raw.t, model=raw.model, service=raw.service or 0.0, stream=raw.stream)
    for key, value in (("t", req.t), ("service", req.service)):
        if not math.isfinite(value) or value < 0:
            raise TraceError(file, line, f"`{key}` must be a finite number >= 0, got {value}")
    if not req.model:
        raise TraceError(file, line, "`model` must not be empty")
    return req


def parse_lines(lines: Iterable[bytes | str], *, file: str = "<trace>") -> Iterator[TraceRequest]:
    """Requests of a trace's lines (blank lines skipped)."""
    for number, text in enumerate(lines, start=1):
        if len(text) > MAX_LINE:
            raise TraceError(file, number, f"line longer than {MAX_LINE} bytes")
        if not text.strip():
            continue
        yield parse_line(text, file=file, line=number)


def read_trace(path: str | Path) -> list[TraceRequest]:
    """Every request of the trace file at `path`, sorted by arrival (stable)."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            requests = list(parse_lines(_bounded_lines(f, name), file=name))
    except OSError as exc:
        raise TraceError(name, 0, f"cannot read: {exc.strerror or exc}") from None
    requests.sort(key=lambda r: r.t)
    return requests


def _bounded_lines(f: IO[bytes], name: str) -> Iterator[bytes]:
    number = 0
    while True:
        line = f.readline(MAX_LINE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE:
            raise TraceError(name, number, f"line longer than {MAX_LINE} bytes")
        yield line


def encode_line(req: TraceRequest) -> bytes:
    """One trace line, newline included."""
    return _encoder.encode(req) + b"\n"


def write_trace(path: str | Path, requests: Iterable[TraceRequest]) -> None:
    with open(path, "wb") as f:
        for req in requests:
            f.write(encode_line(req))
