"""One supervisor task per model: the only owner of that model's child and state.

Everybody else sends it messages (`ensure_ready`, `stop`) and waits for the
reply; the decision to start or stop is taken inside this task from the state
at the moment the message is handled, never from a snapshot read elsewhere
(llama-swap issue #946). While a stop is tearing the child down the inbox is
not read, so a request that arrives during a stop (a TTL unload, say) waits
for it, then finds the model stopped and starts it again. While a start is in
progress the inbox *is* read: further `ensure_ready` calls join that start
and get its outcome (in llama-swap a joiner of a failed start would start it
again; here every waiter of one attempt gets the same error, so a broken
model is not retried once per waiting request), and a `stop` aborts it.

A child that crashes while ready (or exits while starting) is published as
`failed` at once, with how and when; whatever it forked is then cleaned up
before the next request is handled.

Every change of state goes through the table in `states.py` and is published
as a `StateChanged` event. Crashes are not restarted: the next request starts
the model again.

Two extensions ride on the same loop. With `kvCache.persist` a planned stop
first saves the server's slots and a start restores them before its waiters
are answered (`kv_slots`, bounded by the model's `kvCache.timeout`). A model
that can sleep is put to sleep when `sleepAfter` runs out (or when asked);
asleep, a request wakes it: the wake action, then the same health check and
outcomes as a start (`sleep_ops`).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
import trio

from swapd.events import EventBus
from swapd.process import kv_slots, sleep_ops
from swapd.process.events import KvActivity, ProcessExited, StateChanged
from swapd.process.exit_status import describe_exit
from swapd.process.logs import LogRing
from swapd.process.readiness import HealthTarget, HealthTimeout, wait_healthy
from swapd.process.spawn import Child, SpawnError, spawn
from swapd.process.spec import ProcessSpec
from swapd.process.states import ProcessState, Trigger, next_state
from swapd.process.stop import StopOutcome, kill_now, stop_child
from swapd.process.ttl import IdleClock

log = logging.getLogger("swapd.process")

# Grace for a child killed because its start failed (health timeout).
ABORT_GRACE = 5.0
# Grace for a child killed because its supervisor is shutting down; in a normal
# shutdown every child has already been stopped gracefully before this.
SHUTDOWN_GRACE = 1.0
# After an exit during start, how long to wait for the last log lines.
EXIT_LOG_GRACE = 1.0
LOG_TAIL_LINES = 20
INBOX_SIZE = 64


class StartError(Exception):
    """A start failed; every caller waiting for that start gets this."""

    def __init__(
        self,
        model: str,
        reason: str,
        exit_code: int | None = None,
        log_tail: Sequence[str] = (),
    ) -> None:
        # args are the constructor's, so that copy.copy() works (each waiter gets its own)
        super().__init__(model, reason, exit_code, list(log_tail))
        self.model = model
        self.reason = reason
        self.exit_code = exit_code
        self.log_tail = list(log_tail)

    def __str__(self) -> str:
        return f"[{self.model}] {self.reason}"


class StartAborted(StartError):
    """The start was cut short by a stop (eviction, unload, cancelled load)."""


class ProcessShutdown(StartError):
    """The supervisor has exited (swapd stopping or config reloaded)."""


class ProcessSnapshot(msgspec.Struct, frozen=True):
    """A report of one model's process; advisory only, never a basis for a decision."""

    model: str
    state: ProcessState
    pid: int | None
    proxy_url: str
    in_flight: int
    ttl_left: float | None
    last_load_seconds: float | None
    last_exit_code: int | None
    argv: list[str]
    starts: int = 0
    """Starts since swapd (or this config of the model) began."""
    failures: int = 0
    """Failed starts and crashes among them."""
    last_failure: str | None = None
    """How the last failure went (e.g. "exited with code 3 while serving")."""
    last_failure_at: float | None = None
    """When it happened, Unix time."""


