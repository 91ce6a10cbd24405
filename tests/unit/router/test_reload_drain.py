"""The scheduler's draining reload, pure: no I/O, fake effects, a hand-driven clock.

A reload names the models to drain (process settings changed, or removed):
they get no new grants, their requests in flight finish, then the scheduler
asks for their retirement once (idle, or at the drain bound), and a
`Retired` input lets their queue move again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from swapd.router.events import Policy, Reload, Retired, Tick
from swapd.router.group_swapper import GroupSwapper
from swapd.router.scheduler import ModelPolicy
from tests.unit.router.harness import Driver, Recorder, groups, one_at_a_time


@dataclass
class DrainRecorder(Recorder):
    retired: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    def retire(self, models: tuple[str, ...], reason: str) -> None:
        self.calls.append(("retire", models, reason))
        self.retired.append((models, reason))


def driver(swapper: GroupSwapper, models: Sequence[str], *, max_wait: float = 0.0) -> Driver:
    d = Driver(swapper, models, max_wait=max_wait)
    d.fx = DrainRecorder()
    d.sched.effects = d.fx
    return d


def reload(
    d: Driver,
    models: Sequence[str],
    drain: Mapping[str, float],
    after: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    d.feed(
        Reload(
            models={m: Policy(limit=10) for m in models},
            max_wait=d.sched.settings.max_wait,
            keep_abandoned_loads=False,
            drain=dict(drain),
            after=dict(after or {}),
        )
    )


def retired(d: Driver, *models: str) -> None:
    """The run loop's retire task finished: the old processes are gone."""
    for m in models:
        d.states.pop(m, None)
    d.feed(Retired(models=tuple(models)))


def tick(d: Driver, at: float) -> None:
    d.now = at
    d.feed(Tick())


def ready(d: Driver, model: str) -> int:
    """A request for `model`, granted after a load; returns its id (still in flight)."""
    rid = d.request(model)
    if model in d.sched.active:
        d.swap_done(model)
    assert rid in d.fx.granted
    return rid


def test_changed_model_drains_then_is_retired_and_served_by_the_new_process():
    d = driver(one_at_a_time(["a", "b"]), ["a", "b"])
    old = ready(d, "a")
    reload(d, ["a", "b"], {"a": 100.0})
    assert d.fx.retired == []  # a request is in flight
    new = d.request("a")
    assert new not in d.fx.granted and d.queue == [new] and d.fx.swaps[-1].target == "a"
    assert len(d.fx.swaps) == 1  # no new load for the old process
    d.serve_done(old)
    assert d.fx.retired == [(("a",), "drained")]
    assert d.queue == [new]  # still waits: the retirement is in progress
    retired(d, "a")
    assert d.started()[-1] == ("a", ())  # the new process loads
    d.swap_done("a")
    assert new in d.fx.granted
    assert "a" not in d.sched.draining and "a" not in d.sched.retiring


def test_idle_changed_model_is_retired_at_once():
    d = driver(one_at_a_time(["a", "b"]), ["a", "b"])
    d.serve_done(ready(d, "a"))
    reload(d, ["a", "b"], {"a": 100.0})
    assert d.fx.retired == [(("a",), "drained")]
    actions = [x.action for x in d.fx.decisions[-3:]]
    assert actions == ["reload", "drain", "retire"]


def test_unchanged_model_keeps_serving_while_another_drains():
    sw = GroupSwapper(groups(g=("FFF", "ab")))  # a and b run side by side
    d = driver(sw, ["a", "b"])
    a1 = ready(d, "a")
    b1 = ready(d, "b")
    reload(d, ["a", "b"], {"a": 100.0})
    b2 = d.request("b")
    assert b2 in d.fx.granted  # fast path, untouched
    d.serve_done(b1)
    d.serve_done(b2)
    assert d.fx.retired == []
    d.serve_done(a1)
    assert d.fx.retired == [(("a",), "drained")]


