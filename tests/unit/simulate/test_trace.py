"""The trace format: what is read, what is refused (with file:line), what is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.simulate.trace import (
    MAX_LINE,
    TraceError,
    TraceRequest,
    encode_line,
    parse_line,
    read_trace,
    write_trace,
)


def test_a_line_is_read_and_extra_keys_are_ignored() -> None:
    line = '{"t": 1.5, "model": "gpt-4", "service": 2, "stream": true, "note": "x"}'
    assert parse_line(line) == TraceRequest(t=1.5, model="gpt-4", service=2.0, stream=True)
    assert parse_line('{"t": 0, "model": "a", "service": 0}').stream is False


def test_a_service_time_not_known_is_replayed_as_zero() -> None:
    line = '{"t": 3, "model": "a", "service": null, "stream": false}'
    assert parse_line(line) == TraceRequest(t=3.0, model="a", service=0.0)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "not a JSON object"),
        ("[1, 2]", "Expected `object`"),
        ('{"model": "a", "service": 1}', "missing required field `t`"),
        ('{"t": 1, "service": 1}', "missing required field `model`"),
        ('{"t": 1, "model": "a"}', "missing required field `service`"),
        ('{"t": "1", "model": "a", "service": 1}', "Expected `float`, got `str` - at `$.t`"),
        ('{"t": -1, "model": "a", "service": 1}', "`t` must be a finite number >= 0"),
        ('{"t": 1, "model": "a", "service": -0.5}', "`service` must be a finite number >= 0"),
        ('{"t": 1e999, "model": "a", "service": 1}', "Number out of range - at `$.t`"),
        ('{"t": 1, "model": "", "service": 1}', "`model` must not be empty"),
        ('{"t": 1, "model": "a", "service": 1, "stream": "yes"}', "at `$.stream`"),
    ],
)
def test_a_bad_line_names_file_line_and_reason(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"t": 0, "model": "a", "service": 1}\n\n' + line + "\n")
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert reason in str(caught.value)
    assert caught.value.line == 3


def test_an_overlong_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"t": 0, "model": "' + b"a" * MAX_LINE + b'", "service": 1}\n')
    with pytest.raises(TraceError, match=r":1: line longer than"):
        read_trace(path)


def test_a_missing_file_is_an_error_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"nothere.jsonl: cannot read"):
        read_trace(tmp_path / "nothere.jsonl")


def test_requests_come_back_sorted_by_arrival_stably(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"t": 2, "model": "b", "service": 1}\n'
        '{"t": 1, "model": "a", "service": 1}\n'
        '{"t": 2, "model": "c", "service": 1}\n'
    )
    assert [r.model for r in read_trace(path)] == ["a", "b", "c"]


requests = st.builds(
    TraceRequest,
    t=st.floats(0, 1e6, allow_nan=False),
    model=st.text(min_size=1, max_size=20),
    service=st.floats(0, 1e4, allow_nan=False),
    stream=st.booleans(),
)


@given(st.lists(requests, max_size=20))
def test_what_is_written_reads_back(items: list[TraceRequest]) -> None:
    for item in items:
        assert parse_line(encode_line(item)) == item


def test_write_then_read(tmp_path: Path) -> None:
    items = [TraceRequest(t=0.25 * i, model=f"m{i % 3}", service=1.0) for i in range(10)]
    write_trace(tmp_path / "t.jsonl", items)
    assert read_trace(tmp_path / "t.jsonl") == items
