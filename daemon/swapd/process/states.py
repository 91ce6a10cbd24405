"""The process lifecycle as one table: states, triggers and legal transitions.

The supervisor consults `TRANSITIONS` for every change of state, the tests
iterate over it, and the docs and the TUI legend are rendered from it
(`render_table`, `LEGEND`), in the manner of h11's `_state.py`. A transition
that is not in the table is a bug and raises `IllegalTransition`.

Deliberate deviations from llama-swap (docs/compat.md): a `stop` that
aborts a start goes through `stopping` (the child is being torn down, which
may take its whole grace period) instead of jumping straight to `stopped`;
and a model that ended on its own (a failed start, a crash) is `failed`, not
`stopped`, until it is started again, so an operator never mistakes a crash
for a clean stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from swapctl import protocol


class ProcessState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    ASLEEP = "asleep"
    STOPPING = "stopping"
    FAILED = "failed"
    SHUTDOWN = "shutdown"


class Trigger(StrEnum):
    """What moved the supervisor; each is handled inside the supervisor task."""

    START = "start"  # ensure_ready() found the model stopped
    HEALTHY = "healthy"  # the health check answered 200 (or checkEndpoint is none)
    START_FAILED = "start_failed"  # spawn error, exited during start, health timeout
    STOP = "stop"  # stop(): API unload, eviction, TTL
    STOPPED = "stopped"  # the child and its process group are gone
    EXITED = "exited"  # the child exited on its own while ready
    SHUTDOWN = "shutdown"  # the supervisor's lifetime ended (swapd stopping, reload)
    SLEEP = "sleep"  # its sleep action succeeded (sleepAfter, or a swap making room)


S, T = ProcessState, Trigger

TRANSITIONS: Mapping[tuple[ProcessState, Trigger], ProcessState] = MappingProxyType(
    {
        (S.STOPPED, T.START): S.STARTING,
        (S.STOPPED, T.STOP): S.STOPPED,
        (S.STOPPED, T.SHUTDOWN): S.SHUTDOWN,
        (S.STARTING, T.HEALTHY): S.READY,
        (S.STARTING, T.START_FAILED): S.FAILED,
        (S.STARTING, T.STOP): S.STOPPING,
        (S.STARTING, T.SHUTDOWN): S.SHUTDOWN,
        (S.READY, T.STOP): S.STOPPING,
        (S.READY, T.EXITED): S.FAILED,
        (S.READY, T.SHUTDOWN): S.SHUTDOWN,
        (S.STOPPING, T.STOPPED): S.STOPPED,
        (S.STOPPING, T.SHUTDOWN): S.SHUTDOWN,
        (S.FAILED, T.START): S.STARTING,
        (S.FAILED, T.STOP): S.FAILED,
        (S.FAILED, T.SHUTDOWN): S.SHUTDOWN,
        # sleep instead of kill: the process lives, its accelerator memory is released
        (S.READY, T.SLEEP): S.ASLEEP,
        (S.ASLEEP, T.START): S.STARTING,
        (S.ASLEEP, T.STOP): S.STOPPING,
        (S.ASLEEP, T.EXITED): S.FAILED,
        (S.ASLEEP, T.SHUTDOWN): S.SHUTDOWN,
    }
)

NOTES: Mapping[tuple[ProcessState, Trigger], str] = MappingProxyType(
    {
        (S.STOPPED, T.START): "spawn the argv, then poll the health check",
        (S.STOPPED, T.STOP): "no-op: publishes nothing, wakes nobody",
        (S.STOPPED, T.SHUTDOWN): "the supervisor exits",
        (S.STARTING, T.HEALTHY): "every waiter of this start gets success; TTL clock starts",
        (S.STARTING, T.START_FAILED): "child torn down; every waiter gets the StartError; counted",
        (S.STARTING, T.STOP): "start aborted: waiters get StartAborted, the child is stopped",
        (S.STARTING, T.SHUTDOWN): "start aborted, child killed with a 1 s grace",
        (S.READY, T.STOP): "cmdStop or SIGTERM to the group; SIGKILL after the grace",
        (S.READY, T.EXITED): "crash: logged with how it ended, counted; no automatic restart",
        (S.READY, T.SHUTDOWN): "child killed with a 1 s grace",
        (S.STOPPING, T.STOPPED): "requests that arrived meanwhile are handled now",
        (S.STOPPING, T.SHUTDOWN): "the stop is cut short: SIGKILL after a 1 s grace",
        (S.FAILED, T.START): "a new request starts it again, as from stopped",
        (S.FAILED, T.STOP): "no-op: it stays failed, with its reason",
        (S.FAILED, T.SHUTDOWN): "the supervisor exits",
        (S.READY, T.SLEEP): "sleep endpoint or cmdSleep succeeded; the TTL clock keeps running",
        (S.ASLEEP, T.START): "a request wakes it: wake endpoint or cmdWake, then the health check",
        (S.ASLEEP, T.STOP): "TTL, eviction or unload: stopped as from ready (no slots saved)",
        (S.ASLEEP, T.EXITED): "crash while asleep: logged, counted; no automatic restart",
        (S.ASLEEP, T.SHUTDOWN): "child killed with a 1 s grace",
    }
)

LEGEND: Mapping[ProcessState, str] = MappingProxyType(
    {
        S.STOPPED: "not running; the next request starts it",
        S.STARTING: "spawned, waiting for its health check to answer 200",
        S.READY: "serving requests",
        S.STOPPING: "being stopped; requests that arrive now wait, then start it again",
        S.FAILED: "ended on its own (failed start, crash); the next request starts it again",
        S.SHUTDOWN: "its supervisor has exited (swapd stopping or config reloaded)",
        S.ASLEEP: "process alive, accelerator memory released; the next request wakes it",
    }
)

#: The states in which a model holds its resources (the protocol's definition, typed).
RUNNING_STATES: frozenset[ProcessState] = frozenset(map(ProcessState, protocol.RUNNING_STATES))


class IllegalTransition(RuntimeError):
    def __init__(self, state: ProcessState, trigger: Trigger) -> None:
        super().__init__(f"no transition from {state} on {trigger}")
        self.state = state
        self.trigger = trigger


def next_state(state: ProcessState, trigger: Trigger) -> ProcessState:
    """The state after `trigger` in `state`; raises IllegalTransition if the table has no row."""
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(state, trigger) from None


def triggers_from(state: ProcessState) -> tuple[Trigger, ...]:
    """The triggers that `state` accepts, in table order."""
    return tuple(t for (s, t) in TRANSITIONS if s == state)


def render_table() -> str:
    """The transition table as Markdown, for the docs."""
    rows = ["| from | trigger | to | what happens |", "|---|---|---|---|"]
    for (state, trigger), target in TRANSITIONS.items():
        rows.append(f"| {state} | {trigger} | {target} | {NOTES[(state, trigger)]} |")
    return "\n".join(rows)


def render_legend() -> str:
    """One line per state, for the TUI legend and `swapctl` help."""
    width = max(len(s) for s in ProcessState)
    return "\n".join(f"{s.value:<{width}}  {LEGEND[s]}" for s in ProcessState)
