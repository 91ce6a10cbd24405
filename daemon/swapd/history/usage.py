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
from typing import Any, TypeGuard

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


class _Holder(msgspec.Struct):
    """An object that may hold a `usage`: a Responses API `response`, an Anthropic `message`."""

    usage: Any = None


class _Answer(msgspec.Struct):
    """The keys of an answer or an event that carry figures; msgspec skips the rest unread."""

    usage: Any = None
    timings: Any = None
    tokens_evaluated: Any = None
    tokens_predicted: Any = None
    response: _Holder | None = None
    message: _Holder | None = None


_decode_answers = msgspec.json.Decoder(_Answer | list[_Answer]).decode


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

    def read(self, answer: _Answer) -> None:
        """Absorb one decoded answer (a whole response or one stream event)."""
        response, message = answer.response, answer.message
        for usage in (
            answer.usage,
            None if response is None else response.usage,
            None if message is None else message.usage,
        ):
            if isinstance(usage, dict):
                self.counts(
                    _first(usage, "prompt_tokens", "input_tokens"),
                    _first(usage, "completion_tokens", "output_tokens"),
                    _cached(usage),
                )
        # llama-server's own /completion answer keeps its counts at the top level.
        self.counts(answer.tokens_evaluated, answer.tokens_predicted)
        if isinstance(answer.timings, dict):
            self.timings = answer.timings

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

    __slots__ = (
        "_event_stream", "_head", "_head_bytes", "_tail", "_tail_bytes", "_total", "_trim_at",
    )  # fmt: skip

    def __init__(
        self, event_stream: bool, *, tail_bytes: int = TAIL_BYTES, head_bytes: int = HEAD_BYTES
    ) -> None:
        self._event_stream = event_stream
        self._tail_bytes = tail_bytes
        self._trim_at = 2 * tail_bytes
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
        if len(tail) > self._trim_at:  # trimmed now and then, not per chunk
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
    """The `data:` lines that mention a figure, in order; `first_cut`/`last_cut`: the
    first or last line may be a piece of a longer one, and is skipped."""
    lines: set[tuple[int, int]] = set()
    for marker in _MARKERS:  # found by memchr-speed search, not line by line in Python
        at = data.find(marker)
        while at != -1:
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            if end == -1:
                end = len(data)
            lines.add((start, end))
            at = data.find(marker, end)
    for start, end in sorted(lines):
        if (first_cut and start == 0) or (last_cut and end == len(data)):
            continue
        line = data[start:end].strip()
        if line.startswith(b"data:"):
            for answer in _answers(line[5:].strip()):
                found.read(answer)


def _read_json(data: bytes, found: _Found) -> None:
    for answer in _answers(data):
        found.read(answer)


def _read_raw(data: bytes, found: _Found) -> None:
    if b"tokens" in data:
        inputs = _RAW_INPUT.findall(data)
        outputs = _RAW_OUTPUT.findall(data)
        found.counts(
            int(inputs[-1]) if inputs else None,
            int(outputs[-1]) if outputs else None,
        )
    if b'_n"' not in data and b"per_second" not in data:
        return
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


def _answers(payload: bytes) -> list[_Answer]:
    """The answers in a JSON payload (an object, or a list of them); [] if it is not JSON."""
    try:
        decoded = _decode_answers(payload)
    except msgspec.ValidationError:  # valid JSON of another shape: read it loosely
        return _loose(payload)
    except msgspec.DecodeError:
        return []
    return decoded if isinstance(decoded, list) else [decoded]


def _loose(payload: bytes) -> list[_Answer]:
    try:  # the typed pass may stop at a wrong type before a syntax error further on
        obj = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return []
    items = obj if isinstance(obj, list) else [obj]
    return [
        _Answer(
            usage=item.get("usage"),
            timings=item.get("timings"),
            tokens_evaluated=item.get("tokens_evaluated"),
            tokens_predicted=item.get("tokens_predicted"),
            response=_holder(item.get("response")),
            message=_holder(item.get("message")),
        )
        for item in items
        if isinstance(item, dict)
    ]


def _holder(value: Any) -> _Holder | None:
    return _Holder(usage=value.get("usage")) if isinstance(value, dict) else None


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


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rate(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
