"""The FIFO scheduler on llama-swap's worked examples (docs/compat.md, Scheduler and queueing).

Pure: a recording Effects, process states set by hand, no clock but `now`.
"""

from __future__ import annotations

from swapd.router.events import Tick, Unload
from swapd.router.group_swapper import GroupSwapper
from swapd.router.scheduler import ModelPolicy
from tests.unit.router.harness import Driver, groups, one_at_a_time

ABC = ["a", "b", "c"]


def test_collation_abcabc_is_served_aabbcc_with_three_loads():
    """Collation of A B C A B C, step by step."""
    d = Driver(one_at_a_time(ABC), ABC)
    a1, b1, c1, a2, b2, c2 = (d.request(m) for m in "abcabc")
    assert d.started() == [("a", ())]
    assert d.queue == [b1, c1, b2, c2]
    assert [w.id for w in d.sched.active["a"].waiters] == [a1, a2]

    d.swap_done("a")
    assert d.fx.granted == [a1, a2]
    assert d.sched.in_flight == {"a": 2}
    assert d.queue == [b1, c1, b2, c2]  # every item would evict busy a

    d.serve_done(a1)
    assert d.started() == [("a", ())]  # 1 left in flight: no drain
    d.serve_done(a2)
    assert d.started() == [("a", ()), ("b", ("a",))]
    assert d.queue == [c1, c2]
    assert [w.id for w in d.sched.active["b"].waiters] == [b1, b2]

    d.swap_done("b")
    assert d.fx.granted == [a1, a2, b1, b2]
    assert d.queue == [c1, c2]
    d.serve_done(b1)
    d.serve_done(b2)
    assert d.started()[-1] == ("c", ("b",))
    d.swap_done("c")
    d.serve_done(c1)
    d.serve_done(c2)
    assert d.fx.granted == [a1, a2, b1, b2, c1, c2]
    assert len(d.fx.swaps) == 3
    assert d.sched.reserved == {} and d.sched.in_flight == {} and d.sched.active == {}


def test_late_arrival_goes_behind_the_queue():
    """An a3 arriving while b loads is served after the c's (a a b b c c a)."""
    d = Driver(one_at_a_time(ABC), ABC)
    ids = [d.request(m) for m in "abcabc"]
    d.swap_done("a")
    d.serve_done(ids[0])
    d.serve_done(ids[3])
    a3 = d.request("a")  # b is loading now
    assert d.queue == [ids[2], ids[5], a3]
    d.swap_done("b")
    d.serve_done(ids[1])
    d.serve_done(ids[4])
    d.swap_done("c")
    d.serve_done(ids[2])
    d.serve_done(ids[5])
    d.swap_done("a")
    assert d.fx.granted == [ids[0], ids[3], ids[1], ids[4], ids[2], ids[5], a3]
    assert [t for t, _ in d.started()] == ["a", "b", "c", "a"]


def test_priority_orders_the_queue():
    """Arrivals B5, D1, C5, A10 give queue A, B, C, D."""
    models = {"x": ModelPolicy(), "a": ModelPolicy(priority=10), "b": ModelPolicy(priority=5)}
    models |= {"c": ModelPolicy(priority=5), "d": ModelPolicy(priority=1)}
    d = Driver(one_at_a_time(list(models)), models)
    d.request("x")  # loading x: everything else collides
    ids = {m: d.request(m) for m in "bdca"}
    assert d.queue_models == ["a", "b", "c", "d"]
    assert d.fx.positions == {ids["a"]: 1, ids["b"]: 2, ids["c"]: 3, ids["d"]: 4}


def test_negative_priority_goes_after_default():
    models = {"x": ModelPolicy(), "lo": ModelPolicy(priority=-1), "mid": ModelPolicy()}
    d = Driver(one_at_a_time(list(models)), models)
    d.request("x")
    d.request("lo")
    d.request("mid")
    assert d.queue_models == ["mid", "lo"]


def test_priority_never_preempts_join_or_fast_path():
    """A high-priority queued request does not stop a join or a fast path."""
    models = {"a": ModelPolicy(), "b": ModelPolicy(priority=100)}
    d = Driver(one_at_a_time(["a", "b"]), models)
    a1 = d.request("a")
    b1 = d.request("b")
    a2 = d.request("a")  # joins the active swap despite b's priority
    assert d.queue == [b1]
    d.swap_done("a")
    assert d.fx.granted == [a1, a2]
    a3 = d.request("a")  # fast path: a is ready and nothing to evict
    assert d.fx.granted == [a1, a2, a3]


