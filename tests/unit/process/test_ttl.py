"""The idle clock behind TTL unloads: pure, so checked with plain numbers and hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.process.ttl import IdleClock


def test_clock_starts_when_ready_not_at_the_epoch() -> None:
    clock = IdleClock(ttl=10)
    assert clock.deadline() is None  # not ready: nothing to unload
    clock.on_ready(100.0)
    assert clock.deadline() == 110.0
    assert not clock.expired(109.9)
    assert clock.expired(110.0)
    assert clock.left(104.0) == 6.0


def test_requests_in_flight_hold_the_model() -> None:
    clock = IdleClock(ttl=10)
    clock.on_ready(0.0)
    clock.hold()
    clock.hold()
    assert clock.deadline() is None
    assert not clock.expired(1e9)
    clock.release(50.0)
    assert clock.deadline() is None  # one still in flight
    clock.release(70.0)
    assert clock.deadline() == 80.0  # restarted by the last request's end


def test_ttl_zero_never_unloads_and_stop_clears() -> None:
    never = IdleClock(ttl=0)
    never.on_ready(0.0)
    assert never.deadline() is None
    clock = IdleClock(ttl=5)
    clock.on_ready(0.0)
    clock.on_not_ready()
    assert clock.deadline() is None and clock.left(1.0) is None


def test_release_without_hold_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        IdleClock(ttl=1).release(0.0)


events = st.lists(
    st.one_of(
        st.just(("ready",)),
        st.just(("stop",)),
        st.just(("hold",)),
        st.tuples(st.just("release"), st.floats(0, 1000)),
    ),
    max_size=40,
)


@given(st.floats(0.1, 100), events)
def test_deadline_exists_exactly_when_ready_and_idle(ttl: float, script: list[tuple]) -> None:
    clock = IdleClock(ttl)
    ready, holds, now, last_idle = False, 0, 0.0, None
    for step in script:
        now += 1.0
        if step[0] == "ready":
            clock.on_ready(now)
            ready, last_idle = True, now
        elif step[0] == "stop":
            clock.on_not_ready()
            ready = False
        elif step[0] == "hold":
            clock.hold()
            holds += 1
        elif holds:
            clock.release(now)
            holds -= 1
            if holds == 0 and ready:
                last_idle = now
        assert clock.in_flight == holds
        if ready and holds == 0:
            assert last_idle is not None
            assert clock.deadline() == pytest.approx(last_idle + ttl)
        else:
            assert clock.deadline() is None
