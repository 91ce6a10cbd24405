"""Times on swapctl's command line, the exported trace, and the history tables."""

from __future__ import annotations

import itertools
from datetime import datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapctl import protocol as p
from swapctl import render
from swapctl.trace import BadTime, encode_trace, parse_when, service_seconds, trace_lines

NOW = 1.8e9


@pytest.mark.parametrize(
    ("text", "ago"),
    [("90", 90), ("30s", 30), ("10m", 600), ("1h", 3600), ("2d", 172800), ("1.5h", 5400),
     ("1w", 604800), (" 5m ", 300)],
)  # fmt: skip
def test_durations_ago(text: str, ago: float) -> None:
    assert parse_when(text, NOW) == NOW - ago


def test_dates() -> None:
    assert parse_when("2026-12-07T10:00", NOW) == datetime(2026, 12, 7, 10, 0).timestamp()
    assert parse_when("2026-12-07T10:00+00:00", NOW) == 1796637600.0


@pytest.mark.parametrize("text", ["", "yesterday", "10 minutes", "-5m", "5x"])
def test_what_is_not_a_time(text: str) -> None:
    with pytest.raises(BadTime, match="not a time"):
        parse_when(text, NOW)


def record(request_id: int, start: float, **fields: object) -> p.RequestRecord:
    base: dict[str, object] = {"id": request_id, "start": start, "requested": "gpt"}
    base.update(fields)
    return msgspec.convert(base, p.RequestRecord)


def test_service_is_the_time_after_the_grant() -> None:
    r = record(1, NOW, duration_s=5.0, queued_s=0.5, load_wait_s=3.0)
    assert service_seconds(r) == 1.5
    assert service_seconds(record(1, NOW)) is None
    assert service_seconds(record(1, NOW, duration_s=1.0, load_wait_s=2.0)) == 0.0


def test_the_trace_starts_at_its_first_request_and_skips_nameless_ones() -> None:
    records = [
        record(1, NOW, requested=None, duration_s=1.0),
        record(2, NOW + 1, duration_s=2.0, stream=True),
        record(3, NOW + 3.5, requested="code", duration_s=None),
    ]
    assert b"".join(encode_trace(records)) == (
        b'{"t":0.0,"model":"gpt","service":2.0,"stream":true}\n'
        b'{"t":2.5,"model":"code","service":null,"stream":false}\n'
    )


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=30))
def test_trace_times_are_offsets_from_the_first(starts: list[float]) -> None:
    ordered = sorted(starts)
    lines = list(trace_lines(record(i, NOW + s) for i, s in enumerate(ordered)))
    assert lines[0].t == 0.0 and all(a.t <= b.t for a, b in itertools.pairwise(lines))
    assert lines[-1].t == pytest.approx(ordered[-1] - ordered[0], abs=1e-5)


def test_the_activity_table_shows_unknowns_as_dashes() -> None:
    text = render.activity([record(4, NOW, model="chat", route="/v1/x", status=None)])
    header, row = text.splitlines()
    assert header.split()[:4] == ["TIME", "ID", "MODEL", "ROUTE"]
    assert row.split()[2:6] == ["4", "chat", "(gpt)", "/v1/x"] and row.endswith("done")
    assert row.split()[6:14] == ["-"] * 8  # status, waits, times, tokens: unknown
    assert render.activity([]) == "no requests\n"


def test_a_peer_request_names_its_peer() -> None:
    row = render.activity_row(record(1, NOW, requested="remote/far", model="far", peer="remote"))
    assert row[2] == "remote/far"


def test_stats_table() -> None:
    stats = p.Stats(
        since=NOW, until=NOW + 3600,
        models=[p.ModelStats(model="chat", requests=3, errors=1, ttfb_p50_s=0.25, loads=1)],
    )  # fmt: skip
    lines = render.stats(stats).splitlines()
    assert lines[1].split()[:3] == ["MODEL", "REQUESTS", "ERRORS"]
    assert lines[2].split()[:4] == ["chat", "3", "1", "250ms"]
    assert render.stats(p.Stats(since=NOW, until=NOW)).endswith("no activity\n")