def test_removed_model_finishes_in_flight_then_is_retired_and_unknown():
    d = driver(one_at_a_time(["a", "b"]), ["a", "b"])
    a1 = ready(d, "a")
    reload(d, ["b"], {"a": 100.0})
    late = d.request("a")
    assert d.fx.failed[late].kind == "not_found"
    assert d.fx.retired == []
    d.serve_done(a1)
    assert d.fx.retired == [(("a",), "drained")]
    retired(d, "a")
    assert d.sched.reserved == {} and d.sched.in_flight == {}
    assert d.fx.failed[d.request("a")].kind == "not_found"


def test_drain_bound_retires_a_model_whose_requests_never_finish():
    d = driver(one_at_a_time(["a"]), ["a"])
    d.now = 10.0
    stuck = ready(d, "a")
    reload(d, ["a"], {"a": 30.0})
    assert d.sched.next_deadline() == 40.0
    tick(d, 39.9)
    assert d.fx.retired == []
    tick(d, 40.0)
    assert d.fx.retired == [(("a",), "drain bound reached")]
    assert "still in flight are cut" in d.fx.decisions[-1].reason
    assert d.sched.next_deadline() is None
    retired(d, "a")
    d.serve_done(stuck)  # the cut request still reports; the counts balance
    assert d.sched.in_flight == {} and d.sched.reserved == {}


def test_a_load_in_progress_finishes_for_its_waiters_before_the_drain():
    d = driver(one_at_a_time(["a"]), ["a"])
    w = d.request("a")  # loading
    reload(d, ["a"], {"a": 100.0})
    tick(d, 50.0)
    assert d.fx.retired == []
    d.swap_done("a")
    assert w in d.fx.granted and d.fx.retired == []
    d.serve_done(w)
    assert d.fx.retired == [(("a",), "drained")]


def test_the_drain_bound_counts_from_the_reload_even_across_a_load():
    d = driver(one_at_a_time(["a"]), ["a"])
    w = d.request("a")
    reload(d, ["a"], {"a": 100.0})
    tick(d, 200.0)  # past the bound, but a load is never cut under its waiter
    assert d.fx.retired == []
    d.swap_done("a")  # the waiter is granted, and the bound has passed
    assert w in d.fx.granted
    assert d.fx.retired == [(("a",), "drain bound reached")]


def test_requests_waiting_on_a_drain_never_hold_others_back_by_max_wait():
    sw = GroupSwapper(groups(g=("FFF", "ab")))
    d = driver(sw, ["a", "b"], max_wait=1.0)
    a1 = ready(d, "a")
    reload(d, ["a", "b"], {"a": 100.0})
    a2 = d.request("a")
    d.now = 50.0  # a2 has waited far longer than maxWait
    b1 = d.request("b")
    assert d.fx.swaps[-1].target == "b"  # not held back behind a2
    d.swap_done("b")
    assert b1 in d.fx.granted and a2 not in d.fx.granted
    d.serve_done(a1)
    retired(d, "a")
    d.swap_done("a")
    assert a2 in d.fx.granted


def test_reload_during_a_retirement_drains_the_model_again_afterwards():
    d = driver(one_at_a_time(["a"]), ["a"])
    d.serve_done(ready(d, "a"))
    reload(d, ["a"], {"a": 5.0})
    assert d.sched.retiring == {"a"}
    reload(d, ["a"], {"a": 5.0})  # changed again before the first retirement ended
    retired(d, "a")
    assert [models for models, _ in d.fx.retired] == [("a",), ("a",)]
    retired(d, "a")
    assert not d.sched.draining and not d.sched.retiring


def test_a_model_taking_over_a_draining_models_port_waits_for_its_retirement():
    sw = GroupSwapper(groups(g=("FFF", "abc")))
    d = driver(sw, ["a", "b", "c"], max_wait=1.0)
    a1 = ready(d, "a")
    d.serve_done(ready(d, "b"))
    # a is removed; b moves to a's old port (changed); c is new on b's old port.
    reload(d, ["b", "c"], {"a": 100.0, "b": 100.0}, after={"b": ("a",), "c": ("b",)})
    assert d.fx.retired == [(("b",), "drained")]  # b is idle; a is not
    c1 = d.request("c")
    assert c1 not in d.fx.granted and d.sched.active == {}
    assert "takes over the port of b" in d.sched.plan("c").reason
    retired(d, "b")
    assert d.fx.swaps[-1].target == "c"  # b's old port is free: c loads
    b1 = d.request("b")
    assert d.queue == [b1]  # b's new port is still a's
    d.now = 50.0  # waiting on a handover never holds others back by maxWait
    assert d.sched.plan("b").blocked_by == ("a",)
    d.serve_done(a1)
    retired(d, "a")
    for m in ("c", "b"):
        if m in d.sched.active:
            d.swap_done(m)
    assert c1 in d.fx.granted and b1 in d.fx.granted
    assert d.sched.after == {}


