"""Requests in flight through the HTTP layer, published on the bus.

The relay registers every model request once its model is resolved and
removes it when the handler returns (normally, with an error, or because the
client left). Each change is an `InFlight` event (topic "inflight"); the
registry keeps the current set for the initial snapshot of `/api/events`.
Credentials are never recorded (docs/compat.md, In-flight requests).
"""

from __future__ import annotations

import itertools
import time
from typing import ClassVar, Literal

import msgspec

from swapd.events import EventBus


class InFlightRequest(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    model: str
    req_path: str
    method: str
    remote_ip: str
    started: float  # wall clock, seconds since the epoch


class InFlight(msgspec.Struct, frozen=True, kw_only=True):
    topic: ClassVar[str] = "inflight"

    operation: Literal["upsert", "remove"]
    request: InFlightRequest


class InFlightRegistry:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._ids = itertools.count(1)
        self._current: dict[str, InFlightRequest] = {}

    def add(
        self, model: str, path: str, method: str, remote_ip: str, request_id: int | None = None
    ) -> InFlightRequest:
        """Register a request; `request_id` is its record's id (else one is drawn here)."""
        request = InFlightRequest(
            id=str(next(self._ids) if request_id is None else request_id),
            model=model,
            req_path=path,
            method=method,
            remote_ip=remote_ip,
            started=time.time(),
        )
        self._current[request.id] = request
        self.bus.publish(InFlight(operation="upsert", request=request))
        return request

    def remove(self, request: InFlightRequest) -> None:
        if self._current.pop(request.id, None) is not None:
            self.bus.publish(InFlight(operation="remove", request=request))

    def snapshot(self) -> list[InFlightRequest]:
        return list(self._current.values())
