"""Log rings, lossy live subscribers and line splitting; no processes involved."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from swapd.events import EventBus
from swapd.process.events import LogBatch
from swapd.process.logs import LINE_OVERHEAD, LineSplitter, LogRing, drain


def test_ring_keeps_the_newest_lines_within_its_bound() -> None:
    ring = LogRing("m", max_bytes=10 * (LINE_OVERHEAD + 2))
    for i in range(100):
        ring.write("stdout", f"{i:02d}")
    assert [line.text for line in ring.lines()] == [f"{i:02d}" for i in range(90, 100)]
    assert ring.size_bytes <= ring.max_bytes
    assert ring.total_lines == 100
    assert [line.text for line in ring.lines(2)] == ["98", "99"]
    assert ring.lines(0) == []


def test_one_huge_line_is_kept_alone() -> None:
    ring = LogRing("m", max_bytes=100)
    ring.write("stdout", "x" * 1000)
    assert len(ring) == 1


def test_tail_picks_output_streams_only() -> None:
    ring = LogRing("m")
    ring.write("stdout", "a")
    ring.write("swapd", "sent SIGTERM")
    ring.write("stderr", "b")
    assert ring.tail(5) == ["a", "b"]
    assert ring.tail(1) == ["b"]


def test_lines_are_published_on_the_bus() -> None:
    bus = EventBus()
    sub = bus.subscribe(topics=["log"])
    LogRing("m", bus=bus).write("stderr", "hello", at=1.5)
    event = sub.receive_nowait()
    assert (event.source, event.stream, event.text, event.time) == ("m", "stderr", "hello", 1.5)


def test_slow_subscriber_gets_a_dropped_marker_and_never_blocks_the_writer() -> None:
    ring = LogRing("m")
    slow = ring.subscribe(maxlen=3)
    fast = ring.subscribe(maxlen=1000)
    for i in range(10):
        ring.write("stdout", str(i))  # never waits, however far behind `slow` is
    got = [slow.receive_nowait().text for _ in range(4)]
    assert got == ["0", "1", "2", "— 7 lines dropped —"]
    with pytest.raises(trio.WouldBlock):
        slow.receive_nowait()
    ring.write("stdout", "10")
    assert slow.receive_nowait().text == "10"
    assert [fast.receive_nowait().text for _ in range(10)] == [str(i) for i in range(10)]
    assert len(ring) == 11  # the ring kept everything


def test_marker_comes_before_the_next_line_when_room_returns() -> None:
    ring = LogRing("m")
    sub = ring.subscribe(maxlen=2)
    for i in range(5):
        ring.write("stdout", str(i))
    assert sub.receive_nowait().text == "0"
    ring.write("stdout", "5")  # room for one line: the marker goes first
    assert [sub.receive_nowait().text for _ in range(3)] == ["1", "— 3 lines dropped —", "5"]


@given(st.lists(st.integers(0, 3), max_size=200), st.integers(1, 8))
def test_subscriber_accounts_for_every_line(script: list[int], maxlen: int) -> None:
    """Lines received plus lines reported dropped equals lines written, in order."""
    ring = LogRing("m")
    sub = ring.subscribe(maxlen=maxlen)
    written, received, dropped = 0, [], 0

    def take(n: int) -> None:
        nonlocal dropped
        for _ in range(n):
            try:
                line = sub.receive_nowait()
            except trio.WouldBlock:
                return
            if line.stream == "dropped":
                dropped += int(line.text.split()[1])
            else:
                received.append(int(line.text))

    for step in script:
        if step == 0:
            take(maxlen)
        else:
            for _ in range(step):
                ring.write("stdout", str(written))
                written += 1
    take(10**6)
    assert len(received) + dropped == written
    assert received == sorted(received)


@pytest.mark.trio
async def test_subscriber_wakes_on_write_and_history_comes_first() -> None:
    ring = LogRing("m")
    ring.write("stdout", "old")
    with ring.subscribe(history=True) as sub:
        assert (await sub.receive()).text == "old"

        async def write_later() -> None:
            await trio.lowlevel.checkpoint()
            ring.write("stdout", "new")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_later)
            assert (await sub.receive()).text == "new"
    with pytest.raises(trio.EndOfChannel):
        await sub.receive()


def test_splitter_joins_partial_lines_and_bounds_them() -> None:
    splitter = LineSplitter(max_line=8)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\r\nde\nf") == ["abc", "de"]
    assert splitter.feed(b"0123456789") == ["f0123456"]
    assert splitter.flush() == ["789"]
    assert splitter.flush() == []
    assert LineSplitter().feed(b"\xff\xfe ok\n") == ["\ufffd\ufffd ok"]


@given(st.lists(st.text(alphabet="ab\n", max_size=40).map(str.encode), max_size=30))
def test_splitter_loses_no_bytes(chunks: list[bytes]) -> None:
    splitter = LineSplitter(max_line=16)
    out: list[str] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    out.extend(splitter.flush())
    assert "".join(out) == b"".join(chunks).decode().replace("\n", "")
    assert all(len(piece) <= 16 for piece in out)


@pytest.mark.trio
async def test_drain_copies_a_stream_into_the_ring() -> None:
    send, receive = trio.testing.memory_stream_pair()
    ring = LogRing("m")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, receive, ring, "stderr")
        await send.send_all(b"one\ntw")
        await send.send_all(b"o\nunterminated")
        await send.aclose()
    assert [(line.stream, line.text) for line in ring] == [
        ("stderr", "one"),
        ("stderr", "two"),
        ("stderr", "unterminated"),
    ]


def test_a_batch_is_one_bus_event_and_one_ring_line_per_text() -> None:
    bus = EventBus()
    sub = bus.subscribe(topics=["log"])
    ring = LogRing("m", bus=bus)
    feed = ring.subscribe()
    ring.write_batch("stdout", ["one", "two", "three"])
    ring.write_batch("stdout", [])  # nothing read: nothing published
    assert [line.text for line in ring.lines()] == ["one", "two", "three"]
    assert [feed.receive_nowait().text for _ in range(3)] == ["one", "two", "three"]
    batch = sub.receive_nowait()
    assert isinstance(batch, LogBatch)
    assert (batch.source, batch.stream, batch.texts) == ("m", "stdout", ("one", "two", "three"))
    assert [line.text for line in batch.lines()] == ["one", "two", "three"]
    with pytest.raises(trio.WouldBlock):
        sub.receive_nowait()
