"""Log lines already waiting go out as one event; nothing is lost, reordered or mislabelled."""

from __future__ import annotations

import pytest
import trio

from swapctl import protocol as p
from swapd.control.backend import MERGE_LOG_BYTES, ConvertingSource
from swapd.events import EventBus
from swapd.process.events import LogBatch, LogLine, StateChanged
from swapd.process.states import ProcessState


def line(source: str, text: str, stream: str = "stdout") -> LogLine:
    return LogLine(source, stream, text, 1.0)


async def drain(source: ConvertingSource) -> list[p.EventData]:
    out = []
    while source.pending:
        out.append(await source.receive())
    return out


@pytest.mark.trio
async def test_waiting_lines_of_one_source_and_stream_are_merged_in_order() -> None:
    bus = EventBus()
    source = ConvertingSource(bus.subscribe(maxlen=10_000))
    for i in range(100):
        bus.publish(line("a", f"a{i}"))
    bus.publish(line("b", "b0"))
    bus.publish(line("a", "err", stream="stderr"))
    bus.publish(StateChanged("a", ProcessState.STARTING, ProcessState.READY, 2.0, "healthy"))
    bus.publish(line("a", "a100"))
    events = await drain(source)
    kinds = [(type(e).__name__, getattr(e, "source", ""), getattr(e, "stream", "")) for e in events]
    assert kinds == [
        ("LogLines", "a", "stdout"),
        ("LogLines", "b", "stdout"),
        ("LogLines", "a", "stderr"),
        ("StateChanged", "", ""),
        ("LogLines", "a", "stdout"),
    ]
    assert events[0].text == "".join(f"a{i}\n" for i in range(100))
    assert events[4].text == "a100\n"


@pytest.mark.trio
async def test_a_merge_is_bounded() -> None:
    bus = EventBus()
    source = ConvertingSource(bus.subscribe(maxlen=10_000))
    chunk = "x" * 1000
    count = 3 * MERGE_LOG_BYTES // len(chunk)
    for _ in range(count):
        bus.publish(line("a", chunk))
    events = await drain(source)
    assert len(events) >= 3
    assert all(len(e.text) <= MERGE_LOG_BYTES + len(chunk) + 1 for e in events)
    assert sum(e.text.count("\n") for e in events) == count


@pytest.mark.trio
async def test_lag_is_reported_after_a_held_event_not_before_it() -> None:
    bus = EventBus()
    source = ConvertingSource(bus.subscribe(maxlen=3))
    bus.publish(line("a", "a0"))
    bus.publish(StateChanged("a", ProcessState.STARTING, ProcessState.READY, 2.0, "healthy"))
    first = await source.receive()  # merges nothing, holds the state change
    assert isinstance(first, p.LogLines)
    for i in range(5):  # overflow while the state change is held back
        bus.publish(line("b", f"b{i}"))
    assert source.take_lagged() == 0
    held = await source.receive()
    assert isinstance(held, p.StateChanged)
    assert source.take_lagged() == 2
    with trio.fail_after(1):
        rest = await source.receive()
    assert isinstance(rest, p.LogLines)
    assert rest.text == "b2\nb3\nb4\n"


@pytest.mark.trio
async def test_a_log_batch_becomes_complete_lines_and_merges_with_its_neighbours() -> None:
    bus = EventBus()
    source = ConvertingSource(bus.subscribe(maxlen=100))
    bus.publish(LogBatch("a", "stdout", ("one", "two"), 1.0))
    bus.publish(line("a", "three"))
    (event,) = await drain(source)
    assert isinstance(event, p.LogLines)
    assert (event.source, event.stream, event.text) == ("a", "stdout", "one\ntwo\nthree\n")
