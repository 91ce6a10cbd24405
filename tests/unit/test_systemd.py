"""sd_notify and journald detection, against a fake notify socket."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from swapd import logsetup, systemd


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_outside_systemd_everything_is_a_noop() -> None:
    notifier = systemd.Notifier(env={})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_every is None


def test_lifecycle_messages_reach_the_socket(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = systemd.Notifier(env={"NOTIFY_SOCKET": path})
    assert notifier.ready()
    assert notifier.reloading()
    assert notifier.status(["b", "a"])
    assert notifier.stopping()
    got = [sock.recv(4096).decode() for _ in range(4)]
    assert got[0] == "READY=1"
    lines = got[1].split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=")
    usec = int(lines[1].split("=")[1])
    assert usec > 0
    assert got[2] == "STATUS=running: a, b"
    assert got[3] == "STOPPING=1"
    notifier.close()


def test_abstract_socket_address() -> None:
    assert systemd.notify_address({"NOTIFY_SOCKET": "@sd/notify"}) == b"\0sd/notify"
    assert systemd.notify_address({"NOTIFY_SOCKET": "relative"}) is None


def test_watchdog_interval_is_half_and_respects_pid() -> None:
    env = {"WATCHDOG_USEC": "2000000"}
    assert systemd.watchdog_interval(env, 42) == 1.0
    assert systemd.watchdog_interval({**env, "WATCHDOG_PID": "42"}, 42) == 1.0
    assert systemd.watchdog_interval({**env, "WATCHDOG_PID": "7"}, 42) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "x"}, 42) is None


def test_status_with_no_models() -> None:
    assert systemd.status_message([]) == "STATUS=no models running"


@pytest.mark.trio
async def test_watchdog_pings_on_a_mock_clock(
    notify_socket: tuple[socket.socket, str], autojump_clock: trio.testing.MockClock
) -> None:
    sock, path = notify_socket
    notifier = systemd.Notifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
    assert notifier.watchdog_every == 5.0
    with trio.move_on_after(12):
        await notifier.run_watchdog()
    sock.setblocking(False)
    pings = []
    while True:
        try:
            pings.append(sock.recv(100))
        except BlockingIOError:
            break
    assert pings == [b"WATCHDOG=1"] * 3  # at t = 0, 5 and 10


def test_journald_detection_matches_device_and_inode(tmp_path: Path) -> None:
    target = tmp_path / "stream"
    target.write_text("")
    with open(target) as f:
        st = os.fstat(f.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert logsetup.journald_is_sink(env, f.fileno())
        assert not logsetup.journald_is_sink({"JOURNAL_STREAM": "1:2"}, f.fileno())
        assert not logsetup.journald_is_sink({"JOURNAL_STREAM": "junk"}, f.fileno())
        assert not logsetup.journald_is_sink({}, f.fileno())


def test_log_format_is_plain_for_journald() -> None:
    assert "asctime" not in logsetup.log_format(True)
    assert "asctime" in logsetup.log_format(False)
    assert logsetup.setup_logging(env={}) is False
