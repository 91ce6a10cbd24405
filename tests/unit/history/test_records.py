"""Records: the `--json` keys, nulls for what is unknown, and lossless rows and JSON."""

from __future__ import annotations

import signal

import msgspec
import pytest
from hypothesis import given

from swapd.history.records import (
    ExitRecord,
    HistoryRecord,
    ReloadRecord,
    RequestRecord,
    SwapRecord,
    exit_fields,
)
from swapd.history.rows import HISTORY_TABLES, TABLE_OF
from tests.unit.history.strategies import any_records, history_records, requests

#: The keys `swapctl activity --json` promises for each request, in this order.
ACTIVITY_KEYS = [
    "id",
    "start",
    "client",
    "requested",
    "model",
    "route",
    "stream",
    "outcome",
    "status",
    "queued_s",
    "load_wait_s",
    "ttfb_s",
    "duration_s",
    "prompt_tokens",
    "completion_tokens",
    "tokens_per_s",
]


def minimal_request() -> RequestRecord:
    return RequestRecord(
        id=7,
        start=1_700_000_000.25,
        client=None,
        requested="chat",
        model=None,
        route="/v1/chat/completions",
        stream=False,
        outcome="failed",
        status=None,
    )


def test_request_json_has_the_promised_keys_first_and_nulls_for_unknowns() -> None:
    decoded = msgspec.json.decode(msgspec.json.encode(minimal_request()))
    assert list(decoded)[: len(ACTIVITY_KEYS)] == ACTIVITY_KEYS
    assert decoded["start"] == 1_700_000_000.25
    for key in (
        "client",
        "model",
        "status",
        "queued_s",
        "load_wait_s",
        "ttfb_s",
        "duration_s",
        "prompt_tokens",
        "completion_tokens",
        "tokens_per_s",
    ):
        assert decoded[key] is None, key
    assert decoded["peer"] is None and decoded["reason"] is None and decoded["swap_id"] is None


@given(requests)
def test_request_json_round_trips(record: RequestRecord) -> None:
    assert msgspec.json.decode(msgspec.json.encode(record), type=RequestRecord) == record


@given(history_records)
def test_history_records_decode_back_into_their_own_type(record: HistoryRecord) -> None:
    raw = msgspec.json.encode(record)
    assert msgspec.json.decode(raw)["kind"] in HISTORY_TABLES
    assert msgspec.json.decode(raw, type=HistoryRecord) == record


@given(any_records)
def test_every_field_survives_a_row(record: RequestRecord | HistoryRecord) -> None:
    table = TABLE_OF[type(record)]
    row = table.to_row(record)
    assert len(row) == len(table.columns)
    # Only what SQLite stores natively.
    assert all(v is None or isinstance(v, int | float | str) for v in row)
    assert table.from_row(row) == record


def test_columns_follow_fields_with_set_renamed() -> None:
    swaps = TABLE_OF[SwapRecord]
    assert "set_name" in swaps.columns and "set" not in swaps.columns
    assert swaps.insert_sql.startswith("INSERT INTO swaps (swap_id, start, target, evicted,")
    assert TABLE_OF[RequestRecord].columns == RequestRecord.__struct_fields__
    assert TABLE_OF[ExitRecord].time_column == "time" == TABLE_OF[ReloadRecord].time_column


@pytest.mark.parametrize(
    ("code", "fields"),
    [
        (0, (0, None)),
        (3, (3, None)),
        (-signal.SIGKILL, (None, "SIGKILL")),
        (-signal.SIGILL, (None, "SIGILL")),
        (-77, (None, "signal 77")),
    ],
)
def test_exit_fields(code: int, fields: tuple[int | None, str | None]) -> None:
    assert exit_fields(code) == fields
