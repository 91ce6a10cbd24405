"""Token counts and speed from a response as it is relayed, without buffering it.

Servers put these figures at the ends of a response: OpenAI's `usage` comes
last in a JSON answer and in the last event of a stream (before `[DONE]`),
llama-server adds `timings` (`prompt_n`, `predicted_n`, `predicted_per_second`,
`cache_n`) in the same places, Anthropic streams give the input tokens in
their first event (`message.usage`) and the output tokens in a late one. So
the parser keeps only the first `head_bytes` and the last `tail_bytes` of the
body as it is fed, whatever the chunking, and reads them once at the end:

- an event stream: every `data:` line in those two pieces that holds JSON is
  read (lines cut by either edge are skipped); `usage`, `response.usage` and
  `message.usage` give the counts, a later non-zero count replacing an earlier
  one, and the last `timings` object wins;
- a JSON body that fits in the tail is decoded whole (a list, such as
  `/infill`'s, is read element by element);
- otherwise, or when that found nothing, the figures are read from the raw
  bytes: the last `"prompt_tokens"`/`"input_tokens"`/`"tokens_evaluated"` and
  `"completion_tokens"`/`"output_tokens"`/`"tokens_predicted"` numbers, as
  `/metrics` always did, and the timings keys likewise.

Counts come from `usage` when it has them, else from `timings` (prompt =
`prompt_n` + `cache_n`, the evaluated and the cached prompt tokens); the
speed comes from `timings` only, since only the server knows how long
generation took. The state is two bounded byte buffers: feeding costs an
append, and any split of the same body into chunks gives the same result.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

TAIL_BYTES = 16 * 1024
HEAD_BYTES = 4 * 1024

# A JSON payload worth decoding mentions one of these; token deltas never do.
_MARKERS = (b"usage", b"timings", b"tokens")

_NUMBER = rb"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_RAW_INPUT = re.compile(rb'"(?:prompt_tokens|input_tokens|tokens_evaluated)"\s*:\s*(\d+)')
_RAW_OUTPUT = re.compile(rb'"(?:completion_tokens|output_tokens|tokens_predicted)"\s*:\s*(\d+)')
_RAW_TIMINGS = {
    key: re.compile(rb'"' + key.encode() + rb'"\s*:\s*' + _NUMBER)
    for key in ("prompt_n", "predicted_n", "cache_n", "predicted_per_second", "prompt_per_second")
}


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """What a response said about its tokens; None where it said nothing."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    """Prompt tokens served from the server's cache (part of `prompt_tokens`)."""
    tokens_per_s: float | None = None
    """Generation speed as the server measured it (llama-server's `predicted_per_second`)."""
    prompt_per_s: float | None = None
    """Prompt processing speed as the server measured it (`prompt_per_second`)."""


class _Found:
    """Figures gathered while reading, before `usage` and `timings` are merged."""

    __slots__ = ("cached", "inputs", "outputs", "timings")

    def __init__(self) -> None:
        self.inputs: int | None = None
        self.outputs: int | None = None
        self.cached: int | None = None
        self.timings: dict[str, Any] | None = None

    def empty(self) -> bool:
        return self.inputs is None and self.outputs is None and self.timings is None

    def counts(self, inputs: Any, outputs: Any, cached: Any = None) -> None:
        # A later count replaces an earlier one unless it is zero (Anthropic's
        # first event says 1 output token; its last one says how many).
        if _is_int(inputs) and (self.inputs is None or inputs > 0):
            self.inputs = inputs
        if _is_int(outputs) and (self.outputs is None or outputs > 0):
            self.outputs = outputs
        if _is_int(cached) and cached >= 0:
            self.cached = cached

    def read_object(self, obj: dict[str, Any]) -> None:
        """Absorb one decoded JSON object (a whole answer or one stream event)."""
        for usage in (obj.get("usage"), _sub(obj, "response"), _sub(obj, "message")):
            if isinstance(usage, dict):
                self.counts(
                    _first(usage, "prompt_tokens", "input_tokens"),
                    _first(usage, "completion_tokens", "output_tokens"),
                    _cached(usage),
                )
        # llama-server's own /completion answer keeps its counts at the top level.
        self.counts(obj.get("tokens_evaluated"), obj.get("tokens_predicted"))
        timings = obj.get("timings")
        if isinstance(timings, dict):
            self.timings = timings

    def usage(self) -> Usage:
        t = self.timings or {}
        prompt_n, cache_n = t.get("prompt_n"), t.get("cache_n")
        inputs = self.inputs
        if inputs is None and _is_int(prompt_n):
            inputs = prompt_n + (cache_n if _is_int(cache_n) and cache_n > 0 else 0)
        outputs = self.outputs
        if outputs is None and _is_int(t.get("predicted_n")):
            outputs = t["predicted_n"]
        cached = self.cached
        if cached is None and _is_int(cache_n) and cache_n >= 0:
            cached = cache_n
        return Usage(
            prompt_tokens=inputs,
            completion_tokens=outputs,
            cached_tokens=cached,
            tokens_per_s=_rate(t.get("predicted_per_second")),
            prompt_per_s=_rate(t.get("prompt_per_second")),
        )


