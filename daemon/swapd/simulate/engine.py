"""The simulation: the daemon's own scheduler and swapper on a virtual clock.

`simulate(loaded, trace, load_times)` builds the `FifoScheduler` exactly as
the daemon does (`scheduler_from_config`) and feeds it the inputs the run
loop would: a `RequestIn` at each arrival, a `SwapDone` when a load ends, a
`ServeDone` when the upstream has answered. Each comes with `Facts` taken
before it is handled, as the run loop takes them. Only three things are
simulated, and simply:

* the clock: an event queue; nothing takes time but loads and answers;
* the processes: a stop is instant, a start takes the model's load time,
  a swap whose target is already ready loads nothing; a model with a `ttl`
  stops once idle that long, one with `sleepAfter` falls asleep (the
  daemon's own `IdleClock`), and a swap to it is a wake, which takes its
  wake time; a model a budget swap puts to sleep to make room falls asleep
  at once (as a stop is instant), and the planner prices that sleep at the
  model's wake time, as the daemon prices it at its measured wakes;
* the upstream: a granted request holds its model for its `service` time.

Clients never leave, nothing fails to load, no config is reloaded. Names are
resolved to model IDs as the HTTP layer does (ID, then alias); an unknown
name reaches the scheduler as it is and is refused there.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from swapd.config import LoadedConfig
from swapd.process.states import ProcessState
from swapd.process.ttl import IdleClock
from swapd.router.budget_books import Books
from swapd.router.build import scheduler_from_config
from swapd.router.events import (
    AnyInput,
    Decision,
    Facts,
    Failure,
    FailureKind,
    RequestIn,
    Retired,
    ServeDone,
    SwapDone,
    SwapError,
    SwapPlan,
    UnloadFinished,
)
from swapd.router.footprints import Learned
from swapd.simulate.trace import TraceRequest

READY, STARTING, ASLEEP = ProcessState.READY, ProcessState.STARTING, ProcessState.ASLEEP
#: Seconds a load takes for a model with no load time.
DEFAULT_LOAD_TIME = 1.0
_NO_ONE: frozenset[int] = frozenset()


@dataclass(slots=True)
class RequestResult:
    """What became of one trace request (`index` into the trace)."""

    index: int
    model: str
    """The model ID it resolved to, or the name sent when it resolves to none."""
    arrival: float
    granted: float | None = None
    failure: FailureKind | None = None

    @property
    def wait(self) -> float | None:
        """Seconds from arrival to grant (queue plus load); None if never granted."""
        return None if self.granted is None else self.granted - self.arrival


@dataclass(frozen=True, slots=True)
class Load:
    """One start of a model's process, or one wake of it (`wake`) from sleep."""

    model: str
    start: float
    seconds: float
    evicted: tuple[str, ...]
    wake: bool = False
    slept: tuple[str, ...] = ()
    """The models its swap put to sleep to make room."""


@dataclass(slots=True)
class SimResult:
    """A run: every request's fate, every load, and the queue's peaks."""

    requests: list[RequestResult]
    loads: list[Load]
    max_wait: float
    models: tuple[str, ...]
    """The model IDs of the config, in its order."""
    peak_queue: dict[str, int] = field(default_factory=dict)
    """Per model, the most requests admitted and not yet granted at once."""
    peak_queue_total: int = 0
    end: float = 0.0
    """The virtual time of the last event."""


# Event kinds on the virtual clock; at equal times, earlier scheduled go first.
_SWAP_READY, _SERVED, _TTL, _INPUT = 0, 1, 2, 3


