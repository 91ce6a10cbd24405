"""`explain` answers without changing anything; the decision log stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.router.decision_log import DecisionLog
from swapd.router.events import Decision
from swapd.router.explain import explain
from swapd.router.scheduler import ModelPolicy
from tests.unit.router.harness import Driver, one_at_a_time


def test_explain_covers_every_verdict_and_changes_nothing():
    models = {"a": ModelPolicy(limit=2), "b": ModelPolicy(), "c": ModelPolicy()}
    d = Driver(one_at_a_time(list(models)), models, max_wait=30)

    def x(model):
        return explain(d.sched, model, d.facts())

    assert x("zzz").verdict == "not_found"
    assert x("a").verdict == "swap" and x("a").evict == ()
    a1 = d.request("a")
    assert x("a").verdict == "join"
    q = x("b")
    assert q.verdict == "queue" and q.blocked_by == ("a",) and "collides" in q.reason
    d.swap_done("a")
    assert x("a").verdict == "serve"
    b = x("b")
    assert b.verdict == "queue" and b.in_flight == {"a": 1} and b.evict == ("a",)
    a2 = d.request("a")
    assert x("a").verdict == "too_many"
    before = (list(d.sched.queue), dict(d.sched.reserved), len(d.fx.calls))
    for m in ("a", "b", "c", "zzz"):
        x(m)
    assert before == (list(d.sched.queue), dict(d.sched.reserved), len(d.fx.calls))
    d.serve_done(a1)
    d.serve_done(a2)
    assert x("b").verdict == "swap" and x("b").evict == ("a",)
    d.shutdown()
    assert x("a").verdict == "shutdown"


def test_explain_names_the_overdue_request_and_the_queue_ahead():
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"], max_wait=30)
    d.request("a")
    d.swap_done("a")
    b1 = d.request("b")
    d.now = 31
    r = explain(d.sched, "a", d.facts())
    assert r.verdict == "queue" and f"#{b1}" in r.reason and r.queue_ahead == 1


def decision(seq: int, model: str = "a") -> Decision:
    return Decision(seq=seq, time=float(seq), input="request", action="serve", model=model)


def test_decision_log_is_bounded_and_counts_what_it_dropped():
    log = DecisionLog(3)
    for i in range(5):
        log.append(decision(i, "a" if i % 2 else "b"))
    assert [d.seq for d in log.recent()] == [2, 3, 4]
    assert [d.seq for d in log.recent(2)] == [3, 4]
    assert log.recent(0) == []
    assert log.dropped == 2 and len(log) == 3
    with pytest.raises(ValueError):
        DecisionLog(0)


@given(count=st.integers(0, 12), limit=st.one_of(st.none(), st.integers(-2, 30)))
def test_recent_is_the_newest_limit_entries(count: int, limit: int | None) -> None:
    """Any limit, including one between the count and twice the count."""
    log = DecisionLog(50)
    for i in range(count):
        log.append(decision(i, "a" if i % 2 else "b"))
    everything = list(range(count))
    wanted = everything if limit is None or limit < 0 else everything[max(0, count - limit) :]
    assert [d.seq for d in log.recent(limit)] == wanted


def test_a_limit_over_the_count_returns_everything() -> None:
    log = DecisionLog(50)
    for i in range(5):
        log.append(decision(i))
    assert [d.seq for d in log.recent(7)] == [0, 1, 2, 3, 4]
