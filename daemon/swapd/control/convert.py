"""The daemon's own records, translated into control-protocol payloads.

Pure functions, one per record kind. The router, the supervisors and the
log rings keep their own types (they owe nothing to the wire format); this
module is the one place that knows both sides. An event the protocol has no
dedicated kind for becomes `other`, so adding a record to the daemon never
breaks a client.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec
import trio

from swapctl import protocol as p
from swapd.config import ConfigProblem
from swapd.events import BusEvent
from swapd.history.capture import Capture
from swapd.history.recorder import RequestFinished
from swapd.history.records import (
    ExitRecord,
    HistoryRecord,
    ReloadRecord,
    RequestRecord,
    SwapRecord,
)
from swapd.history.stats import Stats
from swapd.history.store import HistoryStatus
from swapd.process.events import KvActivity, LogBatch, LogLine, ProcessExited
from swapd.process.events import StateChanged as ProcessStateChanged
from swapd.process.meter import HostSample, TreeReading
from swapd.process.states import LEGEND, TRANSITIONS, ProcessState
from swapd.router import events as rev
from swapd.router.explain import Explanation as RouterExplanation
from swapd.router.footprints import FootprintTable
from swapd.simulate.report import Report, as_payload

UNIX_TIME_FLOOR = 1e9
"""2001-09-09: a smaller stamp is a reading of trio's clock, not Unix time."""


def wall_time(stamp: float) -> float:
    """A record's time as Unix time, which the protocol promises.

    The daemon's records carry wall-clock time; a stamp below the floor is a
    reading of trio's (monotonic) scheduling clock instead, and is mapped with
    the current offset between the two clocks. Outside trio it is left as is.
    """
    if stamp >= UNIX_TIME_FLOOR:
        return stamp
    try:
        now = trio.current_time()
    except RuntimeError:
        return stamp
    return time.time() - (now - stamp)


def legend() -> list[p.StateLegend]:
    """The process state legend, generated from the supervisor's transition table."""
    out = []
    for state in ProcessState:
        following: list[str] = []
        for (source, _trigger), target in TRANSITIONS.items():
            if source is state and target is not state and str(target) not in following:
                following.append(str(target))
        out.append(
            p.StateLegend(name=str(state), description=LEGEND.get(state, ""), next=following)
        )
    return out


def decision(d: rev.Decision) -> p.Decision:
    return p.Decision(
        time=wall_time(d.time),
        model=d.model,
        action=d.action,
        why=d.reason,
        evict=list(d.evict),
        set=d.set,
        cost=d.cost,
        request=None if d.request_id is None else str(d.request_id),
        seq=d.seq,
        input=d.input,
        duration=d.duration,
        swap=d.swap_id,
        queue_length=d.queue_length,
        kv=kv_records(d.kv),
        sleep=list(d.sleep),
    )


def kv_records(items: Iterable[KvActivity]) -> list[p.KvRecord]:
    return [
        p.KvRecord(
            model=k.model,
            action=k.action,
            slots=k.slots,
            bytes=k.bytes,
            seconds=k.seconds,
            timed_out=k.timed_out,
            errors=list(k.errors),
        )
        for k in items
    ]


def explanation(x: RouterExplanation, *, asked: str, running: Iterable[str]) -> p.Explanation:
    """`asked` is the name the client used (it may be an alias of `x.model`)."""
    return p.Explanation(
        model=asked,
        resolved=x.model if x.model != asked else None,
        action=x.verdict,
        why=x.reason,
        state=x.state,
        evict=list(x.evict),
        sleep=list(x.sleep),
        set=x.set,
        cost=x.cost if x.evict or x.sleep or x.set is not None else None,
        running=list(running),
        queue_position=x.queue_ahead + 1 if x.verdict == "queue" else None,
        in_flight=sum(x.in_flight.values()),
        blocked_by=list(x.blocked_by),
        busy=dict(x.in_flight),
    )


def log_line(line: LogLine, *, history: bool = False) -> p.LogLines:
    return p.LogLines(
        time=line.time,
        source=line.source,
        text=line.text + "\n",
        history=history,
        stream=line.stream,
    )


