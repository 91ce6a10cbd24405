"""Free TCP ports for test servers, chosen where the kernel will not hand them out.

A port found by binding to port 0 comes from the ephemeral range, which the
kernel also uses for the local end of outgoing connections: between "found
free" and "the server binds it", a client socket can take it, and the server
then fails with "address in use". Ports below the ephemeral range are only
ever taken by servers that ask for them, so a run of them checked free stays
free for the test that picked it.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

LOW = 20000
FALLBACK_EPHEMERAL_START = 32768


def ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (Linux), or the usual default."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return FALLBACK_EPHEMERAL_START


def _all_free(base: int, count: int) -> bool:
    with contextlib.ExitStack() as stack:
        for port in range(base, base + count):
            s = stack.enter_context(socket.socket())
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_run(count: int = 1) -> int:
    """The first of `count` consecutive loopback ports that are free now (for `startPort`)."""
    high = max(ephemeral_start(), LOW + 1000) - count
    rng = random.Random()
    for _ in range(1000):
        base = rng.randrange(LOW, high)
        if _all_free(base, count):
            return base
    raise RuntimeError(f"no run of {count} free ports between {LOW} and {high}")


def free_port() -> int:
    """One free loopback port, outside the ephemeral range."""
    return free_port_run(1)
