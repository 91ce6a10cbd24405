"""A request's phases and the log line of a slow one (pure, with a fake perf counter)."""

from __future__ import annotations

import pytest

from swapd.http import timeline as tl


def test_phases_add_up_and_the_summary_names_where_it_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(tl.time, "perf_counter", lambda: now[0])
    line = tl.Timeline(started=now[0])
    now[0] += 0.5
    line.enter("queue")
    now[0] += 2.0
    line.enter("upstream head")
    now[0] += 30.0
    assert line.slow(completed=False)
    assert (
        line.summary()
        == "body 0.50 s, queue 2.00 s, upstream head 30.00 s (ended in upstream head)"
    )
    line.enter("response")
    now[0] += 100.0
    assert line.slow(completed=True), "32.5 s to its head"


def test_a_long_stream_that_started_at_once_is_not_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(tl.time, "perf_counter", lambda: now[0])
    line = tl.Timeline(started=now[0])
    now[0] += 0.2
    line.enter("response")
    now[0] += 600.0
    assert not line.slow(completed=True)
    assert line.slow(completed=False), "but one that ended badly after long is"
