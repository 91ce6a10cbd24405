"""An in-memory ControlBackend: real EventBus, scripted models, no processes.

It behaves like the daemon from the socket's point of view: loads change
states and publish `state_changed` events, unknown models are `not_found`,
a model named in `failing` fails to load with a log tail, and reload answers
with whatever `reload_outcome` holds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
import trio

from swapctl import protocol as p
from swapd.control.interface import ControlError, EventSource
from swapd.events import EventBus

LEGEND = [
    p.StateLegend(name="stopped", description="not running", next=["starting"]),
    p.StateLegend(name="starting", description="waiting for health", next=["ready", "stopped"]),
    p.StateLegend(name="ready", description="serving", next=["stopping"]),
    p.StateLegend(name="stopping", description="being stopped", next=["stopped"]),
]


class FakeBackend:
    def __init__(self, models: Sequence[str] = ("alpha", "beta", "gamma")) -> None:
        self.bus = EventBus(history=64)
        self.started = time.time()
        self.models_ = {
            m: p.ModelInfo(
                id=m,
                state="stopped",
                port=5800 + i,
                proxy=f"http://127.0.0.1:{5800 + i}",
                ttl=60.0,
                argv=["fake-upstream", "--port", str(5800 + i)],
                sets=["s1"] if i % 2 == 0 else ["s2"],
            )
            for i, m in enumerate(models)
        }
        self.failing: set[str] = set()
        self.logs_: dict[str, str] = {"proxy": "proxy started\n"}
        self.reload_outcome: p.ReloadResult | ControlError = p.ReloadResult(
            path="/etc/swapd/config.yaml", unchanged=list(models)
        )
        self.load_gate: trio.Event | None = None
        """When set, loads wait for it: lets a test hold a load in progress."""
        self.loads_started = 0
        self.load_entered = trio.Event()
        """Set when a load has started (and is possibly waiting for load_gate)."""
        self.decisions_: list[p.Decision] = []
        self.maxlens: list[int] = []
        """Buffer sizes for the next subscriptions, overriding the server's (first used first)."""
        self.records_: list[p.RequestRecord] = []
        """Finished requests, oldest first (see `finish`)."""
        self.history_: list[p.HistoryRecord] = []
        self.captures_: dict[int, p.Capture] = {}

    # --- queries ------------------------------------------------------------

    def info(self) -> p.DaemonInfo:
        return p.DaemonInfo(
            version="0.1.0-test",
            pid=4242,
            started=self.started,
            config_path="/etc/swapd/config.yaml",
            router="matrix",
            listen=["127.0.0.1:8080"],
        )

    def status(self) -> p.Status:
        states: dict[str, int] = {}
        for m in self.models_.values():
            states[m.state] = states.get(m.state, 0) + 1
        running = [m.id for m in self.models_.values() if m.state != "stopped"]
        return p.Status(
            daemon=self.info(),
            uptime=12.5,
            models=len(self.models_),
            states=states,
            running=running,
            running_set="s1" if running else None,
            legend=LEGEND,
        )

    def models(self) -> list[p.ModelInfo]:
        return list(self.models_.values())

    def _model(self, model: str) -> p.ModelInfo:
        try:
            return self.models_[model]
        except KeyError:
            raise ControlError("not_found", f"model {model!r} not found") from None

    def logs(self, source: str, max_bytes: int) -> p.LogText:
        if source != "proxy":
            self._model(source)
        text = self.logs_.get(source, "")
        data = text.encode()
        truncated = len(data) > max_bytes
        if truncated:
            text = data[len(data) - max_bytes :].decode(errors="replace")
        return p.LogText(source=source, text=text, truncated=truncated)

    def explain(self, model: str) -> p.Explanation:
        info = self._model(model)
        running = [m.id for m in self.models_.values() if m.state == "ready"]
        if info.state == "ready":
            return p.Explanation(model=model, action="serve", why="ready", state=info.state)
        evict = [m for m in running if m != model]
        return p.Explanation(
            model=model,
            action="swap" if evict else "start",
            why="not in a set with the running models" if evict else "nothing running",
            state=info.state,
            evict=evict,
            set=info.sets[0] if info.sets else None,
            cost=len(evict),
            running=running,
        )

    def matrix(self, model: str | None, limit: int) -> p.MatrixView:
        combos = [[m] for m in self.models_]
        return p.MatrixView(
            router="matrix",
            sets=[
                p.MatrixSet(
                    name="s1",
                    dsl=" | ".join(self.models_),
                    combinations=combos[:limit],
                    truncated=len(combos) > limit,
                    more=max(0, len(combos) - limit) or None,
                )
            ],
            running=[m.id for m in self.models_.values() if m.state == "ready"],
            running_set="s1",
            evict_costs={m: 1 for m in self.models_},
            explain=self.explain(model) if model is not None else None,
        )

    def decisions(self, limit: int) -> list[p.Decision]:
        return self.decisions_[-limit:] if limit else []

    # --- actions --------------------------------------------------------------

    def _set_state(self, model: str, new: str, reason: str = "") -> None:
        info = self.models_[model]
        self.models_[model] = msgspec.structs.replace(info, state=new)
        self.bus.publish(
            p.StateChanged(time=time.time(), model=model, old=info.state, new=new, reason=reason)
        )

    async def load(self, model: str) -> p.LoadResult:
        info = self._model(model)
        if info.state == "ready":
            return p.LoadResult(model=model, state="ready")
        self.loads_started += 1
        self.load_entered.set()
        self._set_state(model, "starting", "load")
        if self.load_gate is not None:
            await self.load_gate.wait()
        if model in self.failing:
            self._set_state(model, "stopped", "start failed")
            raise ControlError(
                "load_failed", f"{model} exited with code 1", log_tail="error: no such file\n"
            )
        self._set_state(model, "ready", "healthy")
        self.decisions_.append(p.Decision(time=time.time(), model=model, action="start"))
        return p.LoadResult(model=model, state="ready", seconds=0.25)

    async def unload(self, models: Sequence[str] | None, now: bool = False) -> p.UnloadReply:
        names = list(self.models_) if models is None else list(models)
        for m in names:
            self._model(m)
        stopped = []
        for m in names:
            if self.models_[m].state != "stopped":
                self._set_state(m, "stopped", "unload")
                stopped.append(m)
        await trio.lowlevel.checkpoint()
        return p.UnloadReply(models=stopped)

    async def reload(self) -> p.ReloadResult:
        await trio.lowlevel.checkpoint()
        if isinstance(self.reload_outcome, ControlError):
            raise self.reload_outcome
        return self.reload_outcome

    def subscribe(
        self,
        topics: frozenset[str],
        models: frozenset[str] | None,
        history: bool,
        maxlen: int,
    ) -> EventSource:
        def about(event: object) -> bool:
            if models is None:
                return True
            name = getattr(event, "model", None) or getattr(event, "source", None)
            name = name or getattr(event, "target", None)
            return name in models

        if self.maxlens:
            maxlen = self.maxlens.pop(0)
        return self.bus.subscribe(topics=topics, predicate=about, maxlen=maxlen, history=history)

    # --- history ----------------------------------------------------------------

    def finish(self, record: p.RequestRecord) -> None:
        """A request finished: kept, and published as the daemon publishes it."""
        self.records_.append(record)
        self.bus.publish(
            p.RequestEvent(
                time=record.start, model=record.model or "", phase="finished",
                request=str(record.id), status=record.status, duration=record.duration_s,
                record=record,
            )
        )  # fmt: skip

    async def activity(self, query: p.ActivityRequest) -> list[p.RequestRecord]:
        await trio.lowlevel.checkpoint()
        out = [
            r
            for r in reversed(self.records_)
            if (query.model is None or r.model == query.model)
            and (query.outcome is None or r.outcome == query.outcome)
            and (query.since is None or r.start >= query.since)
            and (query.until is None or r.start < query.until)
        ]
        return out[: max(1, query.limit)]

    async def history(self, query: p.HistoryRequest) -> list[p.HistoryRecord]:
        await trio.lowlevel.checkpoint()
        return list(reversed(self.history_))[: max(1, query.limit)]

    async def stats(self, since: float | None, until: float | None) -> p.Stats:
        await trio.lowlevel.checkpoint()
        models: dict[str, int] = {}
        for r in self.records_:
            models[r.model or "?"] = models.get(r.model or "?", 0) + 1
        end = time.time() if until is None else until
        return p.Stats(
            since=end - 3600 if since is None else since,
            until=end,
            models=[p.ModelStats(model=m, requests=n) for m, n in sorted(models.items())],
        )

    async def simulate(self, request: p.SimulateRequest) -> p.Simulation:
        await trio.lowlevel.checkpoint()
        raise ControlError("unavailable", "this fake keeps no history to simulate")

    def capture(self, request_id: int) -> p.Capture:
        if request_id not in self.captures_:
            raise ControlError("not_found", f"no capture of request {request_id}")
        return self.captures_[request_id]