def _other(event: BusEvent) -> p.OtherEvent:
    try:
        fields = msgspec.to_builtins(event)
    except TypeError:
        fields = {"repr": repr(event)}
    if not isinstance(fields, dict):
        fields = {"value": fields}
    stamp = fields.get("time")
    return p.OtherEvent(
        time=float(stamp) if isinstance(stamp, (int, float)) else 0.0,
        event_topic=event.topic,
        name=type(event).__name__,
        fields=fields,
    )


def event(e: BusEvent) -> p.EventData:
    """Any bus event as a protocol payload (`other` when it has no kind of its own)."""
    match e:
        case p.EventData():
            return e  # already a protocol payload (e.g. the control server's own config events)
        case ProcessStateChanged():
            return p.StateChanged(
                time=e.time, model=e.model, old=str(e.old), new=str(e.new), reason=e.reason
            )
        case LogLine():
            return log_line(e)
        case LogBatch():
            text = "".join(f"{t}\n" for t in e.texts)
            return p.LogLines(time=e.time, source=e.source, text=text, stream=e.stream)
        case rev.Decision():
            converted = decision(e)
            return p.DecisionMade(time=converted.time, decision=converted)
        case rev.SwapStarted():
            return p.SwapStarted(
                time=wall_time(e.time),
                target=e.target,
                evict=list(e.evict),
                set=e.set,
                cost=e.cost,
                why=e.why,
                swap=e.swap_id,
                sleep=list(e.sleep),
                wake=e.wake,
            )
        case rev.SwapFinished():
            error = e.error
            return p.SwapFinished(
                time=wall_time(e.time),
                target=e.target,
                ok=e.ok,
                duration=e.seconds,
                error=error.reason if error is not None else "",
                log_tail=error.log_tail if error is not None else "",
                aborted=bool(error is not None and error.aborted),
                swap=e.swap_id,
                kv=kv_records(e.kv),
            )
        case rev.RequestEvent():
            return p.RequestEvent(
                time=wall_time(e.time),
                model=e.model,
                phase=e.phase,
                request=str(e.request_id),
                detail=e.detail,
            )
        case rev.QueueChanged():
            queued: dict[str, int] = {}
            for _request_id, model in e.entries:
                queued[model] = queued.get(model, 0) + 1
            return p.QueueChanged(
                time=wall_time(e.time),
                queued=queued,
                order=[m for _, m in e.entries],
                waiting=dict(e.waiting),
            )
        case RequestFinished(record=record):
            return p.RequestEvent(
                time=record.start + (record.duration_s or 0.0),
                model=record.model or "",
                phase="finished",
                request=str(record.id),
                status=record.status,
                duration=record.duration_s,
                detail=record.outcome
                if record.reason is None
                else f"{record.outcome}: {record.reason}",
                record=request_record(record),
            )
        case _:
            return _other(e)


def models_of(e: BusEvent) -> tuple[str, ...]:
    """The models a bus event is about (none for daemon-wide events)."""
    match e:
        case ProcessStateChanged() | rev.RequestEvent() | rev.Preloaded() | rev.Decision():
            return (e.model,)
        case LogLine() | LogBatch():
            return (e.source,)
        case RequestFinished(record=record):
            return (record.model,) if record.model else ()
        case ProcessExited():
            return (e.model,)
        case rev.SwapStarted():
            return (e.target, *e.evict)
        case rev.SwapFinished():
            return (e.target,)
        case rev.QueueChanged():
            return tuple(m for _, m in e.entries)
        case p.DecisionMade():
            return (e.decision.model,)
        case p.StateChanged() | p.RequestEvent():
            return (e.model,)
        case p.SwapStarted():
            return (e.target, *e.evict)
        case p.SwapFinished():
            return (e.target,)
        case p.LogLines():
            return (e.source,)
        case _:
            return ()


def concerns(e: BusEvent, models: frozenset[str]) -> bool:
    """Whether a bus event is about one of `models` (events about no model always pass)."""
    names = [n for n in models_of(e) if n]
    return not names or any(n in models for n in names)


