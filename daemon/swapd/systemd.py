"""systemd integration: sd_notify messages and the watchdog, without libsystemd.

When systemd starts swapd as a `Type=notify` service it sets `NOTIFY_SOCKET`;
swapd then reports `READY=1` once it listens, `RELOADING=1` (with
`MONOTONIC_USEC`) and `READY=1` around a reload, `STOPPING=1` on shutdown,
`STATUS=...` with the running models, and `WATCHDOG=1` pings at half the
`WATCHDOG_USEC` interval. Without `NOTIFY_SOCKET` every call is a no-op, so
the daemon code never needs to know whether it runs under systemd.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import trio


def notify_address(env: Mapping[str, str]) -> str | bytes | None:
    """The notify socket address from the environment; `@name` is Linux's abstract namespace."""
    raw = env.get("NOTIFY_SOCKET", "")
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between watchdog pings (half of WATCHDOG_USEC), or None when not asked for.

    `WATCHDOG_PID`, when set, must name this process: a watchdog meant for a
    parent must not be served by a child.
    """
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    wd_pid = env.get("WATCHDOG_PID", "")
    if wd_pid and wd_pid != str(pid):
        return None
    return int(usec) / 1_000_000 / 2


def reloading_message(monotonic_usec: int) -> str:
    return f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec}"


def status_message(running: list[str]) -> str:
    """A one-line STATUS= for `systemctl status`."""
    if not running:
        return "STATUS=no models running"
    return "STATUS=running: " + ", ".join(sorted(running))


class Notifier:
    """Sends sd_notify datagrams; silently does nothing outside systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._address = notify_address(env)
        self.watchdog_every = watchdog_interval(env, os.getpid())
        self._sock: socket.socket | None = None
        if self._address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, message: str) -> bool:
        """Send one datagram; returns False (never raises) when it cannot be delivered."""
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto(message.encode(), self._address)
        except OSError:
            return False
        return True

    def ready(self) -> bool:
        return self.send("READY=1")

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(reloading_message(usec))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, running: list[str]) -> bool:
        return self.send(status_message(running))

    async def run_watchdog(self) -> None:
        """Ping the watchdog forever at the configured interval (returns at once if none)."""
        if self.watchdog_every is None or not self.enabled:
            return
        while True:
            self.send("WATCHDOG=1")
            await trio.sleep(self.watchdog_every)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
