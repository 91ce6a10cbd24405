"""The request context: what the relay learns becomes the record (no I/O, fixed instants)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.history.usage import Usage
from swapd.http.request_context import RequestContext, capture_draft
from swapd.http.timeline import Timeline

T0 = 1000.0  # perf_counter instant of arrival in these tests


def context() -> RequestContext:
    ctx = RequestContext(7, "/v1/chat/completions", "10.0.0.2", Timeline(started=T0), start=1.8e9)
    ctx.requested, ctx.model, ctx.display = "gpt", "chat", "chat"
    return ctx


def test_a_loaded_request_splits_its_wait_into_queue_and_load() -> None:
    ctx = context()
    ctx.stream = True
    ctx.lease_at, ctx.granted_at = T0 + 0.01, T0 + 3.01
    ctx.swap_id, ctx.load_wait_s = 4, 2.5
    ctx.first_byte_at, ctx.ended_at = T0 + 3.2, T0 + 5.2
    ctx.status = 200
    usage = Usage(prompt_tokens=11, completion_tokens=40)
    record = ctx.record(usage, ctx.outcome(finished=True, failed=False))
    assert record.outcome == "done" and record.status == 200 and record.swap_id == 4
    assert record.queued_s is not None and abs(record.queued_s - 0.5) < 1e-9
    assert record.load_wait_s == 2.5 and record.ttfb_s is not None
    assert record.ttfb_s == pytest.approx(3.2) and record.duration_s == pytest.approx(5.2)
    assert record.tokens_per_s == pytest.approx(20.0)
    assert (record.id, record.start, record.client, record.requested, record.model) == (
        7, 1.8e9, "10.0.0.2", "gpt", "chat",
    )  # fmt: skip


def test_how_a_request_ends() -> None:
    ctx = context()
    assert ctx.outcome(finished=True, failed=False) == "done"
    assert ctx.outcome(finished=False, failed=False) == "client_gone"
    assert ctx.outcome(finished=True, failed=True) == "failed"
    ctx.upstream_ended(120, truncated=True)
    assert ctx.outcome(finished=True, failed=False) == "failed"
    record = ctx.record(Usage(), "failed")
    assert record.reason == "upstream ended the response early (after 120 bytes)"
    ctx.aborted = True
    assert ctx.outcome(finished=True, failed=True) == "aborted"
    errored = context()
    errored.failed(503, "model unloaded")
    assert errored.outcome(finished=True, failed=False) == "failed"
    assert (errored.status, errored.reason) == (503, "model unloaded")


def test_nothing_known_stays_null() -> None:
    ctx = context()
    ctx.ended_at = T0 + 0.002
    record = ctx.record(Usage(), "client_gone")
    assert record.status is None and record.ttfb_s is None and record.queued_s is None
    assert record.prompt_tokens is None and record.tokens_per_s is None


@given(st.lists(st.binary(min_size=1, max_size=64), max_size=20), st.booleans())
def test_chunks_are_read_for_usage_and_captured_whatever_the_chunking(
    chunks: list[bytes], event_stream: bool
) -> None:
    usage = b'{"usage": {"prompt_tokens": 5, "completion_tokens": 9}}'
    body = b"".join(chunks) + usage if not event_stream else b"data: " + usage + b"\n\n"
    ctx = context()
    ctx.draft = capture_draft("/v1/chat/completions", [(b"authorization", b"Bearer k")], b"{}", 32)
    ctx.response_head(200, [(b"content-type", b"application/json")], event_stream)
    for i in range(0, len(body), 7):
        ctx.chunk(body[i : i + 7])
    assert ctx.first_byte_at > 0
    assert msgspec.structs.astuple(ctx.usage())[:2] == (5, 9)
    capture = ctx.draft.capture(ctx.id)
    assert capture.req_headers == {"authorization": "[REDACTED]"}
    assert capture.resp_body == body[:32] and capture.truncated == (len(body) > 32)


def test_a_capture_of_an_upload_keeps_no_request_body() -> None:
    draft = capture_draft("/v1/images/edits", [], b"x" * 10, 100)
    assert draft.req_body is None and not draft.keep_response
