"""A detached tmux session on a private server, to run swaptui in a real terminal.

The private server (`-L`) keeps tests away from a user's own sessions, and
`kill` ends only that server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

TMUX = shutil.which("tmux")
WIDTH, HEIGHT = 100, 30
WAIT = 20.0


class Tmux:
    """One detached session on a private tmux server."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        assert TMUX is not None
        self.server = f"swaptui-test-{os.getpid()}"
        self.base = [TMUX, "-L", self.server, "-f", "/dev/null"]
        exports = [f"{key}={value}" for key, value in env.items()]
        self.run(
            "new-session",
            "-d",
            "-s",
            "ui",
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "env",
            *exports,
            *command,
        )
        # Keep the pane after the program exits, so its last screen (or traceback) is readable.
        self.run("set-option", "-t", "ui", "remain-on-exit", "on")

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=WAIT, check=True
        )
        return result.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "ui")

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.run("send-keys", "-t", "ui", key)

    def exit_status(self) -> str:
        """Wait for the program to exit; its exit code, or "signal N"."""
        deadline = time.monotonic() + WAIT
        while True:
            status = self.run(
                "display-message", "-p", "-t", "ui", "#{pane_dead_status}|#{pane_dead_signal}"
            ).strip()
            code, _, signal = status.partition("|")
            if code:
                return code
            if signal:
                return f"signal {signal}"
            if time.monotonic() > deadline:
                raise AssertionError(f"the program did not exit:\n{self.screen()}")
            time.sleep(0.05)

    def wait_for(self, condition: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + WAIT
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")
            time.sleep(0.05)

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=WAIT)
