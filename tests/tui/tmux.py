"""A detached tmux session on a private server, to run swaptui in a real terminal.

The private server (`-L`) keeps tests away from a user's own sessions, and
`kill` ends only that server.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TMUX = shutil.which("tmux")
WIDTH, HEIGHT = 100, 30
WAIT = 20.0
_sessions = itertools.count()


class Tmux:
    """One detached session on a private tmux server."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        assert TMUX is not None
        self.server = f"swaptui-test-{os.getpid()}-{next(_sessions)}"
        self.base = [TMUX, "-L", self.server, "-f", "/dev/null"]
        self._directory = Path(tempfile.mkdtemp(prefix="swt-tmux-"))
        self.status_path = self._directory / "status"
        exports = [f"{key}={value}" for key, value in env.items()]
        # A shell waits for the program and writes its exit status to a file: tmux's own
        # pane_dead_status depends on the tmux server reaping the child, which was seen
        # to lag behind (a zombie pane) on a busy machine.
        script = 'env "$@"; echo $? > "$0"'
        self.run(
            "new-session",
            "-d",
            "-s",
            "ui",
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "sh",
            "-c",
            script,
            str(self.status_path),
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
        """Wait for the program to exit and return its exit status, as the shell saw it."""
        deadline = time.monotonic() + WAIT
        while not (self.status_path.exists() and self.status_path.read_text().endswith("\n")):
            if time.monotonic() > deadline:
                raise AssertionError(f"the program did not exit:\n{self.screen()}")
            time.sleep(0.05)
        return self.status_path.read_text().strip()

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
        shutil.rmtree(self._directory, ignore_errors=True)