class UsageParser:
    """Fed a response body chunk by chunk; `result()` reads the figures at the end.

    `event_stream`: the response is `text/event-stream` (else JSON or opaque).
    Memory is bounded by `head_bytes + 2 * tail_bytes` whatever the body's size.
    """

    __slots__ = ("_event_stream", "_head", "_head_bytes", "_tail", "_tail_bytes", "_total")

    def __init__(
        self, event_stream: bool, *, tail_bytes: int = TAIL_BYTES, head_bytes: int = HEAD_BYTES
    ) -> None:
        self._event_stream = event_stream
        self._tail_bytes = tail_bytes
        self._head_bytes = head_bytes
        self._head = b""
        self._tail = bytearray()
        self._total = 0

    @property
    def total(self) -> int:
        """Bytes fed so far."""
        return self._total

    @property
    def held(self) -> int:
        """Bytes kept in memory now (at most `head_bytes + 2 * tail_bytes`)."""
        return len(self._head) + len(self._tail)

    def feed(self, chunk: bytes) -> None:
        total = self._total
        if total < self._head_bytes:
            self._head += chunk[: self._head_bytes - total]
        self._total = total + len(chunk)
        tail = self._tail
        tail += chunk
        if len(tail) > 2 * self._tail_bytes:  # trimmed now and then, not per chunk
            del tail[: len(tail) - self._tail_bytes]

    def result(self) -> Usage:
        """The figures of everything fed so far (may be called more than once)."""
        tail = bytes(self._tail[-self._tail_bytes :])
        whole = self._total <= self._tail_bytes  # the tail is the entire body
        found = _Found()
        if self._event_stream:
            if whole:
                _read_events(tail, found, first_cut=False, last_cut=False)
            else:
                _read_events(self._head, found, first_cut=False, last_cut=True)
                _read_events(tail, found, first_cut=True, last_cut=False)
        elif whole:
            _read_json(tail, found)
        if found.empty():
            _read_raw(tail, found)
            if not whole:
                _fill_from(found, self._head)
        return found.usage()


def parse_usage(data: bytes, *, event_stream: bool = False) -> Usage:
    """The figures of a whole body (a convenience over `UsageParser`)."""
    parser = UsageParser(event_stream)
    parser.feed(data)
    return parser.result()


def generation_rate(
    usage: Usage, *, stream: bool, ttfb_s: float | None, duration_s: float | None
) -> float | None:
    """Tokens per second of generation: the server's own figure, else, for a stream,
    completion tokens over the time from its first byte to its last; else None
    (a plain answer arrives whole, so its generation time is unknown)."""
    if usage.tokens_per_s is not None:
        return usage.tokens_per_s
    if not stream or not usage.completion_tokens or ttfb_s is None or duration_s is None:
        return None
    span = duration_s - ttfb_s
    return usage.completion_tokens / span if span > 0 else None


def _read_events(data: bytes, found: _Found, *, first_cut: bool, last_cut: bool) -> None:
    lines = data.split(b"\n")
    if first_cut:
        lines = lines[1:]
    if last_cut and lines:
        lines = lines[:-1]
    for line in lines:
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not any(marker in payload for marker in _MARKERS):
            continue
        obj = _decode(payload)
        if isinstance(obj, dict):
            found.read_object(obj)


def _read_json(data: bytes, found: _Found) -> None:
    obj = _decode(data)
    if isinstance(obj, dict):
        found.read_object(obj)
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                found.read_object(item)


def _read_raw(data: bytes, found: _Found) -> None:
    inputs = _RAW_INPUT.findall(data)
    outputs = _RAW_OUTPUT.findall(data)
    found.counts(
        int(inputs[-1]) if inputs else None,
        int(outputs[-1]) if outputs else None,
    )
    timings: dict[str, Any] = {}
    for key, pattern in _RAW_TIMINGS.items():
        values = pattern.findall(data)
        if values:
            number = float(values[-1])
            timings[key] = int(number) if key.endswith("_n") else number
    if timings:
        found.timings = timings


def _fill_from(found: _Found, head: bytes) -> None:
    """Counts the tail lacked, from the head (an Anthropic stream's input tokens)."""
    if found.inputs is None or found.outputs is None:
        early = _Found()
        _read_raw(head, early)
        if found.inputs is None:
            found.inputs = early.inputs
        if found.outputs is None:
            found.outputs = early.outputs


def _decode(payload: bytes) -> Any:
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None


def _sub(obj: dict[str, Any], key: str) -> Any:
    inner = obj.get(key)
    return inner.get("usage") if isinstance(inner, dict) else None


def _first(usage: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = usage.get(key)
        if value is not None:
            return value
    return None


def _cached(usage: dict[str, Any]) -> Any:
    value = usage.get("cache_read_input_tokens")
    if value is not None:
        return value
    for details in ("input_tokens_details", "prompt_tokens_details"):
        inner = usage.get(details)
        if isinstance(inner, dict) and inner.get("cached_tokens") is not None:
            return inner["cached_tokens"]
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rate(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