class Simulation:
    """One run of a trace through one config; `run()` once. Implements `Effects`."""

    def __init__(
        self,
        loaded: LoadedConfig,
        trace: Sequence[TraceRequest],
        load_times: Mapping[str, float],
        *,
        wake_times: Mapping[str, float] | None = None,
        learned: Learned | None = None,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        self.loaded = loaded
        self.trace = trace
        self.load_times = load_times
        self.wake_times = wake_times or {}
        self.on_decision = on_decision
        learned = _with_wakes(learned, self.wake_times)
        self.now = 0.0
        self.states: dict[str, ProcessState] = {}
        self.idle: dict[str, IdleClock] = {
            m: IdleClock(float(cfg.ttl), sleep_after=float(cfg.sleep.after) if cfg.sleep else 0.0)
            for m, cfg in loaded.models.items()
        }
        self.ttl_generation: dict[str, int] = {}
        self.events: list[tuple[float, int, int, object]] = []
        self.seq = 0
        self.results: list[RequestResult] = []
        self.loads: list[Load] = []
        self.pending: dict[str, int] = {}
        self.pending_total = 0
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self.admitted: set[int] = set()
        #: Loads in progress: swap id -> target.
        self.swaps: dict[int, str] = {}
        self.scheduler = scheduler_from_config(loaded, self, learned)

    # ------------------------------------------------------------------ run

    def run(self) -> SimResult:
        resolve = self.loaded.resolve
        handle = self._handle
        events = self.events
        trace = self.trace
        results = self.results
        next_arrival = 0
        total = len(trace)
        while next_arrival < total or events:
            if next_arrival < total and (not events or trace[next_arrival].t < events[0][0]):
                req = trace[next_arrival]
                self.now = max(self.now, req.t)
                model = resolve(req.model) or req.model
                results.append(RequestResult(next_arrival, model, self.now))
                next_arrival += 1
                handle(RequestIn(request_id=next_arrival, model=model))
                continue
            when, _, kind, payload = heapq.heappop(events)
            self.now = when
            if kind == _SWAP_READY:
                swap_id = payload
                assert isinstance(swap_id, int)
                target = self.swaps.pop(swap_id, None)
                if target is None:
                    continue  # aborted: its SwapDone was posted at the abort
                self._became_ready(target)
                handle(SwapDone(swap_id=swap_id, model=target))
            elif kind == _SERVED:
                assert isinstance(payload, ServeDone)
                clock = self.idle[payload.model]
                clock.release(self.now)
                self._arm_idle(payload.model)
                handle(payload)
            elif kind == _TTL:
                assert isinstance(payload, tuple)
                model, generation = payload
                if self.ttl_generation.get(model) != generation:
                    continue  # used since: a later check is armed
                if self.idle[model].expired(self.now) and self.states.get(model) in (READY, ASLEEP):
                    self._stopped(model)
                elif self.states.get(model) == READY and self.idle[model].sleep_due(self.now):
                    self.states[model] = ASLEEP
            else:
                assert isinstance(payload, (SwapDone, UnloadFinished, Retired))
                handle(payload)
        return SimResult(
            requests=results,
            loads=self.loads,
            max_wait=float(self.loaded.config.routing.fifo.max_wait),
            models=tuple(self.loaded.models),
            peak_queue=self.peak,
            peak_queue_total=self.peak_total,
            end=self.now,
        )

    def _handle(self, inp: AnyInput) -> None:
        facts = Facts(time=self.now, wall=self.now, running=dict(self.states), gone=_NO_ONE)
        self.scheduler.handle(inp, facts)

    def _at(self, when: float, kind: int, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, payload))

    # -------------------------------------------------------- the processes

    def _became_ready(self, model: str) -> None:
        self.states[model] = READY
        self.idle[model].on_ready(self.now)
        self._arm_idle(model)

    def _stopped(self, model: str) -> None:
        self.states.pop(model, None)
        self.idle[model].on_not_ready()
        self.ttl_generation[model] = self.ttl_generation.get(model, 0) + 1

    def _arm_idle(self, model: str) -> None:
        """Check for the TTL and the sleep deadlines of an idle model (a use re-arms them)."""
        clock = self.idle[model]
        deadlines = {clock.deadline(), clock.sleep_deadline()} - {None}
        if not deadlines:
            return
        generation = self.ttl_generation.get(model, 0) + 1
        self.ttl_generation[model] = generation
        for deadline in sorted(d for d in deadlines if d is not None):
            self._at(deadline, _TTL, (model, generation))

    def load_time(self, model: str) -> float:
        """Seconds this load of `model` takes: its load time, 1 s if it has none.
        Called once per load, in order, so a subclass may hand out measured loads."""
        return self.load_times.get(model, DEFAULT_LOAD_TIME)

    def wake_time(self, model: str) -> float:
        """Seconds this wake of `model` from sleep takes: its wake time, 1 s if none."""
        return self.wake_times.get(model, DEFAULT_LOAD_TIME)

    # -------------------------------------------------------------- effects

    def admit(self, request_id: int, model: str) -> None:
        self.admitted.add(request_id)
        n = self.pending[model] = self.pending.get(model, 0) + 1
        if n > self.peak.get(model, 0):
            self.peak[model] = n
        self.pending_total += 1
        if self.pending_total > self.peak_total:
            self.peak_total = self.pending_total

    def _left_queue(self, request_id: int, model: str) -> None:
        if request_id in self.admitted:
            self.admitted.discard(request_id)
            self.pending[model] -= 1
            self.pending_total -= 1

    def grant(self, request_id: int, model: str) -> None:
        self._left_queue(request_id, model)
        self.results[request_id - 1].granted = self.now
        self.idle[model].hold()
        service = self.trace[request_id - 1].service
        self._at(self.now + service, _SERVED, ServeDone(request_id=request_id, model=model))

    def fail(self, request_id: int, failure: Failure) -> None:
        self._left_queue(request_id, failure.model)
        self.results[request_id - 1].failure = failure.kind

    def waiting(self, request_id: int, swap_id: int, model: str) -> None:
        pass

    def queued(self, positions: Mapping[int, int]) -> None:
        pass

    def start_swap(self, plan: SwapPlan) -> None:
        for model in plan.evict:
            self._stopped(model)
        for model in plan.sleep:
            if self.states.get(model) == READY:
                self.states[model] = ASLEEP
        target = plan.target
        if self.states.get(target) == READY:
            # ensure_ready returns at once: the swap only evicted others.
            self._at(self.now, _INPUT, SwapDone(swap_id=plan.swap_id, model=target))
            return
        waking = self.states.get(target) == ASLEEP
        seconds = self.wake_time(target) if waking else self.load_time(target)
        self.states[target] = STARTING
        self.swaps[plan.swap_id] = target
        self.loads.append(Load(target, self.now, seconds, plan.evict, waking, plan.sleep))
        self._at(self.now + seconds, _SWAP_READY, plan.swap_id)

    def abort_swap(self, swap_id: int, model: str, stop_target: bool) -> None:
        if self.swaps.pop(swap_id, None) is not None or stop_target:
            self._stopped(model)
        error = SwapError(reason="load aborted", aborted=True)
        self._at(self.now, _INPUT, SwapDone(swap_id=swap_id, model=model, error=error))

    def stop(self, models: tuple[str, ...], reason: str) -> None:
        for model in models:
            self._stopped(model)
        self._at(self.now, _INPUT, UnloadFinished(models=models))

    def cut(self, request_ids: tuple[int, ...], model: str, reason: str) -> None:
        pass  # no unloads are simulated

    def decided(self, decision: Decision) -> None:
        if self.on_decision is not None:
            self.on_decision(decision)

    def retire(self, models: tuple[str, ...], reason: str) -> None:
        for model in models:
            self._stopped(model)
        self._at(self.now, _INPUT, Retired(models=models))


