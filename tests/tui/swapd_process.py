"""`swapd serve` as a child process for the TUI tests: start, wait until serving, stop.

The daemon runs in its own session so that stopping the test kills its whole
process group, model servers included, even if the daemon is wedged.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

FAKE_UPSTREAM_CMD = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SwapdProcess:
    def __init__(self, config: Path, control: Path, *, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.control = control
        self.port = free_port()
        # A file, not a pipe: nobody would drain a pipe after start-up, and a full pipe
        # would block the daemon's logging.
        self.log_path = config.with_suffix(".log")
        self._log = self.log_path.open("wb")
        argv = [sys.executable, "-m", "swapd", "serve", "--config", str(config)]
        argv += ["--listen", f"127.0.0.1:{self.port}", "--control-socket", str(control)]
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Its own state (the request history), beside the config: never the user's.
            env={**os.environ, "STATE_DIRECTORY": str(config.parent / "state"), **(env or {})},
        )

    def wait_serving(self, within: float = 30.0) -> None:
        """Wait until the daemon says it is serving and its control socket exists."""
        deadline = time.monotonic() + within
        while "swapd serving" not in self.text() or not self.control.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"swapd exited early:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"swapd did not start within {within}s:\n{self.text()}")
            time.sleep(0.05)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait; SIGKILL the whole group if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        code = self.proc.wait()
        self._log.close()
        return code