def test_fast_path_bypasses_queue_without_bound():
    """With maxWait 0 (llama-swap) a ready model keeps jumping the queue."""
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"], max_wait=0)
    a1 = d.request("a")
    d.swap_done("a")
    b1 = d.request("b")
    assert d.queue == [b1]
    served = [a1]
    for i in range(50):
        d.now = float(i * 10)
        served.append(d.request("a"))
        d.serve_done(served[-2])
    assert d.queue == [b1]  # starved
    assert d.started() == [("a", ())]


def test_bounded_wait_stops_the_fast_path_and_the_swap_happens():
    """swapd: after maxWait the ready model stops jumping the queue, drains, b loads."""
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"], max_wait=30)
    a1 = d.request("a")
    d.swap_done("a")
    b1 = d.request("b")
    d.now = 29.0
    a2 = d.request("a")
    assert a2 in d.fx.granted  # below the bound collation is unchanged
    d.serve_done(a1)
    d.now = 30.0
    a3 = d.request("a")
    assert a3 not in d.fx.granted and d.queue == [b1, a3]
    assert "maxWait" in d.fx.decisions[-1].reason
    d.serve_done(a2)  # a drains: b's swap starts, evicting a
    assert d.started() == [("a", ()), ("b", ("a",))]
    assert d.queue == [a3]
    d.swap_done("b")
    assert d.fx.granted == [a1, a2, b1]
    d.serve_done(b1)
    d.swap_done("a")
    assert d.fx.granted[-1] == a3


def test_waiters_younger_than_an_overdue_request_are_requeued():
    """A swap ending after an older request waited maxWait grants only older waiters."""
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"], max_wait=30)
    a1 = d.request("a")
    d.now = 1
    b1 = d.request("b")
    d.now = 2
    a2 = d.request("a")  # joins a's load
    d.now = 40
    d.swap_done("a")
    assert d.fx.granted == [a1]
    assert d.queue == [b1, a2]
    d.serve_done(a1)
    assert d.started()[-1] == ("b", ("a",))
    d.swap_done("b")
    assert d.fx.granted == [a1, b1]


def test_ready_target_with_evictions_swaps_and_busy_eviction_queues():
    """The one-way rule: ready a must evict b; when b is busy, a's request queues."""
    sw = GroupSwapper(groups(g1=("TTF", "a"), g2=("TFF", "b")))
    d = Driver(sw, ["a", "b"])
    d.states = {"a": "ready", "b": "ready"}
    b1 = d.request("b")
    assert d.fx.granted == [b1]  # non-exclusive b coexists with a
    a1 = d.request("a")
    assert d.queue == [a1]  # would evict busy b: no fast path, no swap
    d.serve_done(b1)
    assert d.started() == [("a", ("b",))]
    d.swap_done("a")
    assert d.fx.granted == [b1, a1]


def test_in_flight_target_counts_as_running():
    """The second model sees the first one's load and queues."""
    d = Driver(GroupSwapper(groups(g=("TFF", "ab"))), ["a", "b"])
    d.request("a")
    b1 = d.request("b")
    assert d.started() == [("a", ())]
    assert d.queue == [b1]


def test_disjoint_swaps_run_in_parallel():
    """Coexisting models load in parallel."""
    d = Driver(GroupSwapper(groups(g1=("TFF", "a"), g2=("TFF", "b"))), ["a", "b"])
    d.request("a")
    d.request("b")
    assert d.started() == [("a", ()), ("b", ())]


def test_overlapping_evict_sets_collide():
    """Two swaps must not stop the same model."""
    sw = GroupSwapper(groups(g1=("TTF", "a"), g2=("TTF", "b"), old=("TFF", "x")))
    d = Driver(sw, ["a", "b", "x"])
    d.states = {"x": "ready"}
    d.request("a")
    b1 = d.request("b")  # would evict x (and a, the in-flight target)
    assert d.started() == [("a", ("x",))]
    assert d.queue == [b1]


def test_collides_when_someone_stops_the_model_we_want():
    """A collision: b is ready but an active swap is evicting it."""
    sw = GroupSwapper(groups(g1=("TTF", "a"), g2=("TFF", "b")))
    d = Driver(sw, ["a", "b"])
    d.states = {"b": "ready"}
    d.request("a")  # evicts b
    b1 = d.request("b")
    assert d.queue == [b1]
    assert "collides" in d.fx.decisions[-1].reason