def test_policy_only_reload_changes_limits_without_draining():
    d = driver(one_at_a_time(["a"]), ["a"])
    a1 = ready(d, "a")
    d.reload({"a": ModelPolicy(limit=1)})
    assert d.fx.failed[d.request("a")].kind == "too_many"
    d.serve_done(a1)
    assert d.fx.retired == [] and not d.sched.draining


# ------------------------------------------------------------------- properties

MODELS = ("a", "b", "c")

op = st.one_of(
    st.tuples(st.just("request"), st.sampled_from(MODELS)),
    st.tuples(st.just("finish"), st.integers(0, 50)),
    st.tuples(st.just("load"), st.sampled_from(MODELS)),
    st.tuples(
        st.just("reload"), st.sets(st.sampled_from(MODELS)), st.sets(st.sampled_from(MODELS))
    ),
    st.tuples(st.just("retired"), st.integers(0, 5)),
    st.tuples(st.just("tick"), st.floats(0, 20)),
)


@settings(max_examples=300)
@given(st.lists(op, max_size=40))
def test_draining_models_are_never_granted_and_always_retired(ops):
    """Whatever happens: a model is never granted while draining or retiring (except
    waiters of a load already in progress at the reload), every retirement is asked
    for once per drain, and once everything finishes nothing drains and nothing is
    counted any more."""
    d = driver(GroupSwapper(groups(g=("FFF", "abc"))), list(MODELS))
    known = set(MODELS)
    in_flight: list[int] = []
    outstanding: list[tuple[str, ...]] = []
    waiters_at_reload: set[int] = set()

    def check_grants(before: int) -> None:
        for rid in d.fx.granted[before:]:
            model = d.model_of[rid]
            blocked = model in d.sched.draining or model in d.sched.retiring
            assert not blocked or rid in waiters_at_reload, (rid, model)
            in_flight.append(rid)

    def step(fn: Callable[..., object], *args: object) -> None:
        before = len(d.fx.granted)
        seen = len(d.fx.retired)
        fn(*args)
        check_grants(before)
        for models, _ in d.fx.retired[seen:]:
            outstanding.append(models)

    for item in ops:
        match item:
            case ("request", model):
                step(d.request, model)
            case ("finish", i) if in_flight:
                rid = in_flight.pop(i % len(in_flight))
                step(d.serve_done, rid)
            case ("load", model) if model in d.sched.active:
                step(d.swap_done, model)
            case ("reload", keep, changed):
                keep = keep or {"a"}
                drain = {m: 10.0 for m in known if m not in keep or m in changed}
                waiters_at_reload |= {
                    w.id for s in d.sched.active.values() for w in s.waiters if w.model in drain
                }
                step(reload, d, sorted(keep), drain)
                known = set(keep)
            case ("retired", i) if outstanding:
                models = outstanding.pop(i % len(outstanding))
                step(retired, d, *models)
            case ("tick", dt):
                step(tick, d, d.now + dt)
    # Wind down: finish every load and request, report every retirement.
    for _ in range(100):
        if d.sched.active:
            step(d.swap_done, next(iter(d.sched.active)))
        elif in_flight:
            step(d.serve_done, in_flight.pop())
        elif outstanding:
            step(retired, d, *outstanding.pop(0))
        else:
            break
    assert not d.sched.draining and not d.sched.retiring
    assert d.sched.in_flight == {} and not d.sched.active
    assert d.sched.queue == [] and d.sched.reserved == {}