# ----- history ---------------------------------------------------------------


def request_record(record: RequestRecord) -> p.RequestRecord:
    """The history's record as the protocol carries it (the same fields)."""
    return msgspec.convert(record, p.RequestRecord, from_attributes=True)


def history_record(record: HistoryRecord) -> p.HistoryRecord:
    match record:
        case SwapRecord():
            return msgspec.convert(record, p.SwapRecord, from_attributes=True)
        case ExitRecord():
            return msgspec.convert(record, p.ExitRecord, from_attributes=True)
        case ReloadRecord():
            return msgspec.convert(record, p.ReloadRecord, from_attributes=True)


def stats(value: Stats) -> p.Stats:
    return msgspec.convert(value, p.Stats, from_attributes=True)


def history_info(status: HistoryStatus, captures: int) -> p.HistoryInfo:
    return p.HistoryInfo(
        path=status.path,
        available=status.available,
        error=status.error,
        written=status.written,
        dropped=status.dropped,
        pending=status.pending,
        captures=captures,
    )


def capture(value: Capture, max_body: int) -> p.Capture:
    """A capture with each body cut to `max_body` bytes (marked `truncated` if cut)."""
    cut = False
    bodies: list[bytes | None] = []
    for body in (value.req_body, value.resp_body):
        if body is not None and len(body) > max_body:
            body, cut = body[:max_body], True
        bodies.append(body)
    return p.Capture(
        id=value.id,
        req_path=value.req_path,
        req_headers=value.req_headers,
        req_body=bodies[0],
        resp_headers=value.resp_headers,
        resp_body=bodies[1],
        truncated=value.truncated or cut,
    )


# --- live meters and budgets ---------------------------------------------------------


def meters(reading: TreeReading) -> p.Meters:
    return p.Meters(
        cpu_percent=reading.cpu_percent,
        ram=reading.ram,
        vram=reading.vram,
        processes=reading.processes,
    )


def host(sample: HostSample) -> p.HostMeters:
    gpus = (
        [p.GpuMemory(index=g.index, name=g.name, used=g.used, total=g.total) for g in sample.gpus]
        if sample.gpus is not None
        else None
    )
    return p.HostMeters(
        cpu_percent=sample.cpu_percent,
        mem_used=sample.mem_used,
        mem_total=sample.mem_total,
        gpus=gpus,
    )


def footprint(table: FootprintTable, model: str) -> p.Footprint:
    m = table.models.get(model)
    sleeps = table.can_sleep(model)
    return p.Footprint(
        declared=table.declared(model),
        measured=table.measured(model),
        planned=table.planned(model),
        devices=list(m.devices) if m is not None else [],
        device=table.device_of(model),
        blind=table.blind(model),
        asleep=table.asleep_planned(model) if sleeps else None,
        asleep_measured=table.asleep_measured(model) if sleeps else None,
        wake_s=table.learned.books.costs.median_wake(model) if sleeps else None,
    )


def capacity(
    table: FootprintTable, running: Iterable[str], asleep: frozenset[str] = frozenset()
) -> list[p.CapacityUse]:
    """What the running models take of each resource (those `asleep` at their asleep
    footprint)."""
    used = table.in_use(list(running), asleep)
    sized = table.budgeting.sized
    return [
        p.CapacityUse(resource=r, used=used.get(r, 0), capacity=cap, sized=r in sized)
        for r, cap in table.capacity.items()
    ]


def problem(c: ConfigProblem) -> p.Problem:
    """A config problem on the wire; 0 line/column and empty path mean unknown."""
    return p.Problem(
        message=c.message,
        file=c.file or None,
        line=c.line or None,
        column=c.column or None,
        path=c.path or None,
    )


def simulation(report: Report, *, since: float | None, truncated: bool) -> p.Simulation:
    """A simulation's report on the wire: the very keys `swapd simulate --json` prints."""
    return msgspec.structs.replace(as_payload(report), since=since, truncated=truncated)
