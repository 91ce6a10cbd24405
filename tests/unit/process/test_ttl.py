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


@given(st.floats(0.1, 100), st.lists(st.sampled_from(["hold", "release", "wait"]), max_size=40))
def test_a_check_is_never_later_than_the_deadline_that_follows(
    ttl: float, script: list[str]
) -> None:
    """The owner may sleep until `next_check` without being woken by releases."""
    clock = IdleClock(ttl)
    clock.on_ready(0.0)
    now = 0.0
    for start in range(len(script) + 1):
        check = clock.next_check(now)
        assert (check is not None and check > now) or clock.expired(now)
        probe = IdleClock(ttl, clock.in_flight, clock.idle_since)
        later = now
        for step in script[start:]:
            later += 0.25
            if step == "hold":
                probe.hold()
            elif step == "release" and probe.in_flight:
                probe.release(later)
            deadline = probe.deadline()
            assert deadline is None or check <= deadline
        if start < len(script):
            now += 0.25
            step = script[start]
            if step == "hold":
                clock.hold()
            elif step == "release" and clock.in_flight:
                clock.release(now)


def test_no_check_without_a_ttl_or_while_not_ready() -> None:
    assert IdleClock(0).next_check(5.0) is None
    assert IdleClock(10).next_check(5.0) is None
    busy = IdleClock(10, in_flight=2, idle_since=1.0)
    assert busy.next_check(5.0) == 15.0


# ----- sleepAfter: the same idle clock, an earlier deadline ------------------------


def test_sleep_comes_before_the_ttl_and_only_when_it_comes_first() -> None:
    clock = IdleClock(ttl=10, sleep_after=3)
    assert clock.sleep_deadline() is None  # not ready
    clock.on_ready(100.0)
    assert clock.sleep_deadline() == 103.0 and clock.deadline() == 110.0
    assert not clock.sleep_due(102.9) and clock.sleep_due(103.0)
    for ttl in (3, 2):  # the TTL stops it no later: sleeping first saves nothing
        late = IdleClock(ttl=ttl, sleep_after=3)
        late.on_ready(0.0)
        assert late.sleep_deadline() is None and late.next_sleep_check(0.0) is None
    forever = IdleClock(ttl=0, sleep_after=3)  # never stopped: it still sleeps
    forever.on_ready(0.0)
    assert forever.sleep_deadline() == 3.0
    assert IdleClock(ttl=10).next_sleep_check(0.0) is None


@given(
    st.floats(0.1, 100),
    st.lists(st.tuples(st.sampled_from(["hold", "release"]), st.floats(0, 10)), max_size=20),
)
def test_next_sleep_check_is_never_after_the_sleep_deadline(
    sleep_after: float, steps: list[tuple[str, float]]
) -> None:
    clock = IdleClock(ttl=0, sleep_after=sleep_after)
    now = 0.0
    clock.on_ready(now)
    check = clock.next_sleep_check(now)
    for what, dt in steps:
        now += dt
        if what == "hold":
            clock.hold()
        elif clock.in_flight:
            clock.release(now)
        deadline = clock.sleep_deadline()
        if deadline is not None:
            assert check is not None and check <= deadline
        if check is not None and now >= check:
            check = clock.next_sleep_check(now)
