"""The daemon's records as protocol payloads: every kind, and the fallbacks."""

from __future__ import annotations

import time
from typing import ClassVar

import msgspec
import trio

from swapctl import codec
from swapctl import protocol as p
from swapd.control import convert
from swapd.process.events import LogLine, StateChanged
from swapd.process.states import TRANSITIONS, ProcessState
from swapd.router import events as rev
from swapd.router.explain import Explanation


def test_legend_is_the_transition_table() -> None:
    legend = {entry.name: entry for entry in convert.legend()}
    assert list(legend) == [str(s) for s in ProcessState]
    for (source, _trigger), target in TRANSITIONS.items():
        if source is not target:
            assert str(target) in legend[str(source)].next
    assert all(entry.description for entry in legend.values())
    assert "stopped" not in legend["stopped"].next  # self-loops are not "next"


def test_process_events() -> None:
    state = StateChanged("a", ProcessState.STOPPED, ProcessState.STARTING, 5.0, "requested")
    assert convert.event(state) == p.StateChanged(
        time=5.0, model="a", old="stopped", new="starting", reason="requested"
    )
    line = LogLine("a", "stderr", "loading model", 6.0)
    assert convert.event(line) == p.LogLines(
        time=6.0, source="a", text="loading model\n", stream="stderr"
    )
    assert convert.log_line(line, history=True).history


def test_router_records() -> None:
    d = rev.Decision(
        seq=3,
        time=1.0,
        input="request",
        action="swap",
        model="b",
        request_id=9,
        swap_id=2,
        evict=("a",),
        set="s",
        cost=4,
        queue_length=1,
        reason="collision with a",
    )
    made = convert.event(d)
    assert made == p.DecisionMade(
        time=1.0,
        decision=p.Decision(
            time=1.0,
            model="b",
            action="swap",
            why="collision with a",
            evict=["a"],
            set="s",
            cost=4,
            request="9",
            seq=3,
            input="request",
            swap=2,
            queue_length=1,
        ),
    )
    started = rev.SwapStarted(swap_id=2, target="b", evict=("a",), set="s", cost=4, time=1.5)
    assert convert.event(started) == p.SwapStarted(
        time=1.5, target="b", evict=["a"], set="s", cost=4, swap=2
    )
    error = rev.SwapError(reason="exited", log_tail="boom", exit_code=1)
    finished = rev.SwapFinished(swap_id=2, target="b", ok=False, seconds=0.5, error=error, time=2.0)
    assert convert.event(finished) == p.SwapFinished(
        time=2.0, target="b", ok=False, duration=0.5, error="exited", log_tail="boom", swap=2
    )
    request = rev.RequestEvent(request_id=9, model="b", phase="queued", time=3.0, detail="behind a")
    assert convert.event(request) == p.RequestEvent(
        time=3.0, model="b", phase="queued", request="9", detail="behind a"
    )
    queue = rev.QueueChanged(time=4.0, entries=((1, "a"), (2, "b"), (3, "a")))
    assert convert.event(queue) == p.QueueChanged(
        time=4.0, queued={"a": 2, "b": 1}, order=["a", "b", "a"]
    )


def test_unknown_records_become_other_and_still_encode() -> None:
    preloaded = rev.Preloaded(model="a", ok=False, error="nope")
    other = convert.event(preloaded)
    assert other == p.OtherEvent(
        time=0.0,
        event_topic="preload",
        name="Preloaded",
        fields={"model": "a", "ok": False, "error": "nope"},
    )
    codec.encode(p.Event(subscription=1, topic=other.topic, data=other))

    class Odd(msgspec.Struct):  # every bus event is a Struct naming its topic
        topic: ClassVar[str] = "swap"
        time: float = 7.0

    odd = convert.event(Odd())
    assert isinstance(odd, p.OtherEvent) and odd.name == "Odd" and odd.time == 7.0


def test_protocol_payloads_pass_through() -> None:
    event = p.ConfigReloaded(time=1.0, ok=True, path="c.yaml")
    assert convert.event(event) is event


def test_explanation() -> None:
    x = Explanation(
        model="b",
        verdict="queue",
        reason="a is busy",
        evict=("a",),
        set="s",
        cost=2,
        blocked_by=("a",),
        queue_ahead=2,
        in_flight={"a": 3},
        state="stopped",
    )
    out = convert.explanation(x, asked="bee", running=["a"])
    assert out == p.Explanation(
        model="bee",
        resolved="b",
        action="queue",
        why="a is busy",
        state="stopped",
        evict=["a"],
        set="s",
        cost=2,
        running=["a"],
        queue_position=3,
        in_flight=3,
        blocked_by=["a"],
        busy={"a": 3},
    )
    serve = convert.explanation(
        Explanation(model="a", verdict="serve", reason="ready"), asked="a", running=["a"]
    )
    assert serve.resolved is None and serve.cost is None and serve.queue_position is None


def test_concerns() -> None:
    wanted = frozenset({"a"})
    assert convert.concerns(LogLine("a", "stdout", "x", 0.0), wanted)
    assert not convert.concerns(LogLine("b", "stdout", "x", 0.0), wanted)
    swap = rev.SwapStarted(swap_id=1, target="b", evict=("a",), set=None, cost=1, time=0.0)
    assert convert.concerns(swap, wanted)  # a is evicted by it
    assert convert.concerns(rev.QueueChanged(time=0.0, entries=((1, "a"),)), wanted)
    assert not convert.concerns(rev.QueueChanged(time=0.0, entries=((1, "b"),)), wanted)
    assert convert.concerns(p.ConfigReloaded(time=0.0, ok=True, path="x"), wanted)


def test_the_legend_encodes() -> None:
    assert msgspec.json.encode(convert.legend())


def test_router_clock_stamps_become_unix_time() -> None:
    assert convert.wall_time(1_795_000_000.5) == 1_795_000_000.5  # already Unix time
    assert convert.wall_time(12.0) == 12.0  # outside trio: nothing to map it with

    async def inside() -> None:
        now = trio.current_time()
        stamp = convert.wall_time(now - 2.0)
        assert abs(stamp - (time.time() - 2.0)) < 1.0
        d = rev.Decision(seq=1, time=now, input="request", action="serve", model="a")
        made = convert.event(d)
        assert made.time == made.decision.time and made.time > convert.UNIX_TIME_FLOOR

    trio.run(inside)
