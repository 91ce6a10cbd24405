"""The recorder: request ids, records to the store and the bus, events into records."""

from __future__ import annotations

from typing import Any

from swapctl import protocol as p
from swapd.events import EventBus
from swapd.history.capture import Capture, CaptureBuffer
from swapd.history.recorder import (
    Recorder,
    RequestFinished,
    exit_record,
    reload_record,
    swap_record,
)
from swapd.history.records import ExitRecord, KvRecord, ReloadRecord, RequestRecord, SwapRecord
from swapd.process.events import KvActivity, ProcessExited
from swapd.router.events import SwapError, SwapFinished, SwapStarted


class Store:
    """What the recorder needs of a store: `record` and `next_request_id`."""

    def __init__(self, next_request_id: int = 1) -> None:
        self.next_request_id = next_request_id
        self.records: list[Any] = []

    def record(self, record: Any) -> None:
        self.records.append(record)


def request(request_id: int) -> RequestRecord:
    return RequestRecord(
        id=request_id, start=1.8e9, client=None, requested="m", model="m", route="/v1/x",
        stream=False, outcome="done", status=200,
    )  # fmt: skip


def started(swap_id: int = 3) -> SwapStarted:
    return SwapStarted(
        swap_id=swap_id, target="b", evict=("a",), set="ab", cost=5, time=1.8e9, why="request 9"
    )


def test_ids_go_on_from_the_store_and_requests_reach_store_and_bus() -> None:
    bus = EventBus()
    store = Store(next_request_id=41)
    recorder = Recorder(bus, store)  # type: ignore[arg-type]
    assert recorder.recording and [recorder.next_id(), recorder.next_id()] == [41, 42]
    with bus.subscribe(topics=("request",)) as sub:
        recorder.request(request(41))
        assert sub.receive_nowait() == RequestFinished(request(41))
    assert store.records == [request(41)]


def test_without_a_store_requests_are_numbered_and_published_only() -> None:
    bus = EventBus()
    recorder = Recorder(bus)
    assert not recorder.recording and recorder.next_id() == 1
    with bus.subscribe(topics=("request",)) as sub:
        recorder.request(request(1))
        assert isinstance(sub.receive_nowait(), RequestFinished)
    recorder.event(started())  # nothing to keep it in: ignored
    assert not recorder.captures.enabled


def test_captures_are_kept_by_request_id() -> None:
    recorder = Recorder(EventBus(), captures=CaptureBuffer(1))
    recorder.capture(Capture(id=7, req_path="/v1/x", req_body=b"{}"))
    assert recorder.captures.get(7) is not None and recorder.captures.get(8) is None


def test_a_swap_is_recorded_from_its_start_and_end() -> None:
    store = Store()
    recorder = Recorder(EventBus(), store)  # type: ignore[arg-type]
    recorder.event(started())
    recorder.event(
        SwapFinished(swap_id=3, target="b", ok=True, seconds=2.5, error=None, time=1.8e9 + 2.5)
    )
    assert store.records == [
        SwapRecord(
            swap_id=3, start=1.8e9, target="b", evicted=("a",), why="request 9", set="ab",
            cost=5, load_s=2.5, result="ok",
        )
    ]  # fmt: skip


def test_a_failed_or_aborted_swap_and_one_whose_start_was_missed() -> None:
    failed = SwapFinished(
        swap_id=4, target="b", ok=False, seconds=1.0, error=SwapError("exited with code 3"),
        time=1.8e9 + 10,
    )  # fmt: skip
    record = swap_record(None, failed)
    assert (record.result, record.error, record.start, record.evicted) == (
        "failed", "exited with code 3", 1.8e9 + 9, (),
    )  # fmt: skip
    aborted = SwapFinished(
        swap_id=5, target="b", ok=False, seconds=0.5,
        error=SwapError("unload", aborted=True), time=1.8e9,
    )  # fmt: skip
    assert swap_record(started(5), aborted).result == "aborted"


def test_exits_give_a_code_or_a_signal() -> None:
    def exited(returncode: int | None, failed: bool) -> ExitRecord:
        return exit_record(
            ProcessExited(
                model="m", pid=12, returncode=returncode, reason="why", failed=failed,
                uptime=3.0, time=1.8e9,
            )
        )  # fmt: skip

    assert (exited(3, True).exit_code, exited(3, True).signal, exited(3, True).failed) == (
        3, None, True,
    )  # fmt: skip
    killed = exited(-9, False)
    assert (killed.exit_code, killed.signal, killed.uptime_s) == (None, "SIGKILL", 3.0)
    assert (exited(None, False).exit_code, exited(None, False).signal) == (None, None)


