"""No orphans, ever: swapd stopping (SIGTERM) or killed (SIGKILL) takes every child along.

A real driver process runs a ProcessPool with three fake upstreams; the test
signals it and checks with psutil that none of the servers (nor their
grandchildren, on SIGTERM) survive.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.integration.conftest import RunningFake
from tests.integration.process.harness import WAIT, gone

ROOT = Path(__file__).resolve().parents[3]


def start_driver(*fake_options: str) -> tuple[RunningFake, list[int], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.process.pool_driver", "3", *fake_options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    driver = RunningFake(0, proc)  # reuses its line reader
    words = driver.read_line(WAIT).split()
    assert words[0] == "READY", words
    children = [int(pid) for pid in words[1:]]
    grandchildren = []
    if "--grandchild" in fake_options:
        for _ in children:
            kind, pid = driver.read_line(WAIT).split()
            assert kind == "GRANDCHILD"
            grandchildren.append(int(pid))
    return driver, children, grandchildren


def wait_all_gone(pids: list[int]) -> list[int]:
    """Wait (bounded) until every pid has exited; returns the ones still alive.

    A pidfd becomes readable when its process exits, even when that process is
    not our child and nobody reaps it.
    """
    deadline = time.monotonic() + WAIT
    alive = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(fd)
        if not ready and not gone(pid):
            alive.append(pid)
    return alive


def reap(driver: RunningFake) -> None:
    try:
        os.killpg(driver.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    driver.proc.wait()
    assert driver.proc.stdout is not None
    driver.proc.stdout.close()


def test_sigterm_stops_every_child_and_grandchild() -> None:
    driver, children, grandchildren = start_driver("--grandchild")
    try:
        assert len(children) == 3 and len(grandchildren) == 3
        assert not any(gone(pid) for pid in children + grandchildren)
        driver.proc.send_signal(signal.SIGTERM)
        assert driver.proc.wait(timeout=WAIT) == 0
        assert "DONE" in driver.read_line(WAIT)
        assert wait_all_gone(children + grandchildren) == []
    finally:
        reap(driver)


def test_sigkill_of_the_daemon_kills_every_child() -> None:
    driver, children, _ = start_driver()
    try:
        assert not any(gone(pid) for pid in children)
        driver.proc.kill()
        assert driver.proc.wait(timeout=WAIT) == -signal.SIGKILL
        assert wait_all_gone(children) == []
    finally:
        for pid in children:  # never leak servers into later tests, even on failure
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap(driver)


def test_children_are_the_daemons_own_in_their_own_groups() -> None:
    driver, children, _ = start_driver()
    try:
        for pid in children:
            assert psutil.Process(pid).ppid() == driver.proc.pid
            assert os.getpgid(pid) == pid  # each in its own session and group
        driver.proc.send_signal(signal.SIGINT)
        assert driver.proc.wait(timeout=WAIT) == 0
    finally:
        reap(driver)
