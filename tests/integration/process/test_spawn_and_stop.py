"""spawn() and stop_child() alone: the trio-thread rule, the pipe backstop, cmdStop fallback."""

from __future__ import annotations

import os
import signal
import sys

import pytest
import trio

from swapd.process.logs import LogRing
from swapd.process.spawn import SpawnError, spawn
from swapd.process.stop import live_group_members, stop_child
from tests.integration.process.harness import WAIT, gone

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]


def test_spawn_refuses_to_run_outside_the_trio_thread() -> None:
    with pytest.raises(RuntimeError):
        spawn(SLEEPER)


@pytest.mark.trio
async def test_spawn_error_names_the_command() -> None:
    with pytest.raises(SpawnError, match="failed to start command '/no/such/binary -x'"):
        spawn(["/no/such/binary", "-x"])
    with pytest.raises(SpawnError, match="empty command"):
        spawn([])


@pytest.mark.trio
async def test_child_leads_its_own_group_and_stops_with_sigterm() -> None:
    ring = LogRing("t")
    async with trio.open_nursery() as nursery:
        child = spawn(SLEEPER)
        child.start_tasks(nursery, ring)
        assert os.getpgid(child.pid) == child.pid
        assert os.getsid(child.pid) == child.pid
        assert live_group_members(child.pid) == [child.pid]
        with trio.fail_after(WAIT):
            outcome = await stop_child(child, grace=5.0, ring=ring, nursery=nursery)
    assert outcome.graceful == "SIGTERM" and not outcome.killed and not outcome.pipes_forced
    assert outcome.returncode == -signal.SIGTERM
    assert live_group_members(child.pid) == []


@pytest.mark.trio
async def test_pipes_held_by_an_escaped_grandchild_are_closed_by_force() -> None:
    # The grandchild leaves the process group (setsid), so no group signal reaches
    # it, but it still holds the pipes: the drain must not wait for it forever.
    # (it prints its pid only once it has left the group)
    script = "setsid sh -c 'echo $$; exec sleep 60' & exec sleep 60"
    ring = LogRing("t")
    escaped = None
    try:
        async with trio.open_nursery() as nursery:
            with ring.subscribe() as lines:
                child = spawn(["sh", "-c", script])
                child.start_tasks(nursery, ring)
                with trio.fail_after(WAIT):
                    escaped = int((await lines.receive()).text)
            with trio.fail_after(WAIT):
                outcome = await stop_child(
                    child, grace=2.0, ring=ring, nursery=nursery, pipe_limit=0.3
                )
        assert outcome.pipes_forced
        assert gone(child.pid)
        assert any("closing them" in line.text for line in ring)
    finally:
        if escaped is not None:
            os.kill(escaped, signal.SIGKILL)


@pytest.mark.trio
async def test_unusable_cmd_stop_falls_back_to_sigterm() -> None:
    ring = LogRing("t")
    async with trio.open_nursery() as nursery:
        child = spawn(SLEEPER)
        child.start_tasks(nursery, ring)
        with trio.fail_after(WAIT):
            outcome = await stop_child(
                child, grace=5.0, ring=ring, nursery=nursery, stop_argv=["/no/such/stopper"]
            )
    assert outcome.graceful == "SIGTERM"
    assert any("cmdStop failed, sending SIGTERM instead" in line.text for line in ring)
    assert gone(child.pid)
