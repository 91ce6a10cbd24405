"""The one object the daemon's parts hand what happened to: `Recorder`.

The relay gives it each finished request (`request`) and, with
`captureBuffer`, the bodies (`capture`); it numbers requests (`next_id`),
queues each record for the store (when there is one: `history.enabled`),
keeps captures in memory and publishes the finished request on the bus
(topic "request"), so the control socket's `request` events carry it.

Swaps, process exits and reloads are already published on the bus by the
router, the supervisors and the reloader; `follow` turns those events into
records, so none of them needs to know the history exists. KV-cache saves
and restores reach a swap's record through its `SwapFinished`; a save is
also held per model until that model's process exit, whose record it joins
(a supervisor publishes the save just before the exit it precedes).
"""

from __future__ import annotations

from typing import ClassVar

import msgspec
import trio

from swapctl import protocol as p
from swapd.events import EventBus, Subscription
from swapd.history.capture import Capture, CaptureBuffer
from swapd.history.records import (
    ExitRecord,
    KvRecord,
    ReloadRecord,
    RequestRecord,
    SwapRecord,
    SwapResult,
    exit_fields,
)
from swapd.history.store import HistoryStore
from swapd.process.events import KvActivity, ProcessExited
from swapd.router.events import SwapFinished, SwapStarted

#: Events `follow` records, and how many may wait before the oldest are lost.
FOLLOWED_TOPICS = ("swap", "exit", "config", "kv")
FOLLOW_BUFFER = 4096


class RequestFinished(msgspec.Struct, frozen=True):
    """A request's record, published once the HTTP layer has answered it."""

    topic: ClassVar[str] = "request"
    record: RequestRecord


class Recorder:
    """Request ids, records to the store, captures, and finished requests on the bus."""

    def __init__(
        self,
        bus: EventBus,
        store: HistoryStore | None = None,
        captures: CaptureBuffer | None = None,
    ) -> None:
        self.bus = bus
        self.store = store
        self.captures = captures if captures is not None else CaptureBuffer(0)
        self._next_id = store.next_request_id if store is not None else 1
        self._swaps: dict[int, SwapStarted] = {}  # swaps started, not finished yet
        self._saves: dict[str, KvActivity] = {}  # per model, the save its exit has not taken
        self._following: Subscription | None = None

    @property
    def recording(self) -> bool:
        """Records are kept (`history.enabled`, whatever the state of the disk)."""
        return self.store is not None

    def next_id(self) -> int:
        """The next request's id: one past the last one, across restarts when there is a store."""
        request_id = self._next_id
        self._next_id = request_id + 1
        return request_id

    def request(self, record: RequestRecord) -> None:
        """A finished request: to the store and, as `RequestFinished`, to the bus."""
        store = self.store
        if store is not None:
            store.record(record)
        self.bus.publish(RequestFinished(record))

    def capture(self, capture: Capture) -> None:
        self.captures.add(capture)

    # ----- events into records ----------------------------------------------

    async def follow(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Record swaps, exits and reloads as the bus publishes them, until `stop_following`
        (then what is buffered is recorded before it returns) or cancelled."""
        with self.bus.subscribe(topics=FOLLOWED_TOPICS, maxlen=FOLLOW_BUFFER) as sub:
            self._following = sub
            task_status.started()
            async for event in sub:
                self.event(event)

    def stop_following(self) -> None:
        """End `follow` once it has recorded the events already published."""
        if self._following is not None:
            self._following.close()

    def event(self, event: object) -> None:
        """One bus event: recorded if it is a swap's end, an exit or a reload."""
        store = self.store
        if store is None:
            return
        match event:
            case SwapStarted():
                self._swaps[event.swap_id] = event
            case SwapFinished():
                store.record(swap_record(self._swaps.pop(event.swap_id, None), event))
            case KvActivity(action="save"):
                self._saves[event.model] = event
            case ProcessExited():
                store.record(exit_record(event, self._saves.pop(event.model, None)))
            case p.ConfigReloaded():
                store.record(reload_record(event))


def swap_record(started: SwapStarted | None, finished: SwapFinished) -> SwapRecord:
    """A swap's record from its start and end events (the start may have been lost)."""
    error = finished.error
    result: SwapResult = "ok"
    if error is not None:
        result = "aborted" if error.aborted else "failed"
    begun = started.time if started is not None else finished.time - finished.seconds
    return SwapRecord(
        swap_id=finished.swap_id,
        start=begun,
        target=finished.target,
        evicted=started.evict if started is not None else (),
        why=started.why if started is not None else "",
        set=started.set if started is not None else None,
        cost=started.cost if started is not None else 0,
        load_s=finished.seconds,
        result=result,
        error=error.reason if error is not None else None,
        kv=tuple(kv_record(k) for k in finished.kv),
        slept=started.sleep if started is not None else (),
        wake=started.wake if started is not None else False,
    )


def kv_record(activity: KvActivity) -> KvRecord:
    return KvRecord(
        model=activity.model,
        action=activity.action,
        slots=activity.slots,
        bytes=activity.bytes,
        seconds=activity.seconds,
        timed_out=activity.timed_out,
        errors=activity.errors,
    )


def exit_record(event: ProcessExited, save: KvActivity | None = None) -> ExitRecord:
    """An exit's record, with the save made before it: `save` counts only if it was made
    while this process lived (a save left from an earlier process is not this one's)."""
    code, signal = exit_fields(event.returncode) if event.returncode is not None else (None, None)
    if save is not None and (save.model != event.model or save.time < event.time - event.uptime):
        save = None
    return ExitRecord(
        time=event.time,
        model=event.model,
        pid=event.pid,
        exit_code=code,
        signal=signal,
        reason=event.reason,
        failed=event.failed,
        uptime_s=event.uptime,
        kv=kv_record(save) if save is not None else None,
    )


def reload_record(event: p.ConfigReloaded) -> ReloadRecord:
    return ReloadRecord(
        time=event.time,
        ok=event.ok,
        source=event.source,
        path=event.path,
        added=tuple(event.added),
        removed=tuple(event.removed),
        changed=tuple(event.changed_labels()),
        errors=tuple(problem.format() for problem in event.problems),
    )
