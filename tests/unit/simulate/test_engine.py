"""The simulator on hand-checked traces, and its invariants on random ones.

The scheduler and swappers are the daemon's; what is checked here is the
simulated world around them: the clock, loads, answers, TTL, the figures.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapd.config import LoadedConfig, load_config_text
from swapd.router.budget_books import LOADS_KEPT, Books, BooksData
from swapd.router.footprints import Learned
from swapd.simulate.engine import SimResult, simulate
from swapd.simulate.trace import TraceRequest


def models_yaml(*names: str, extra: dict[str, str] | None = None) -> str:
    extra = extra or {}
    return "models:\n" + "".join(
        f"  {n}:\n    cmd: fake --port ${{PORT}}\n{extra.get(n, '')}" for n in names
    )


GROUP = models_yaml("A", "B", "C")
MATRIX_AB = (
    models_yaml("A", "B", "C")
    + "routing:\n  router:\n    use: matrix\n    settings:\n      matrix:\n        sets:\n"
    "          ab: A & B\n          c: C\n"
)


def cfg(text: str) -> LoadedConfig:
    return load_config_text(text)


def trace(*items: tuple[float, str, float]) -> list[TraceRequest]:
    return [TraceRequest(t=t, model=m, service=s) for t, m, s in items]


def abcabc(service: float = 2.0) -> list[TraceRequest]:
    return trace(*((i * 0.1, m, service) for i, m in enumerate("ABCABC")))


def waits(result: SimResult) -> list[float | None]:
    return [None if r.wait is None else round(r.wait, 6) for r in result.requests]


def test_abcabc_under_one_slot_collates_into_three_loads() -> None:
    result = simulate(cfg(GROUP), abcabc(), {"A": 5.0, "B": 1.0, "C": 1.0})
    assert [(ld.model, ld.start, ld.evicted) for ld in result.loads] == [
        ("A", 0.0, ()),
        ("B", 7.0, ("A",)),
        ("C", 10.0, ("B",)),
    ]
    # A and A at 5 (its load), B and B at 8 (after A's 2 s and B's load), C at 11.
    assert waits(result) == [5.0, 7.9, 10.8, 4.7, 7.6, 10.5]


def test_abcabc_under_a_matrix_pairing_a_and_b_loads_b_beside_a() -> None:
    result = simulate(cfg(MATRIX_AB), abcabc(), {"A": 5.0, "B": 1.0, "C": 1.0})
    assert [(ld.model, ld.start, ld.evicted) for ld in result.loads] == [
        ("A", 0.0, ()),
        ("B", 0.1, ()),
        ("C", 7.0, ("A", "B")),
    ]
    assert waits(result) == [5.0, 1.0, 7.8, 4.7, 0.7, 7.5]


def test_one_model_loads_once_and_then_serves_from_ready() -> None:
    items = trace(*((i * 0.5, "A", 0.2) for i in range(20)))
    result = simulate(cfg(GROUP), items, {"A": 3.0})
    assert len(result.loads) == 1
    assert waits(result)[:6] == [3.0, 2.5, 2.0, 1.5, 1.0, 0.5]
    assert waits(result)[6:] == [0.0] * 14


def test_aliases_resolve_and_unknown_names_fail_under_their_own_name() -> None:
    text = models_yaml("A", extra={"A": "    aliases: [alpha]\n"})
    result = simulate(cfg(text), trace((0, "alpha", 1), (0, "nobody", 1)), {})
    assert [(r.model, r.failure) for r in result.requests] == [
        ("A", None),
        ("nobody", "not_found"),
    ]
    assert result.loads[0].seconds == 1.0  # no load time given: 1 s


def test_concurrency_limit_refuses_what_is_over_it() -> None:
    text = models_yaml("A", extra={"A": "    concurrencyLimit: 2\n"})
    result = simulate(cfg(text), trace((0, "A", 5), (0, "A", 5), (0, "A", 5), (6, "A", 1)), {})
    assert [r.failure for r in result.requests] == [None, None, "too_many", None]
    assert result.peak_queue == {"A": 2}


def test_priority_goes_first_in_the_queue() -> None:
    prio = (
        models_yaml("A", "B", "C")
        + "routing:\n  scheduler:\n    use: fifo\n    settings:\n      fifo:\n"
        "        priority: {C: 10}\n"
    )
    items = trace((0, "A", 1), (0.1, "B", 1), (0.2, "C", 1))
    plain = simulate(cfg(GROUP), items, {})
    first = simulate(cfg(prio), items, {})
    assert [ld.model for ld in plain.loads] == ["A", "B", "C"]
    assert [ld.model for ld in first.loads] == ["A", "C", "B"]


def test_ttl_stops_an_idle_model_so_it_loads_again() -> None:
    text = models_yaml("A", extra={"A": "    ttl: 5\n"})
    items = trace((0, "A", 1), (4, "A", 1), (20, "A", 1))
    result = simulate(cfg(text), items, {"A": 1.0})
    # ready at 1, busy until 2; again 4..5; idle from 5, stopped at 10; loads at 20.
    assert [ld.start for ld in result.loads] == [0.0, 20.0]
    assert waits(result) == [1.0, 0.0, 1.0]


def test_max_wait_stops_a_busy_model_from_starving_another() -> None:
    # A is never idle (a request every second, each 1.5 s); B waits behind it.
    items = [*trace(*((float(i), "A", 1.5) for i in range(40))), *trace((2.5, "B", 1))]
    items.sort(key=lambda r: r.t)
    unbounded = models_yaml("A", "B") + (
        "routing:\n  scheduler:\n    use: fifo\n    settings:\n      fifo:\n        maxWait: 0\n"
    )
    bounded = unbounded.replace("maxWait: 0", "maxWait: 5")
    b = next(i for i, r in enumerate(items) if r.model == "B")
    starved = simulate(cfg(unbounded), items, {"A": 1.0, "B": 1.0}).requests[b]
    served = simulate(cfg(bounded), items, {"A": 1.0, "B": 1.0}).requests[b]
    assert starved.wait is not None and starved.wait > 35
    assert served.wait is not None and served.wait < 5 + 1.5 + 1.0 + 1e-9


def test_an_unsorted_trace_is_refused() -> None:
    with pytest.raises(ValueError, match="not sorted"):
        simulate(cfg(GROUP), trace((1, "A", 1), (0, "A", 1)), {})


# ------------------------------------------------------------------ properties

CONFIGS = {
    "group": GROUP,
    "matrix": MATRIX_AB,
    "limit": models_yaml("A", "B", "C", extra={"B": "    concurrencyLimit: 1\n"}),
    "ttl": models_yaml("A", "B", "C", extra={"A": "    ttl: 2\n"}),
    "no-max-wait": GROUP
    + "routing:\n  scheduler:\n    use: fifo\n    settings:\n      fifo:\n        maxWait: 0\n",
}

arrivals = st.lists(
    st.tuples(
        st.floats(0, 5, allow_nan=False),
        st.sampled_from(["A", "B", "C", "X"]),
        st.floats(0, 3, allow_nan=False),
    ),
    max_size=40,
)
load_times = st.fixed_dictionaries({m: st.floats(0, 4, allow_nan=False) for m in ("A", "B", "C")})


def as_trace(items: list[tuple[float, str, float]]) -> list[TraceRequest]:
    gaps = trace(*items)
    out, t = [], 0.0
    for r in gaps:  # cumulative arrivals: `t` of each item is a gap
        t += r.t
        out.append(TraceRequest(t=t, model=r.model, service=r.service))
    return out


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(CONFIGS)), arrivals, load_times)
def test_every_request_is_granted_or_failed_once(
    name: str, items: list[tuple[float, str, float]], loads: dict[str, float]
) -> None:
    tr = as_trace(items)
    result = simulate(cfg(CONFIGS[name]), tr, loads)
    assert len(result.requests) == len(tr)
    for r, req in zip(result.requests, tr, strict=True):
        assert (r.granted is None) != (r.failure is None)
        assert r.arrival == req.t
        if r.granted is not None:
            assert r.granted >= r.arrival
        if req.model == "X":
            assert r.failure == "not_found"
    for load in result.loads:
        assert load.seconds == loads[load.model]
    assert result.peak_queue_total <= len(tr)
    assert all(n >= 0 for n in result.peak_queue.values())


@settings(max_examples=100, deadline=None)
@given(arrivals, st.floats(0, 4, allow_nan=False))
def test_one_model_without_ttl_loads_once(
    items: list[tuple[float, str, float]], load: float
) -> None:
    tr = [TraceRequest(t=r.t, model="A", service=r.service) for r in as_trace(items)]
    result = simulate(cfg(GROUP), tr, {"A": load})
    assert len(result.loads) == (1 if tr else 0)
    for r in result.requests:
        assert r.failure in (None, "too_many")
        assert r.wait is not None or r.failure == "too_many"
        if r.wait is not None:
            assert r.wait <= load + 1e-9 or r.failure is None


@settings(max_examples=100, deadline=None)
@given(st.floats(0.1, 3), st.floats(0.5, 4), st.floats(0, 1))
def test_abcabc_arriving_during_the_first_load_group_and_matrix(
    service: float, load: float, spread: float
) -> None:
    """All six arrive while A loads: one slot collates them into three loads, and a
    matrix that lets B run beside A loads as many and makes nobody wait longer."""
    gap = spread * load / 6
    items = trace(*((i * gap, m, service) for i, m in enumerate("ABCABC")))
    times = {"A": load, "B": load, "C": load}
    group = simulate(cfg(GROUP), items, times)
    matrix = simulate(cfg(MATRIX_AB), items, times)
    assert [ld.model for ld in group.loads] == ["A", "B", "C"]
    assert sorted(ld.model for ld in matrix.loads) == ["A", "B", "C"]
    for m, g in zip(waits(matrix), waits(group), strict=True):
        assert m is not None and g is not None
        assert m <= g + 1e-6


SLEEPY = {"A": "    sleep: {endpoint: /sleep}\n    wake: {endpoint: /wake_up}\n    sleepAfter: 5\n"}


def test_an_idle_model_falls_asleep_and_a_request_wakes_it() -> None:
    text = models_yaml("A", "B", extra=SLEEPY)
    items = trace((0, "A", 1), (3, "A", 1), (20, "A", 1), (21, "A", 1))
    result = simulate(cfg(text), items, {"A": 10.0}, wake_times={"A": 0.5})
    # loads at 0 (ready at 10, serves both 10..11), asleep at 16, woken at 20 (ready 20.5).
    assert [(ld.start, ld.wake, ld.seconds) for ld in result.loads] == [
        (0.0, False, 10.0),
        (20.0, True, 0.5),
    ]
    assert waits(result) == [10.0, 7.0, 0.5, 0.0]


def test_ttl_stops_a_sleeping_model_from_the_same_last_use() -> None:
    text = models_yaml("A", extra={"A": SLEEPY["A"] + "    ttl: 8\n"})
    items = trace((0, "A", 1), (12, "A", 1))
    result = simulate(cfg(text), items, {"A": 1.0}, wake_times={"A": 0.5})
    # ready at 1, idle from 2: asleep at 7, stopped at 10, loaded cold again at 12.
    assert [(ld.start, ld.wake) for ld in result.loads] == [(0.0, False), (12.0, False)]


def test_a_sleeping_model_is_evicted_like_a_ready_one() -> None:
    text = models_yaml("A", "B", extra=SLEEPY)
    items = trace((0, "A", 1), (10, "B", 1), (20, "A", 1))
    result = simulate(cfg(text), items, {"A": 1.0, "B": 1.0}, wake_times={"A": 0.5})
    assert [(ld.model, ld.wake, ld.evicted) for ld in result.loads] == [
        ("A", False, ()),
        ("B", False, ("A",)),
        ("A", False, ("B",)),
    ]


BUDGET_SLEEP = """
resources:
  capacity: {vram: 10GiB}
