"""What the HTTP layer needs from the rest of the daemon, as protocols.

`swapd.daemon` passes the real router, process pool and event bus; tests may
pass the same objects built on fakes of the upstream processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import trio

from swapd.events import EventBus
from swapd.history.recorder import Recorder
from swapd.http.budget import BodyBudget
from swapd.http.disconnect import Watches
from swapd.http.inflight import InFlightRegistry
from swapd.http.logs_hub import LogHub
from swapd.http.metrics import Metrics
from swapd.http.names import Resolver
from swapd.http.settings import ApiSettings
from swapd.http.upstream import UpstreamClient
from swapd.ports import PoolPort, RouterPort
from swapd.process.meter import MeterView


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


@dataclass
class Services:
    """The daemon's parts the app talks to. `settings` may be replaced on reload."""

    settings: ApiSettings
    router: RouterPort
    pool: PoolPort
    bus: EventBus
    logs: LogHub
    client: UpstreamClient = field(default_factory=UpstreamClient)
    metrics: Metrics = field(default_factory=Metrics)
    body_budget: BodyBudget = field(default_factory=BodyBudget)
    watches: Watches = field(default_factory=Watches)
    """Starts requests' disconnect watches; `run` it for the app's lifetime."""
    recorder: Recorder | None = None
    """Where finished requests go (see `records`)."""
    records: Recorder = field(init=False)
    """`recorder`, or one that keeps nothing (it numbers requests and publishes them)."""
    meter: MeterView | None = None
    resolver: Resolver = field(init=False)
    in_flight: InFlightRegistry = field(init=False)
    closing: trio.Event = field(default_factory=trio.Event)
    _streams: set[Any] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.records = self.recorder if self.recorder is not None else Recorder(self.bus)
        self.resolver = Resolver(self.settings)
        self.in_flight = InFlightRegistry(self.bus)

    def track(self, subscription: C) -> C:
        """Register a long-lived stream's subscription so `close_streams` can end it."""
        if self.closing.is_set():
            subscription.close()
        self._streams.add(subscription)
        return subscription

    def close_streams(self) -> None:
        """End every event and log stream (shutdown step 2: the HTTP drain must not wait)."""
        self.closing.set()
        for subscription in tuple(self._streams):
            subscription.close()
        self._streams.clear()

    def replace_settings(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.resolver = Resolver(settings)

    def state_of(self, model_id: str) -> str:
        """A model's process state as text ("stopped" when unknown); for reporting only."""
        state = self.pool.states().get(model_id)
        return "stopped" if state is None else state.value