def test_stopping_counts_as_running():
    """A stopping process is still evicted explicitly."""
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"])
    d.states = {"a": "stopping"}
    d.request("b")
    assert d.started() == [("b", ("a",))]


def test_swap_failure_reaches_every_waiter_and_only_them():
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"])
    a1 = d.request("a")
    b1 = d.request("b")
    a2 = d.request("a")
    d.swap_done("a", error="exited prematurely")
    assert set(d.fx.failed) == {a1, a2}
    assert d.fx.failed[a1].kind == "load_failed"
    assert "exited prematurely" in d.fx.failed[a1].message
    assert b1 not in d.fx.failed
    assert d.started()[-1] == ("b", ())  # the drain after the failure starts b
    assert d.sched.reserved == {"b": 1}


def test_admission_limit_counts_queued_waiting_and_serving():
    """The limit is on reservations, checked before anything else."""
    models = {"a": ModelPolicy(limit=2), "b": ModelPolicy()}
    d = Driver(one_at_a_time(["a", "b"]), models)
    a1 = d.request("a")
    a2 = d.request("a")
    a3 = d.request("a")
    assert d.fx.failed[a3].kind == "too_many"
    assert a3 not in d.fx.admitted
    d.swap_done("a")
    d.serve_done(a1)
    a4 = d.request("a")  # a1's slot is free again
    assert a4 in d.fx.granted
    a5 = d.request("a")
    assert d.fx.failed[a5].kind == "too_many"
    d.serve_done(a2)
    d.serve_done(a4)
    assert d.sched.reserved == {}


def test_unknown_model_is_not_found_and_reserves_nothing():
    d = Driver(one_at_a_time(["a"]), ["a"])
    r = d.request("nope")
    assert d.fx.failed[r].kind == "not_found"
    assert d.sched.reserved == {}


def test_handler_gone_at_admission_is_dropped():
    d = Driver(one_at_a_time(["a"]), ["a"])
    d.gone.add(1)
    d.request("a")
    assert d.fx.swaps == [] and d.sched.reserved == {}


def test_grant_to_a_gone_handler_counts_nothing():
    """In flight only when the grant reached a live handler."""
    d = Driver(one_at_a_time(["a"]), ["a"])
    a1 = d.request("a")
    a2 = d.request("a")
    d.gone.add(a2)
    d.swap_done("a")
    assert d.fx.granted == [a1]
    assert d.sched.in_flight == {"a": 1} and d.sched.reserved == {"a": 1}
    d.cancel(a2)  # the late cancel is a no-op
    d.gone.discard(a2)
    assert d.sched.reserved == {"a": 1}


def test_serve_done_drains_only_at_zero():
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"])
    a1, a2 = d.request("a"), d.request("a")
    d.swap_done("a")
    b1 = d.request("b")
    d.serve_done(a1)
    assert d.queue == [b1]
    d.serve_done(a2)
    assert d.queue == [] and d.started()[-1] == ("b", ("a",))


def test_cancel_while_queued_leaves_the_queue_and_prevents_a_load():
    """#844: a dead queued request must not trigger a load later."""
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"])
    a1 = d.request("a")
    b1 = d.request("b")
    d.cancel(b1)
    assert d.queue == [] and d.sched.reserved == {"a": 1}
    d.swap_done("a")
    d.serve_done(a1)
    assert d.started() == [("a", ())]


def test_last_waiter_gone_aborts_the_load():
    """llama-swap #727: an abandoned load is aborted; a new request waits for the abort."""
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"])
    a1 = d.request("a")
    a2 = d.request("a")
    d.cancel(a1)
    assert d.fx.aborted == []
    d.cancel(a2)
    swap_id = d.swap_for("a").swap_id
    assert d.fx.aborted == [swap_id]
    a3 = d.request("a")
    assert d.queue == [a3]  # queues behind the abort instead of racing it
    d.swap_done("a", error="aborted", ready=False)
    assert d.started() == [("a", ()), ("a", ())]
    assert a3 not in d.fx.failed


