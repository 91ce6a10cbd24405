"""The protocol's history payloads mirror the daemon's records field for field."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapctl import protocol as p
from swapd.control import convert
from swapd.history.capture import Capture
from swapd.history.records import ExitRecord, KvRecord, ReloadRecord, RequestRecord, SwapRecord
from swapd.history.stats import ModelStats, Stats

PAIRS = [
    (RequestRecord, p.RequestRecord),
    (SwapRecord, p.SwapRecord),
    (ExitRecord, p.ExitRecord),
    (ReloadRecord, p.ReloadRecord),
    (KvRecord, p.KvRecord),
    (ModelStats, p.ModelStats),
    (Stats, p.Stats),
    (Capture, p.Capture),
]


@pytest.mark.parametrize(("ours", "wire"), PAIRS)
def test_same_fields_in_the_same_order(ours: type, wire: type) -> None:
    assert ours.__struct_fields__ == wire.__struct_fields__


@given(st.from_type(RequestRecord))
def test_a_request_record_encodes_the_same_on_the_wire(record: RequestRecord) -> None:
    assert msgspec.json.encode(convert.request_record(record)) == msgspec.json.encode(record)


@given(st.one_of(st.from_type(SwapRecord), st.from_type(ExitRecord), st.from_type(ReloadRecord)))
def test_history_records_keep_their_kind(record: SwapRecord | ExitRecord | ReloadRecord) -> None:
    wire = convert.history_record(record)
    assert msgspec.json.encode(wire) == msgspec.json.encode(record)


def test_a_capture_reply_cuts_long_bodies() -> None:
    capture = Capture(id=1, req_path="/v1/x", req_body=b"a" * 10, resp_body=b"b" * 3)
    wire = convert.capture(capture, max_body=4)
    assert (wire.req_body, wire.resp_body, wire.truncated) == (b"aaaa", b"bbb", True)
    assert not convert.capture(capture, max_body=10).truncated