@dataclass(eq=False)
class _Reply:
    done: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None

    def set(self, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    async def wait(self) -> None:
        await self.done.wait()
        if self.error is not None:
            # a fresh copy per waiter: one exception object raised in several tasks
            # would collect all their tracebacks
            raise copy.copy(self.error)


@dataclass(eq=False)
class _Ensure:
    reply: _Reply
    device: str | None = None


@dataclass(eq=False)
class _Stop:
    timeout: float | None
    reason: str
    reply: _Reply


@dataclass(eq=False)
class _Sleep:
    """Put the model to sleep (sleepAfter ran out, or a swap makes room); a no-op
    unless it is ready and can sleep."""

    reason: str
    reply: _Reply
    slept: bool = False
    """Set by the owner before the reply: the model is asleep."""


class _Poke:
    """Wakes the loop to look again (the child exited)."""


_Message = _Ensure | _Stop | _Sleep | _Poke


class Supervisor:
    """Owns one model's child process. Run it with `await nursery.start(supervisor.run)`."""

    def __init__(self, spec: ProcessSpec, bus: EventBus, proxy_log: LogRing | None = None) -> None:
        self.spec = spec
        #: The spec the current (or last) child was started from: its device filled in.
        self._run_spec = spec
        self.bus = bus
        self.proxy_log = proxy_log if proxy_log is not None else LogRing("proxy", bus=bus)
        self.logs = LogRing(spec.model_id, spec.log_ring_bytes, bus=bus)
        self._state = ProcessState.STOPPED
        self._send, self._recv = trio.open_memory_channel[_Message](INBOX_SIZE)
        self._pending: deque[_Message] = deque()
        self._child: Child | None = None
        self._waiters: list[_Reply] = []
        self._idle = IdleClock(spec.ttl, sleep_after=spec.sleep.after if spec.sleep else 0.0)
        self.last_wake_seconds: float | None = None
        self._sleep_refused = False
        self._nursery: trio.Nursery | None = None
        self.last_load_seconds: float | None = None
        self.last_exit_code: int | None = None
        self.starts = 0
        self.failures = 0
        self.last_failure: str | None = None
        self.last_failure_at: float | None = None

    # ----- reading (advisory) ---------------------------------------------

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    @property
    def state(self) -> ProcessState:
        return self._state

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None and child.running else None

    @property
    def in_flight(self) -> int:
        return self._idle.in_flight

    def snapshot(self) -> ProcessSnapshot:
        try:
            ttl_left = self._idle.left(trio.current_time())
        except RuntimeError:  # outside trio
            ttl_left = None
        return ProcessSnapshot(
            model=self.spec.model_id,
            state=self._state,
            pid=self.pid,
            proxy_url=self.spec.proxy_url,
            in_flight=self._idle.in_flight,
            ttl_left=ttl_left,
            last_load_seconds=self.last_load_seconds,
            last_exit_code=self.last_exit_code,
            argv=list(self._run_spec.argv),
            starts=self.starts,
            failures=self.failures,
            last_failure=self.last_failure,
            last_failure_at=self.last_failure_at,
        )

    # ----- public operations (messages to the owner) ------------------------

    async def ensure_ready(self, device: str | None = None) -> None:
        """Return once the model is ready, starting it if needed; StartError if it cannot be.

        If the caller is cancelled while waiting, a start it triggered keeps going.
        `device`: for a model with devices, the one a start puts it on.
        """
        await self._ask(_Ensure(_Reply(), device))

    async def stop(self, *, timeout: float | None = None, reason: str = "") -> None:  # noqa: ASYNC109
        """Stop the model (a no-op when stopped) and return once it is gone.

        `timeout` is the grace before SIGKILL (not a bound on this call, hence the
        noqa); None means the model's unloadTimeout.
        A stop during a start aborts the start.
        """
        try:
            await self._ask(_Stop(timeout, reason, _Reply()))
        except ProcessShutdown:
            pass  # nothing runs after a shutdown

    async def sleep(self, *, reason: str = "") -> bool:
        """Put the model to sleep if it is ready and can sleep (else a no-op); return once
        that is done or has failed (logged; the model then stays ready). True when the
        model is asleep at the end, so a caller that needs the room can stop it instead."""
        message = _Sleep(reason or "sleep requested", _Reply())
        try:
            await self._ask(message)
        except ProcessShutdown:
            return False
        return message.slept

    def hold(self) -> None:
        """Count a request in flight: the TTL never unloads a model while one is."""
        self._idle.hold()

    def release(self) -> None:
        """The end of a held request; the idle clock restarts when the last one ends.

        The owner task is not woken: it waits on `IdleClock.next_check`, which is
        never later than the deadline this release sets.
        """
        self._idle.release(trio.current_time())

    async def _ask(self, message: _Ensure | _Stop | _Sleep) -> None:
        if self._state is ProcessState.SHUTDOWN:
            raise self._shutdown_error()
        try:
            await self._send.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise self._shutdown_error() from None
        await message.reply.wait()

    def _poke(self) -> None:
        try:
            self._send.send_nowait(_Poke())
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # a full inbox wakes the loop anyway; a closed one has nobody to wake

    def _shutdown_error(self) -> ProcessShutdown:
        return ProcessShutdown(self.spec.model_id, "shutdown")

    # ----- the owner task ----------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The supervisor's life; cancelling it is the shutdown (the child is killed)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                await self._serve()
            finally:
                with trio.CancelScope(shield=True):
                    await self._shutdown()
                nursery.cancel_scope.cancel()

    async def _serve(self) -> None:
        while True:
            await self._notice_crash()
            message = await self._next_message()
            await self._notice_crash()  # it may have died just now: never answer "ready" for it
            if message is None and self._state in _ALIVE:  # the TTL ran out
                ttl = self.spec.ttl
                self._note(f"Unloading model, TTL of {ttl:g}s reached")
                await self._stop_running(self.spec.unload_timeout, f"TTL of {ttl:g}s reached")
            elif isinstance(message, _Sleep):
                if self._state is ProcessState.READY:
                    await self._go_to_sleep(message.reason)
                message.slept = self._state is ProcessState.ASLEEP
                message.reply.set()
            elif isinstance(message, _Ensure):
                if self._state is ProcessState.READY:
                    message.reply.set()
                elif self._state is ProcessState.ASLEEP:
                    await self._wake(message.reply)
                else:
                    await self._start(message.reply, message.device)
            elif isinstance(message, _Stop):
                if self._state in _ALIVE:
                    await self._stop_running(message.timeout, message.reason or "stop requested")
                else:
                    self._transition(Trigger.STOP)  # stopped -> stopped: publishes nothing
                message.reply.set()

    async def _next_message(self) -> _Message | None:
        """The next message, or None when the TTL deadline passes first (a `_Sleep` when
        the sleepAfter deadline does)."""
        if self._pending:
            return self._pending.popleft()
        while True:
            now = trio.current_time()
            deadline = math.inf
            if self._state in _ALIVE:
                deadline = _earliest(deadline, self._idle.next_check(now))
            if self._state is ProcessState.READY and not self._sleep_refused:
                deadline = _earliest(deadline, self._idle.next_sleep_check(now))
            with trio.move_on_at(deadline):
                return await self._recv.receive()
            now = trio.current_time()
            if self._idle.expired(now):
                return None
            if self._state is ProcessState.READY and self._idle.sleep_due(now):
                return _Sleep(f"idle for sleepAfter {self._idle.sleep_after:g}s", _Reply())

    # ----- starting ---------------------------------------------------------

    async def _start(self, first: _Reply, device: str | None = None) -> None:
        spec = self._run_spec = self.spec.on_device(device)
        self._waiters = [first]
        self.starts += 1
        self._transition(Trigger.START, "requested")
        problems = spec.problems()
        if problems:
            self._start_failed(StartError(spec.model_id, "; ".join(problems)))
            return
        await self._kv_prepare()
        try:
            child = spawn(spec.argv, spec.env)
        except SpawnError as err:
            self._start_failed(StartError(spec.model_id, str(err)))
            return
        self._child = child
        assert self._nursery is not None
        child.start_tasks(self._nursery, self.logs, on_exit=lambda _: self._poke())
        self._note(f"started pid {child.pid}: {' '.join(spec.argv)}")
        await self._finish_start(child, waking=False)

    async def _finish_start(self, child: Child, *, waking: bool) -> None:
        """Wait for the health check (racing the child's exit and stops), then answer the
        waiters: a start and a wake end the same way."""
        spec = self.spec
        since = trio.current_time()
        if not spec.probes_health:
            self._became_ready(child, "started (no health check)", waking=waking, since=since)
            return
        outcome, stop = await self._race_start(child)
        if outcome == "ready":
            if not waking:
                await self._kv_restore()
            why = f"health check passed on {spec.health_url()}"
            self._became_ready(child, why, waking=waking, since=since)
        elif outcome == "exited":
            with trio.move_on_after(EXIT_LOG_GRACE):
                await child.drained.wait()
            code = self.last_exit_code = child.returncode
            tail = self.logs.tail(LOG_TAIL_LINES)
            how = f"{describe_exit(code)} while starting"
            await self._teardown(child, spec.unload_timeout, why=how, failed=True)
            self._start_failed(StartError(spec.model_id, how, code, tail))
        elif outcome == "timeout":
            timeout = spec.health_check_timeout
            self._note(f"health check timed out after {timeout:g}s: stopping pid {child.pid}")
            tail = self.logs.tail(LOG_TAIL_LINES)
            result = await self._teardown(
                child, min(ABORT_GRACE, spec.unload_timeout),
                why=f"health check timed out after {timeout:g}s", failed=True,
            )  # fmt: skip
            self._start_failed(
                StartError(
                    spec.model_id,
                    f"health check timed out after {timeout:g}s",
                    result.returncode,
                    tail,
                )
            )
        else:
            assert stop is not None
            reason = stop.reason or "stop requested"
            self._transition(Trigger.STOP, f"start aborted: {reason}")
            self._note(f"start aborted ({reason}): stopping pid {child.pid}")
            tail = self.logs.tail(LOG_TAIL_LINES)
            grace = spec.unload_timeout if stop.timeout is None else stop.timeout
            result = await self._teardown(child, grace, why=f"start aborted: {reason}")
            self._fail_waiters(
                StartAborted(spec.model_id, f"aborted: {reason}", result.returncode, tail)
            )
            self._transition(Trigger.STOPPED, f"start aborted: {reason}")
            stop.reply.set()

    async def _race_start(self, child: Child) -> tuple[str, _Stop | None]:
        """Health check vs. the child's exit vs. a stop request: the first one wins.

        Meanwhile further `ensure_ready` calls join this start.
        """
        outcome: list[str] = []
        stops: list[_Stop] = []
        target = HealthTarget(self.spec.health_url())
        deadline = trio.current_time() + self.spec.health_check_timeout

        async with trio.open_nursery() as race:

            def settle(what: str) -> None:
                if not outcome:
                    outcome.append(what)
                race.cancel_scope.cancel()

            async def healthy() -> None:
                try:
                    await wait_healthy(target, deadline)
                except HealthTimeout:
                    settle("timeout")
                else:
                    settle("ready")

            async def exited() -> None:
                await child.exited.wait()
                settle("exited")

            async def inbox() -> None:
                while True:
                    message = await self._recv.receive()
                    if isinstance(message, _Ensure):
                        self._waiters.append(message.reply)
                    elif isinstance(message, _Stop):
                        if outcome:  # settled in the same instant: handle it next
                            self._pending.append(message)
                        else:
                            stops.append(message)
                            settle("stop")
                        return

            race.start_soon(healthy)
            race.start_soon(exited)
            race.start_soon(inbox)
        return outcome[0], (stops[0] if stops else None)

    def _became_ready(self, child: Child, why: str, *, waking: bool, since: float) -> None:
        now = trio.current_time()
        self._idle.on_ready(now)
        self._sleep_refused = False
        self._transition(Trigger.HEALTHY, why)
        if waking:
            self.last_wake_seconds = now - since
            self._note(f"awake: {why} ({self.last_wake_seconds:.3f}s after the wake began)")
        else:
            self.last_load_seconds = now - child.spawned_at
            self._note(f"{why} ({self.last_load_seconds:.3f}s after spawn)")
        self._fail_waiters(None)

    def _start_failed(self, error: StartError) -> None:
        self._child = None
        self._note(f"start failed: {error.reason}")
        self._failed(error.reason)
        self._transition(Trigger.START_FAILED, error.reason)
        self._fail_waiters(error)

    def _failed(self, reason: str) -> None:
        self.failures += 1
        self.last_failure = reason
        self.last_failure_at = time.time()

    def _fail_waiters(self, error: StartError | None) -> None:
        waiters, self._waiters = self._waiters, []
        for reply in waiters:
            reply.set(error)

    # ----- stopping ---------------------------------------------------------

    async def _stop_running(self, grace: float | None, reason: str) -> None:
        child = self._child
        assert child is not None
        asleep = self._state is ProcessState.ASLEEP
        self._transition(Trigger.STOP, reason)
        self._idle.on_not_ready()
        grace = self.spec.unload_timeout if grace is None else grace
        if not asleep:  # a sleeping server has released its cache
            await self._kv_save()
        self._note(f"stopping pid {child.pid} ({reason}), grace {grace:g}s")
        await self._teardown(child, grace, why=reason)
        self._transition(Trigger.STOPPED, reason)

    async def _notice_crash(self) -> None:
        child = self._child
        if self._state in _ALIVE and child is not None and not child.running:
            await self._crashed(child)

    async def _crashed(self, child: Child) -> None:
        code = self.last_exit_code = child.returncode
        self._idle.on_not_ready()
        how = f"{describe_exit(code)} while serving"
        self._note(f"upstream process {how}")
        self._failed(how)
        self._transition(Trigger.EXITED, how)
        # Anything it forked is still to be stopped before the next start.
        await self._teardown(child, self.spec.unload_timeout, why=how, failed=True)

    async def _teardown(
        self, child: Child, grace: float, *, why: str, failed: bool = False
    ) -> StopOutcome:
        """Stop `child` (and what it forked); publish its exit, with `why` it ended."""
        assert self._nursery is not None
        result = await stop_child(
            child,
            grace=grace,
            ring=self.logs,
            nursery=self._nursery,
            stop_argv=self._run_spec.stop_command(child.pid),
            env=self._run_spec.env,
        )
        self._child = None
        self.last_exit_code = result.returncode
        uptime = trio.current_time() - child.spawned_at
        forced = ", then SIGKILL" if result.killed else ""
        self._note(
            f"pid {child.pid} {describe_exit(result.returncode)} {uptime:.3f}s after spawn "
            f"(stop: {result.graceful}{forced}, {result.seconds:.3f}s)"
        )
        self._exited(child, result.returncode, why, failed, uptime)
        return result

    def _exited(
        self, child: Child, returncode: int | None, why: str, failed: bool, uptime: float
    ) -> None:
        self.bus.publish(
            ProcessExited(
                model=self.spec.model_id, pid=child.pid, returncode=returncode, reason=why,
                failed=failed, uptime=uptime, time=time.time(),
            )
        )  # fmt: skip

    # ----- sleep instead of kill (sleep/wake, cmdSleep/cmdWake) --------------------
    # Asleep, the process lives with its accelerator memory released; the TTL
    # still stops it, counted from its last use. A wake is a start without a
    # spawn: the wake action, then the health check, with the same outcomes.

    async def _go_to_sleep(self, reason: str) -> None:
        spec, child = self.spec, self._child
        if spec.sleep is None or child is None:
            return
        started = trio.current_time()
        failure = await sleep_ops.perform(
            spec.sleep.sleep, spec.proxy_url, child.pid, spec.env, spec.unload_timeout
        )
        took = trio.current_time() - started
        if failure is not None:
            # it stays ready; sleepAfter does not try again until its next start
            self._sleep_refused = True
            self._note(f"sleep failed ({reason}): {failure}")
            return
        if child.running:
            self._transition(Trigger.SLEEP, reason)
            self._note(f"asleep ({reason}) in {took:.3f}s")

    async def _wake(self, first: _Reply) -> None:
        spec, child = self.spec, self._child
        assert spec.sleep is not None and child is not None
        self._waiters = [first]
        self._transition(Trigger.START, "waking")
        failure = await sleep_ops.perform(
            spec.sleep.wake, spec.proxy_url, child.pid, spec.env, spec.health_check_timeout
        )
        if failure is not None:
            self._note(f"wake failed: {failure}: stopping pid {child.pid}")
            tail = self.logs.tail(LOG_TAIL_LINES)
            result = await self._teardown(
                child, min(ABORT_GRACE, spec.unload_timeout), why=f"wake failed: {failure}",
                failed=True,
            )  # fmt: skip
            self._start_failed(
                StartError(spec.model_id, f"wake failed: {failure}", result.returncode, tail)
            )
            return
        await self._finish_start(child, waking=True)

    # ----- KV-cache slots (kvCache.persist) -----------------------------------
    # Saved before a planned stop (never after a crash: nothing is left to ask),
    # restored after a start is ready and before its waiters are answered. Each
    # is bounded by kvCache.timeout and never fails the stop or the start.

    async def _kv_prepare(self) -> None:
        kv = self.spec.kv
        if kv is None:
            return
        try:
            stale = await trio.to_thread.run_sync(kv_slots.prepare, kv)
        except OSError as exc:
            self._note(f"kv cache: cannot prepare {kv.dir}: {exc}")
            return
        if stale:
            self._note(f"kv cache: discarded the slots saved by another command ({len(stale)})")

    async def _kv_save(self) -> None:
        if self.spec.kv is not None:
            self._kv_done(await kv_slots.save(self.model_id, self.spec.proxy_url, self.spec.kv))

    async def _kv_restore(self) -> None:
        if self.spec.kv is not None:
            done = await kv_slots.restore(self.model_id, self.spec.proxy_url, self.spec.kv)
            if done is not None:
                self._kv_done(done)

    def _kv_done(self, activity: KvActivity) -> None:
        self._note(kv_slots.describe(activity))
        self.bus.publish(activity)

    # ----- shutdown ---------------------------------------------------------

    async def _shutdown(self) -> None:
        if self._state is ProcessState.SHUTDOWN:
            return
        self._transition(Trigger.SHUTDOWN, "supervisor stopped")
        error = self._shutdown_error()
        self._fail_waiters(error)
        while True:  # answer everything already queued, then refuse new messages
            try:
                self._pending.append(self._recv.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        self._recv.close()
        while self._pending:
            self._answer_after_shutdown(self._pending.popleft(), error)
        child = self._child
        if child is not None:
            self._note(f"shutting down: stopping pid {child.pid}")
            await kill_now(child, SHUTDOWN_GRACE)
            self.last_exit_code = child.returncode
            self._child = None
            uptime = trio.current_time() - child.spawned_at
            self._exited(child, child.returncode, "shutdown", False, uptime)

    def _answer_after_shutdown(self, message: _Message, error: ProcessShutdown) -> None:
        if isinstance(message, _Ensure):
            message.reply.set(error)
        elif isinstance(message, _Stop):
            message.reply.set()

    # ----- helpers ------------------------------------------------------------

    def _transition(self, trigger: Trigger, reason: str = "") -> None:
        old = self._state
        new = next_state(old, trigger)
        if new is old:
            return
        self._state = new
        self.bus.publish(StateChanged(self.spec.model_id, old, new, time.time(), reason))

    def _note(self, text: str) -> None:
        """swapd's own words about this model: to the proxy log.

        The daemon mirrors the proxy log to stderr, so the logger only gets a
        debug copy (useful when a supervisor runs without a daemon, in tests).
        """
        self.proxy_log.write("swapd", f"[{self.spec.model_id}] {text}")
        log.debug("[%s] %s", self.spec.model_id, text)


# States in which the child lives and a stop, the TTL or a crash apply.
_ALIVE = frozenset({ProcessState.READY, ProcessState.ASLEEP})


def _earliest(a: float, b: float | None) -> float:
    return a if b is None else min(a, b)