def _with_wakes(learned: Learned | None, wake_times: Mapping[str, float]) -> Learned:
    """A copy of `learned` (the caller's is never changed) whose books know `wake_times`
    as the only measured wakes of those models: what the budget planner prices a sleep at
    (the wakes the books kept from the history do not outvote a `--wake-time`)."""
    base = learned or Learned()
    data = base.books.data()
    wakes = {**data.wakes, **{m: [seconds] for m, seconds in wake_times.items()}}
    books = Books(msgspec.structs.replace(data, wakes=wakes))
    return Learned(books, base.live, base.live_asleep, dict(base.placed))


def simulate(
    loaded: LoadedConfig,
    trace: Sequence[TraceRequest],
    load_times: Mapping[str, float],
    *,
    wake_times: Mapping[str, float] | None = None,
    learned: Learned | None = None,
    on_decision: Callable[[Decision], None] | None = None,
) -> SimResult:
    """Replay `trace` (sorted by `t`) through the scheduler and swapper of `loaded`.

    `load_times`: seconds per model ID to become ready (1 s for a model not in it);
    `wake_times`: the same for a wake from sleep. `learned`: the measured footprints
    and load times budgets plan with (as the daemon's history keeps them).
    """
    for before, after in itertools.pairwise(trace):
        if after.t < before.t:
            raise ValueError(f"the trace is not sorted by arrival ({after.t} after {before.t})")
    return Simulation(
        loaded, trace, load_times, wake_times=wake_times, learned=learned, on_decision=on_decision
    ).run()