def test_keep_abandoned_loads_lets_the_load_finish():
    d = Driver(one_at_a_time(["a"]), ["a"], keep_abandoned_loads=True)
    a1 = d.request("a")
    d.cancel(a1)
    assert d.fx.aborted == []
    a2 = d.request("a")  # joins the load that kept going
    d.swap_done("a")
    assert d.fx.granted == [a2]


def test_unload_fails_waiters_and_queued_and_unblocks_the_queue():
    """Unloading the loading model lets a queued request proceed."""
    d = Driver(one_at_a_time(["a", "b", "c"]), ["a", "b", "c"])
    a1 = d.request("a")
    b1 = d.request("b")
    a2 = d.request("a")
    d.unload(["a"])
    assert d.fx.failed[a1].kind == d.fx.failed[a2].kind == "unloaded"
    assert d.fx.stops == [("a",)]
    assert d.fx.aborted == [1]
    assert d.queue == [b1]  # the aborting swap of a still holds the slot
    d.swap_done("a", error="aborted", ready=False)
    assert d.started()[-1] == ("b", ())


def test_unload_all_fails_queued_requests_of_every_model():
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"])
    d.request("a")
    b1 = d.request("b")
    d.unload(None)
    assert d.fx.failed[b1].kind == "unloaded"
    assert d.fx.stops == [("a", "b")]
    assert d.sched.reserved == {}


def test_unload_waits_for_requests_in_flight_then_stops():
    d = Driver(one_at_a_time(["a"]), ["a"])
    a1 = d.request("a")
    d.swap_done("a")
    d.unload(["a"])
    assert d.sched.in_flight == {"a": 1}
    assert d.fx.stops == [] and d.fx.cuts == [], "nothing is stopped under a request"
    assert d.sched.next_deadline() == 10.0, "bounded by unloadTimeout"
    d.serve_done_then_stops(a1)
    assert d.fx.stops == [("a",)] and d.fx.cuts == []
    assert d.sched.in_flight == {} and d.sched.reserved == {}
    actions = [x.action for x in d.fx.decisions]
    assert actions[-3:] == ["unload", "unload_wait", "stop"]


def test_unload_now_cuts_requests_in_flight_and_stops_at_once():
    d = Driver(one_at_a_time(["a"]), ["a"])
    a1 = d.request("a")
    d.swap_done("a")
    d.unload(["a"], now=True)
    assert d.fx.cuts == [a1] and d.fx.stops == [("a",)]
    cut = next(x for x in d.fx.decisions if x.action == "cut")
    assert "was unloaded while 1 request(s) were in flight (unload --now)" in cut.reason
    d.serve_done(a1)  # the cut handler reports its end as usual
    assert d.sched.in_flight == {} and d.sched.reserved == {}


def test_an_unload_that_waited_its_unload_timeout_cuts_what_is_left():
    d = Driver(one_at_a_time(["a"]), {"a": ModelPolicy(unload_timeout=3)})
    a1 = d.request("a")
    d.swap_done("a")
    d.unload(["a"])
    assert d.sched.next_deadline() == 3.0
    d.now = 2.9
    d.feed(Tick())
    assert d.fx.stops == [] and d.fx.cuts == []
    d.now = 3.0
    d.feed(Tick())
    assert d.fx.cuts == [a1] and d.fx.stops == [("a",)]
    assert "outlasted unloadTimeout" in d.fx.decisions[-2].reason
    d.stopped("a")
    d.serve_done(a1)
    assert d.sched.in_flight == {} and d.sched.unloading == {}


def test_a_request_during_an_unload_waits_for_the_stop_then_starts_the_model_again():
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"])
    a1 = d.request("a")
    d.swap_done("a")
    d.feed(Unload(models=("a",)))
    a2 = d.request("a")
    b1 = d.request("b")
    assert d.queue == [a2, b1], "neither starts while a is unloading under a request"
    assert "a is being unloaded" in d.fx.decisions[-2].reason
    d.serve_done(a1)
    assert d.fx.stops == [("a",)]
    assert d.started()[-1] == ("b", ("a",)), "b, queued behind a's request, goes on"
    d.stopped("a")
    d.swap_done("b")
    assert d.fx.granted[-1] == b1
    d.serve_done(b1)
    assert d.started()[-1] == ("a", ("b",)), "the request that waited starts a again"
    d.swap_done("a")
    assert d.fx.granted[-1] == a2 and a2 not in d.fx.failed