def test_reloads_keep_what_changed_and_why_they_were_refused() -> None:
    ok = reload_record(
        p.ConfigReloaded(
            time=1.8e9, ok=True, path="/c.yaml", added=["n"], changed=["chat"],
            changes={"chat": ["cmd", "env"]}, source="watch",
        )
    )  # fmt: skip
    assert ok == ReloadRecord(
        time=1.8e9, ok=True, source="watch", path="/c.yaml", added=("n",),
        changed=("chat (cmd, env)",),
    )  # fmt: skip
    refused = reload_record(
        p.ConfigReloaded(
            time=1.8e9, ok=False, path="/c.yaml", source="signal",
            problems=[p.Problem(message="bad", file="/c.yaml", line=3, column=5, path="ttl")],
        )
    )  # fmt: skip
    assert refused.errors == ("/c.yaml:3:5: ttl: bad",) and not refused.ok


# ----- KV-cache figures ------------------------------------------------------------


def kv(model: str, action: str = "save", when: float = 1.8e9, **fields: Any) -> KvActivity:
    values: dict[str, Any] = {"slots": 3, "bytes": 12 << 20, "seconds": 0.41, **fields}
    return KvActivity(model=model, action=action, time=when, **values)  # type: ignore[arg-type]


def exited(model: str = "a", when: float = 1.8e9 + 1, uptime: float = 60.0) -> ProcessExited:
    return ProcessExited(
        model=model, pid=12, returncode=0, reason="ttl", failed=False, uptime=uptime, time=when
    )


def test_a_swap_record_carries_its_saves_and_restore() -> None:
    save = kv("a")
    restore = kv("b", "restore", slots=1, bytes=4096, seconds=0.08, timed_out=True,
                 errors=("restore slot 1: 500", "timed out after 10s"))  # fmt: skip
    finished = SwapFinished(
        swap_id=3, target="b", ok=True, seconds=2.5, error=None, time=1.8e9 + 2.5,
        kv=(save, restore),
    )  # fmt: skip
    record = swap_record(started(), finished)
    assert record.kv == (
        KvRecord(model="a", action="save", slots=3, bytes=12 << 20, seconds=0.41),
        KvRecord(
            model="b", action="restore", slots=1, bytes=4096, seconds=0.08, timed_out=True,
            errors=("restore slot 1: 500", "timed out after 10s"),
        ),
    )  # fmt: skip
    none = SwapFinished(swap_id=4, target="b", ok=True, seconds=1.0, error=None, time=1.8e9)
    assert swap_record(None, none).kv == ()


def test_an_exit_carries_the_save_made_before_it() -> None:
    store = Store()
    recorder = Recorder(EventBus(), store)  # type: ignore[arg-type]
    recorder.event(kv("a"))
    recorder.event(kv("b", "restore"))  # a restore belongs to a start: no exit takes it
    recorder.event(exited("b"))
    recorder.event(exited("a"))
    recorder.event(exited("a", when=1.8e9 + 100))  # the next run of a saved nothing
    b_exit, a_exit, a_again = store.records
    assert b_exit.kv is None and a_again.kv is None
    assert a_exit.kv == KvRecord(model="a", action="save", slots=3, bytes=12 << 20, seconds=0.41)


def test_a_save_older_than_the_process_is_not_its_own() -> None:
    stale = kv("a", when=1.8e9)
    assert exit_record(exited(when=1.8e9 + 100, uptime=10.0), stale).kv is None
    assert exit_record(exited(when=1.8e9 + 5, uptime=10.0), stale).kv is not None
    assert exit_record(exited("c"), stale).kv is None  # another model's save


def test_a_swap_record_names_the_models_it_put_to_sleep_and_a_wake() -> None:
    slept = SwapStarted(
        swap_id=6, target="b", evict=(), set=None, cost=0, time=1.8e9, why="request 1",
        sleep=("a",),
    )  # fmt: skip
    done = SwapFinished(swap_id=6, target="b", ok=True, seconds=1.0, error=None, time=1.8e9 + 1)
    record = swap_record(slept, done)
    assert (record.slept, record.evicted, record.wake) == (("a",), (), False)
    woke = SwapStarted(
        swap_id=7, target="a", evict=("c",), set=None, cost=0, time=1.8e9 + 5, why="request 2",
        sleep=("b",), wake=True,
    )  # fmt: skip
    done = SwapFinished(swap_id=7, target="a", ok=True, seconds=0.2, error=None, time=1.8e9 + 5)
    record = swap_record(woke, done)
    assert (record.slept, record.evicted, record.wake) == (("b",), ("c",), True)
    # A start that was missed: nothing is known of sleeps or a wake.
    missed = swap_record(None, done)
    assert (missed.slept, missed.wake) == ((), False)
