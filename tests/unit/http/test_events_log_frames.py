"""`/api/events` log frames: one per bus event, a batch's lines each prefixed with its model."""

from __future__ import annotations

import json

from swapd.http.events_route import encode_event
from swapd.process.events import LogBatch, LogLine


def payload(frame: bytes) -> dict[str, object]:
    (data,) = [line for line in frame.decode().splitlines() if line.startswith("data:")]
    return json.loads(data[len("data:") :])


def test_batch_lines_are_prefixed_one_by_one() -> None:
    frame = encode_event(None, LogBatch("llama", "stdout", ("a", "b"), 1.0))  # type: ignore[arg-type]
    assert frame is not None
    envelope = payload(frame)
    assert envelope["type"] == "logData"
    data = envelope["data"]
    data = json.loads(data) if isinstance(data, str) else data
    assert data == {"source": "upstream", "data": "[llama] a\n[llama] b\n"}


def test_proxy_lines_have_no_prefix() -> None:
    frame = encode_event(None, LogLine("proxy", "swapd", "hello", 1.0))  # type: ignore[arg-type]
    assert frame is not None
    data = payload(frame)["data"]
    data = json.loads(data) if isinstance(data, str) else data
    assert data == {"source": "proxy", "data": "hello\n"}