def test_stale_swap_done_is_ignored():
    """A late result of an aborted swap must not touch a newer swap of the same model."""
    from swapd.router.events import SwapDone

    d = Driver(one_at_a_time(["a"]), ["a"])
    a1 = d.request("a")
    old = d.swap_for("a")
    d.cancel(a1)  # abandoned: aborting
    d.swap_done("a", error="aborted", ready=False)
    a2 = d.request("a")
    new = d.swap_for("a")
    assert new.swap_id != old.swap_id
    d.feed(SwapDone(swap_id=old.swap_id, model="a"))
    assert d.sched.active["a"].plan == new and d.fx.granted == []
    assert d.fx.decisions[-1].reason.startswith("ignored")
    d.swap_done("a")
    assert d.fx.granted == [a2]


def test_shutdown_fails_everyone_and_refuses_new_requests():
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"])
    a1, b1 = d.request("a"), d.request("b")
    d.shutdown()
    assert d.fx.failed[a1].kind == d.fx.failed[b1].kind == "shutdown"
    late = d.request("a")
    assert d.fx.failed[late].kind == "shutdown"
    assert d.sched.reserved == {}


def test_positions_are_broadcast_after_every_queue_change():
    d = Driver(one_at_a_time(["a", "b", "c"]), ["a", "b", "c"])
    d.request("a")
    b1, c1 = d.request("b"), d.request("c")
    assert d.fx.positions == {b1: 1, c1: 2}
    d.cancel(b1)
    assert d.fx.positions == {c1: 1}


def test_swapper_logs_only_for_started_swaps():
    calls = []

    class Spy(GroupSwapper):
        def on_swap_start(self, target, running, usage=None):
            calls.append((target, tuple(running)))

    d = Driver(Spy.with_default({}, ["a", "b"]), ["a", "b"])
    d.request("a")
    d.request("b")
    d.request("b")
    assert calls == [("a", ())]


def test_reload_fails_requests_for_removed_models_and_drains_under_new_rules():
    d = Driver(one_at_a_time(["a", "b", "c"]), ["a", "b", "c"])
    a1 = d.request("a")
    d.swap_done("a")
    b1 = d.request("b")  # queued: would evict busy a
    c1 = d.request("c")
    new_swapper = GroupSwapper(groups(g=("FFF", "ab")))  # a and b may now coexist
    d.reload({"a": ModelPolicy(), "b": ModelPolicy()}, new_swapper)
    assert d.fx.failed[c1].kind == "unloaded"
    assert d.started()[-1] == ("b", ())  # drained under the new rules
    d.swap_done("b")
    assert d.fx.granted == [a1, b1]
    late = d.request("c")
    assert d.fx.failed[late].kind == "not_found"
    d.serve_done(a1)
    d.serve_done(b1)
    assert d.sched.reserved == {} and d.sched.in_flight == {}


def test_reload_aborts_the_load_of_a_removed_model():
    d = Driver(one_at_a_time(["a", "b"]), ["a", "b"])
    a1 = d.request("a")
    d.reload({"b": ModelPolicy()})
    assert d.fx.failed[a1].kind == "unloaded"
    assert d.fx.aborted == [d.swap_for("a").swap_id]


def test_aborting_a_swap_for_a_ready_target_keeps_the_target():
    """A ready target's swap only evicts others; abandoning it must not stop the target."""
    sw = GroupSwapper(groups(g1=("TTF", "a"), g2=("TFF", "b")))
    d = Driver(sw, ["a", "b"])
    d.states = {"a": "ready", "b": "ready"}
    a1 = d.request("a")  # ready, but b must go: a swap
    assert d.started() == [("a", ("b",))]
    d.cancel(a1)
    aborts = [c for c in d.fx.calls if c[0] == "abort_swap"]
    assert aborts == [("abort_swap", 1, "a", False)]
    d2 = Driver(one_at_a_time(["a"]), ["a"])
    r = d2.request("a")
    d2.cancel(r)
    assert [c for c in d2.fx.calls if c[0] == "abort_swap"] == [("abort_swap", 1, "a", True)]


def test_swap_done_decision_carries_the_load_duration():
    d = Driver(one_at_a_time(ABC), ABC)
    d.now = 10.0
    d.request("a")
    d.now = 12.5
    d.swap_done("a")
    done = [x for x in d.fx.decisions if x.action == "swap_done"]
    assert [x.duration for x in done] == [2.5]
    assert all(x.duration is None for x in d.fx.decisions if x.action != "swap_done")
