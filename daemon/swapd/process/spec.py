"""What a supervisor needs to know about one model's server, and nothing more.

The config loader resolves every default (global TTL, unloadTimeout,
healthCheckTimeout, ports, macros) before building these, so the process
package never reads the config itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

PID_MACRO = "${PID}"
DEVICE_MACRO = "${DEVICE}"
DEVICE_INDEX_MACRO = "${DEVICE_INDEX}"
CHECK_DISABLED = "none"
DEFAULT_LOG_RING_BYTES = 256 * 1024


@dataclass(frozen=True)
class KvSpec:
    """Where and how a model's KV-cache slots are saved (`kvCache.persist`).

    `model_dir` holds one directory per argv key; `key` is the current one.
    """

    model_dir: Path
    key: str
    max_bytes: int
    timeout: float  # seconds for all saves of one stop, or all restores of one start

    @property
    def dir(self) -> Path:
        """The directory the server saves into (`${KV_DIR}`, `--slot-save-path`)."""
        return self.model_dir / self.key


@dataclass(frozen=True)
class SleepAction:
    """Put a model to sleep or wake it: an HTTP call on its proxy URL, or a command."""

    method: str = "POST"
    endpoint: str = ""
    argv: Sequence[str] | None = None  # may contain "${PID}"

    def command(self, pid: int) -> list[str] | None:
        if not self.argv:
            return None
        return [arg.replace(PID_MACRO, str(pid)) for arg in self.argv]


@dataclass(frozen=True)
class SleepSpec:
    """A model that sleeps instead of being stopped when idle (`sleepAfter` seconds)."""

    sleep: SleepAction
    wake: SleepAction
    after: float = 0.0  # 0: never for idleness (a swap may still put it to sleep)


@dataclass(frozen=True)
class ProcessSpec:
    """One model's process: argv, how to stop it, where it listens, its timers (seconds)."""

    model_id: str
    argv: Sequence[str]
    proxy_url: str
    stop_argv: Sequence[str] | None = None  # may contain "${PID}"
    env: Mapping[str, str] = field(default_factory=dict)
    check_endpoint: str = "/health"  # "none": ready as soon as it is spawned
    health_check_timeout: float = 120.0
    ttl: float = 0.0  # 0 = never unload for idleness
    unload_timeout: float = 10.0
    log_ring_bytes: int = DEFAULT_LOG_RING_BYTES
    kv: KvSpec | None = None  # None: slots are neither saved nor restored
    sleep: SleepSpec | None = None  # None: it cannot sleep
    devices: tuple[str, ...] = ()  # where it may run; ${DEVICE} names the one chosen

    @property
    def probes_health(self) -> bool:
        return self.check_endpoint.strip() != CHECK_DISABLED

    def health_url(self) -> str:
        """The check endpoint joined onto the proxy URL, as real requests would reach it."""
        base = self.proxy_url.rstrip("/")
        path = self.check_endpoint.strip()
        return base + (path if path.startswith("/") else "/" + path)

    def problems(self) -> list[str]:
        """Why this spec cannot be started (empty when it can)."""
        found = []
        if not self.argv or not self.argv[0]:
            found.append("empty command")
        if not self.proxy_url:
            found.append("upstream proxy missing")
        else:
            parts = urlsplit(self.proxy_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                found.append(f"invalid proxy URL {self.proxy_url!r}")
        return found

    def on_device(self, device: str | None) -> ProcessSpec:
        """This spec with `${DEVICE}` and `${DEVICE_INDEX}` filled in for `device` (one of
        `devices`; None or one it does not name: the first). Without devices, itself."""
        if not self.devices:
            return self
        chosen = device if device in self.devices else self.devices[0]
        index = str(self.devices.index(chosen))

        def fill(text: str) -> str:
            return text.replace(DEVICE_INDEX_MACRO, index).replace(DEVICE_MACRO, chosen)

        return replace(
            self,
            argv=tuple(fill(a) for a in self.argv),
            stop_argv=tuple(fill(a) for a in self.stop_argv) if self.stop_argv else None,
            env={k: fill(v) for k, v in self.env.items()},
        )

    def stop_command(self, pid: int) -> list[str] | None:
        """cmdStop with ${PID} filled in, or None when the stop is SIGTERM to the group."""
        if not self.stop_argv:
            return None
        return [arg.replace(PID_MACRO, str(pid)) for arg in self.stop_argv]
