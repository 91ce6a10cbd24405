"""Traces and load times from swapd's own history file (read-only).

A request record becomes a trace request: its arrival relative to the first
one, the name the client sent, and its service time, the duration minus the
time it spent queued and waiting for a load. A model's measured load time is
the median of its last successful swaps' durations.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Iterator
from pathlib import Path

from swapd.history.database import Database
from swapd.history.records import RequestRecord
from swapd.history.rows import REQUESTS
from swapd.simulate.trace import TraceRequest

#: How many of a model's latest loads its median is taken over.
LOAD_SAMPLES = 50


def trace_request(record: RequestRecord, origin: float) -> TraceRequest | None:
    """The trace request for one record (`origin`: Unix time of the trace's start);
    None for a request that named no model or was relayed to a peer (never routed)."""
    name = record.requested or record.model
    if name is None or record.peer is not None:
        return None
    waited = (record.queued_s or 0.0) + (record.load_wait_s or 0.0)
    service = max(0.0, (record.duration_s or 0.0) - waited)
    return TraceRequest(
        t=max(0.0, record.start - origin), model=name, service=service, stream=record.stream
    )


def trace_from_records(records: Iterable[RequestRecord]) -> list[TraceRequest]:
    """A trace of these records (any order), starting at the earliest arrival."""
    ordered = sorted(records, key=lambda r: r.start)
    if not ordered:
        return []
    origin = ordered[0].start
    return [t for r in ordered if (t := trace_request(r, origin)) is not None]


def request_records(
    db: Database, since: float | None, limit: int | None = None
) -> Iterator[RequestRecord]:
    """Every request kept since `since` (Unix seconds; None: all) that a trace holds
    (it named a model and was not relayed to a peer), oldest first; with `limit`,
    only the latest that many."""
    where = " WHERE peer IS NULL AND COALESCE(requested, model) IS NOT NULL"
    params: list[float] = []
    if since is not None:
        where += " AND start >= ?"
        params.append(since)
    cols, table = REQUESTS.select_columns, REQUESTS.name
    if limit is None:
        sql = f"SELECT {cols} FROM {table}{where} ORDER BY start, seq"
        for row in db.conn.execute(sql, params):
            yield REQUESTS.from_row(row)
        return
    sql = f"SELECT {cols} FROM {table}{where} ORDER BY start DESC, seq DESC LIMIT ?"
    rows = db.conn.execute(sql, [*params, limit]).fetchall()
    for row in reversed(rows):
        yield REQUESTS.from_row(row)


def measured_load_time(db: Database, model: str) -> float | None:
    """The median of `model`'s latest successful load times, None when none was kept."""
    times = [t for t in db.load_times(model, LOAD_SAMPLES) if math.isfinite(t) and t >= 0]
    return statistics.median(times) if times else None


def open_history_file(path: Path) -> Database:
    """The history file, read-only (`HistoryUnavailable` when there is none)."""
    return Database.open_reader(path)
