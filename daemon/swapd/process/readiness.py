"""Readiness: poll the health endpoint until it answers 200, cheaply and often.

llama-swap waits 250 ms and then polls once a second, which adds about a
second to every swap. Here a probe is one raw HTTP/1.1 request on a fresh
socket (no client library, no pool): every 5 ms during the first second,
then backing off slowly (the interval doubles every half second) to at most
50 ms for long loads, each probe bounded by the time left before
`healthCheckTimeout`. The probe goes to the proxy URL that requests use.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio

FIRST_INTERVAL = 0.005
MAX_INTERVAL = 0.05
FAST_PHASE = 1.0  # seconds of probing at FIRST_INTERVAL
DOUBLING_TIME = 0.5  # after the fast phase the interval doubles this often
MAX_STATUS_LINE = 4096


def probe_interval(elapsed: float) -> float:
    """Seconds to wait before the next probe, `elapsed` seconds after spawning."""
    if elapsed <= FAST_PHASE:
        return FIRST_INTERVAL
    exponent = min((elapsed - FAST_PHASE) / DOUBLING_TIME, 16.0)
    return min(MAX_INTERVAL, FIRST_INTERVAL * float(2.0**exponent))


def parse_status(head: bytes) -> int | None:
    """The status code of an HTTP/1.x status line, or None if it is not one."""
    line = head.split(b"\r\n", 1)[0].split()
    if len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit():
        return int(line[1])
    return None


class HealthTimeout(Exception):
    pass


@dataclass
class HealthTarget:
    """Where and what to probe; addresses are resolved once and the working one kept first."""

    url: str
    host: str = field(init=False)
    port: int = field(init=False)
    request: bytes = field(init=False)
    tls: bool = field(init=False)
    _addresses: list[tuple[Any, Any]] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.tls else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: swapd-health\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        ).encode()

    async def addresses(self) -> list[tuple[Any, Any]]:
        if self._addresses is None:
            kind = trio.socket.SOCK_STREAM
            infos = await trio.socket.getaddrinfo(self.host, self.port, type=kind)
            self._addresses = [(family, addr) for family, _, _, _, addr in infos]
        return self._addresses

    def prefer(self, index: int) -> None:
        if self._addresses and index:
            self._addresses.insert(0, self._addresses.pop(index))


async def probe_once(target: HealthTarget) -> int | None:
    """One health request; the status code, or None when nothing answered."""
    for index, (family, addr) in enumerate(await target.addresses()):
        sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
        try:
            await sock.connect(addr)
        except OSError:
            sock.close()
            continue
        target.prefer(index)
        stream: trio.abc.Stream = trio.SocketStream(sock)
        try:
            if target.tls:
                stream = trio.SSLStream(
                    stream, ssl.create_default_context(), server_hostname=target.host
                )
            await stream.send_all(target.request)
            head = b""
            while b"\r\n" not in head and len(head) < MAX_STATUS_LINE:
                data = await stream.receive_some(1024)
                if not data:
                    break
                head += data
            return parse_status(head)
        except (OSError, trio.BrokenResourceError, ssl.SSLError):
            return None
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
    return None


async def wait_healthy(
    target: HealthTarget,
    deadline: float,
    probe: Callable[[HealthTarget], Awaitable[int | None]] = probe_once,
) -> int:
    """Probe until a 200, and return the number of probes; HealthTimeout at `deadline`.

    The caller races this against the child's exit and against stop requests.
    `probe` is replaceable so the schedule can be tested on a mock clock.
    """
    started = trio.current_time()
    probes = 0
    while True:
        if trio.current_time() >= deadline:
            raise HealthTimeout
        status = None
        with trio.move_on_at(deadline):
            status = await probe(target)
        probes += 1
        if status == 200:
            return probes
        now = trio.current_time()
        await trio.sleep_until(min(deadline, now + probe_interval(now - started)))
