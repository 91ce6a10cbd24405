"""What the relay learns about one request as it goes, and the record it becomes.

A `RequestContext` is made when a request arrives and filled in by each
step of the relay: the name asked for and the model (or peer) chosen, the
router's grant (the load it waited for), the response head and every body
chunk (token figures are read by a `UsageParser` fed as the body streams,
so nothing is buffered), and how it ended. `record()` then gives the
`RequestRecord` the history keeps, and `usage_counts()` what the metrics
count. With `captureBuffer`, the bodies are collected (bounded) for a
`Capture`.

Times: `start` is the wall clock (the record's), every other instant is
`time.perf_counter()` so durations do not jump with the wall clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import trio

from swapd.history.capture import BodyCollector, Capture, capture_headers, capture_parts
from swapd.history.records import Outcome, RequestRecord
from swapd.history.usage import Usage, UsageParser, generation_rate
from swapd.http.inflight import InFlightRequest
from swapd.http.timeline import Timeline
from swapd.http.upstream import Headers
from swapd.router.errors import RequestAborted, RouterError

NO_USAGE = Usage()


class CutShort:
    """The router's `on_cut`: an unload cut this granted request short.

    Called from the run loop, so it only notes the reason and cancels the
    handler's scope; the handler then ends its response with the error.
    """

    __slots__ = ("_scope", "reason")

    def __init__(self, scope: trio.CancelScope) -> None:
        self._scope = scope
        self.reason: str | None = None

    def __call__(self, reason: str) -> None:
        self.reason = reason
        self._scope.cancel()


@dataclass(slots=True)
class CaptureDraft:
    """A capture being collected: the request's side at once, the response's as it streams."""

    path: str
    req_headers: dict[str, str]
    req_body: bytes | None
    keep_response: bool
    max_body: int
    resp_headers: dict[str, str] | None = None
    collector: BodyCollector | None = None
    truncated: bool = False

    def capture(self, request_id: int) -> Capture:
        collector = self.collector
        return Capture(
            id=request_id,
            req_path=self.path,
            req_headers=self.req_headers,
            req_body=self.req_body,
            resp_headers=self.resp_headers,
            resp_body=collector.body() if collector is not None else None,
            truncated=self.truncated or (collector is not None and collector.truncated),
        )


@dataclass(slots=True)
class RequestContext:
    """One request from arrival to its last byte (see the module docstring)."""

    id: int
    route: str
    client: str | None
    timeline: Timeline = field(default_factory=Timeline)
    start: float = field(default_factory=time.time)
    requested: str | None = None
    """The model name as the client sent it."""
    model: str | None = None
    """The model that serves it: a local model ID, or the model asked of `peer`."""
    display: str = ""
    """Its name in metrics and the in-flight list (`peer/model` for a peer)."""
    peer: str | None = None
    stream: bool = False
    status: int | None = None
    """The status sent to the client (the response head's, or the error's)."""
    reason: str | None = None
    """Why it failed or was cut short."""
    aborted: bool = False
    """swapd cut it short (an unload, a shutdown)."""
    errored: bool = False
    """An error was the answer, or ended a stream already begun."""
    cut: CutShort | None = None
    tracked: InFlightRequest | None = None
    lease_at: float = 0.0
    granted_at: float = 0.0
    swap_id: int | None = None
    load_wait_s: float | None = None
    first_byte_at: float = 0.0
    ended_at: float = 0.0
    upstream_bytes: int = 0
    upstream_truncated: bool = False
    parser: UsageParser | None = None
    draft: CaptureDraft | None = None

    # ----- the relay's steps ------------------------------------------------

    def leasing(self) -> None:
        """The router is asked for a grant now."""
        self.lease_at = time.perf_counter()

    def granted(self, swap_id: int | None, load_wait_s: float | None) -> None:
        self.granted_at = time.perf_counter()
        self.swap_id = swap_id
        self.load_wait_s = load_wait_s

    def refused(self, error: RouterError) -> None:
        """The router failed the request (after the load it waited for, if any)."""
        self.aborted = isinstance(error, RequestAborted)
        self.swap_id = error.swap_id
        self.load_wait_s = error.load_wait_s

    def response_head(self, status: int, headers: Headers, event_stream: bool) -> None:
        """The upstream's response head: read its body for tokens, capture its headers."""
        self.status = status
        self.parser = UsageParser(event_stream)
        draft = self.draft
        if draft is not None and draft.keep_response:
            draft.resp_headers = capture_headers(headers)
            draft.collector = BodyCollector(draft.max_body)

    def chunk(self, data: bytes) -> None:
        """A piece of the upstream's body, as it is sent on to the client."""
        if not self.first_byte_at and data:
            self.first_byte_at = time.perf_counter()
        parser = self.parser
        if parser is not None:
            parser.feed(data)
        draft = self.draft
        if draft is not None and draft.collector is not None:
            draft.collector.feed(data)

    def failed(self, status: int, reason: str) -> None:
        """An error ended the response (sent by the relay itself)."""
        self.errored = True
        self.status = status
        self.reason = reason

    def upstream_ended(self, total: int, truncated: bool) -> None:
        self.upstream_bytes = total
        self.upstream_truncated = truncated

    # ----- the end ----------------------------------------------------------

    def usage(self) -> Usage:
        parser = self.parser
        return parser.result() if parser is not None else NO_USAGE

    def seconds(self) -> float:
        """From arrival to the end (to now while it runs)."""
        return (self.ended_at or time.perf_counter()) - self.timeline.started

    def outcome(self, finished: bool, failed: bool) -> Outcome:
        """How it ended: `finished` when the response went out whole, `failed` when an
        error was the answer (or ended the stream)."""
        if self.aborted:
            return "aborted"
        if failed or self.errored or self.upstream_truncated:
            return "failed"
        return "done" if finished else "client_gone"

    def record(self, usage: Usage, outcome: Outcome) -> RequestRecord:
        started = self.timeline.started
        duration = self.seconds()
        ttfb = self.first_byte_at - started if self.first_byte_at else None
        queued = None
        if self.granted_at and self.lease_at:
            queued = max(0.0, self.granted_at - self.lease_at - (self.load_wait_s or 0.0))
        reason = self.reason
        if reason is None and self.upstream_truncated:
            reason = f"upstream ended the response early (after {self.upstream_bytes} bytes)"
        return RequestRecord(
            id=self.id,
            start=self.start,
            client=self.client,
            requested=self.requested,
            model=self.model,
            route=self.route,
            stream=self.stream,
            outcome=outcome,
            status=self.status,
            queued_s=queued,
            load_wait_s=self.load_wait_s,
            ttfb_s=ttfb,
            duration_s=duration,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            tokens_per_s=generation_rate(
                usage, stream=self.stream, ttfb_s=ttfb, duration_s=duration
            ),
            peer=self.peer,
            reason=reason,
            swap_id=self.swap_id,
        )


def capture_draft(path: str, headers: Headers, body: bytes, max_body: int) -> CaptureDraft:
    """The request's side of a capture of `path` (which bodies are kept follows the route)."""
    keep_request, keep_response = capture_parts(path)
    kept: bytes | None = None
    truncated = False
    if keep_request:
        kept = body[:max_body]
        truncated = len(body) > max_body
    return CaptureDraft(
        path=path,
        req_headers=capture_headers(headers),
        req_body=kept,
        keep_response=keep_response,
        max_body=max_body,
        truncated=truncated,
    )