models:
  A:
    cmd: fake --port ${PORT}
    sleep: {endpoint: /sleep}
    wake: {endpoint: /wake_up}
    resources: {vram: 8GiB, asleep: {vram: 1GiB}}
  B:
    cmd: fake --port ${PORT}
    resources: {vram: 8GiB}
routing:
  router: {use: budget}
"""


def test_a_budget_swap_puts_a_model_to_sleep_when_its_wake_is_cheaper_than_its_load() -> None:
    items = trace((0, "A", 1), (20, "B", 1), (40, "A", 1))
    result = simulate(cfg(BUDGET_SLEEP), items, {"A": 10.0, "B": 10.0}, wake_times={"A": 0.5})
    assert [(ld.model, ld.wake, ld.evicted, ld.slept) for ld in result.loads] == [
        ("A", False, (), ()),
        ("B", False, (), ("A",)),
        ("A", True, ("B",), ()),
    ]
    assert waits(result) == [10.0, 10.0, 0.5]


def test_a_budget_swap_stops_a_model_whose_wake_costs_more_than_its_load() -> None:
    items = trace((0, "A", 1), (20, "B", 1), (40, "A", 1))
    result = simulate(cfg(BUDGET_SLEEP), items, {"A": 10.0, "B": 10.0}, wake_times={"A": 30.0})
    assert [(ld.model, ld.wake, ld.evicted, ld.slept) for ld in result.loads] == [
        ("A", False, (), ()),
        ("B", False, ("A",), ()),
        ("A", False, ("B",), ()),
    ]


def test_a_given_wake_time_is_what_a_sleep_costs_whatever_the_books_measured() -> None:
    """The books read from the history keep measured wakes; the simulation's wake time for
    a model replaces them rather than being outvoted by them."""
    books = Books(BooksData(wakes={"A": [0.5] * LOADS_KEPT}))
    items = trace((0, "A", 1), (20, "B", 1), (40, "A", 1))
    result = simulate(
        cfg(BUDGET_SLEEP),
        items,
        {"A": 10.0, "B": 10.0},
        wake_times={"A": 30.0},
        learned=Learned(books),
    )
    assert [(ld.model, ld.evicted, ld.slept) for ld in result.loads][1] == ("B", ("A",), ())
    assert books.costs.median_wake("A") == 0.5, "the caller's books are not changed"
