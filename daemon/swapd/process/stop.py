"""Stopping a child and everything it forked, within a grace period, without hanging.

The graceful step is `cmdStop` (with `${PID}` filled in) when configured,
otherwise SIGTERM to the child's process group. Whatever of the group is
still alive when the grace runs out gets SIGKILL. Then the pipes get at most
`PIPE_DRAIN_LIMIT` seconds to reach EOF before they are closed by force (a
grandchild that left the group may hold them; llama-swap issue #804).

Zombies count as gone: their pipes are closed and nothing can signal them
away (PID 1 in a container may never reap an orphan).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import trio

from swapd.process.logs import LogRing
from swapd.process.spawn import Child, SpawnError, spawn

PIPE_DRAIN_LIMIT = 10.0
GROUP_POLL_INTERVAL = 0.01
MAX_GROUP_POLL_INTERVAL = 0.1
# After SIGKILL the kernel needs a moment; never wait longer than this for the group.
KILL_SETTLE_LIMIT = 5.0
# A cmdStop gets the grace period plus this before it is killed itself.
STOP_COMMAND_SLACK = 5.0


def live_group_members(pgid: int) -> list[int]:
    """The pids in process group `pgid` that are alive (not zombies)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        return [pgid]
    if not sys.platform.startswith("linux"):
        return [pgid]
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry.name))
    return members


async def wait_group_gone(pgid: int) -> None:
    """Poll until the group has no live member (the kernel offers no event for it).

    Each poll may scan /proc, so the interval grows from 10 ms to 100 ms.
    """
    interval = GROUP_POLL_INTERVAL
    while live_group_members(pgid):
        await trio.sleep(interval)
        interval = min(MAX_GROUP_POLL_INTERVAL, interval * 1.5)


@dataclass(frozen=True)
class StopOutcome:
    returncode: int | None
    graceful: str  # "cmdStop", "SIGTERM" or "none" (everything had already exited)
    killed: bool  # SIGKILL was needed
    pipes_forced: bool  # the pipes had to be closed by force
    seconds: float


async def stop_child(
    child: Child,
    *,
    grace: float,
    ring: LogRing,
    nursery: trio.Nursery,
    stop_argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    pipe_limit: float = PIPE_DRAIN_LIMIT,
) -> StopOutcome:
    """Stop `child` and its process group; returns once both are gone and the pipes are done.

    `nursery` hosts the cmdStop run, so that a hanging cmdStop never blocks
    the stop itself. `grace` 0 means: signal, then kill at once.
    """
    started = trio.current_time()
    graceful = "none"
    if child.running or live_group_members(child.pid):
        graceful = "SIGTERM"
        if stop_argv:
            try:
                stopper = spawn(stop_argv, env)
            except SpawnError as err:
                ring.write("swapd", f"cmdStop failed, sending SIGTERM instead: {err}")
            else:
                graceful = "cmdStop"
                ring.write("swapd", f"running cmdStop (pid {stopper.pid}): {' '.join(stop_argv)}")
                nursery.start_soon(_supervise_stop_command, stopper, ring, grace)
        if graceful == "SIGTERM":
            child.signal_group(signal.SIGTERM)
            ring.write("swapd", f"sent SIGTERM to process group {child.pid}")
    killed = False
    with trio.move_on_after(grace):
        await child.wait()
        await wait_group_gone(child.pid)
    if child.running or live_group_members(child.pid):
        killed = True
        ring.write("swapd", f"grace of {grace:g}s over: SIGKILL to process group {child.pid}")
        child.signal_group(signal.SIGKILL)
        await child.wait()
        with trio.move_on_after(KILL_SETTLE_LIMIT):
            await wait_group_gone(child.pid)
    pipes_forced = False
    with trio.move_on_after(pipe_limit):
        await child.drained.wait()
    if not child.drained.is_set():
        pipes_forced = True
        ring.write("swapd", f"output pipes still open {pipe_limit:g}s after exit: closing them")
        await child.close_pipes()
    return StopOutcome(
        child.returncode, graceful, killed, pipes_forced, trio.current_time() - started
    )


async def _supervise_stop_command(stopper: Child, ring: LogRing, grace: float) -> None:
    """Run cmdStop to completion (bounded), logging its output and exit status."""
    async with trio.open_nursery() as nursery:
        stopper.start_tasks(nursery, ring, names=("cmdStop", "cmdStop"))
        try:
            with trio.move_on_after(grace + STOP_COMMAND_SLACK):
                await stopper.wait()
        finally:
            if stopper.running:  # too slow, or our supervisor is going away
                ring.write("swapd", f"cmdStop (pid {stopper.pid}) still running: killing it")
                stopper.signal_group(signal.SIGKILL)
                with trio.CancelScope(shield=True):
                    await stopper.wait()
            with trio.move_on_after(1.0) as drain_scope:
                drain_scope.shield = True
                await stopper.drained.wait()
            if not stopper.drained.is_set():
                await stopper.close_pipes()
        ring.write("swapd", f"cmdStop exited with status {stopper.returncode}")


async def kill_now(child: Child, grace: float) -> None:
    """The shutdown path: SIGTERM, at most `grace`, SIGKILL; pipes get `grace` too."""
    with contextlib.suppress(Exception):
        child.signal_group(signal.SIGTERM)
    with trio.move_on_after(grace):
        await child.wait()
        await wait_group_gone(child.pid)
    if child.running or live_group_members(child.pid):
        child.signal_group(signal.SIGKILL)
        await child.wait()
    with trio.move_on_after(grace):
        await child.drained.wait()
    if not child.drained.is_set():
        await child.close_pipes()
