"""swaptui in a real terminal: tmux runs it against a live control server, and
`tmux capture-pane` reads what an operator would see.

This is the check Pilot cannot make: the real driver, terminal size
negotiation, key decoding from a pty, and a clean exit on `q`. It runs on a
private tmux server (`-L`) that it kills afterwards, so it never touches a
user's sessions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from swapctl import protocol as p

pytest.importorskip("swapd.control.server", reason="the control server is not in this tree")

from tests.tui.control_server import ServerThread

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux)")

REPO = Path(__file__).resolve().parents[2]
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

    def pane_dead(self) -> bool:
        return self.run("display-message", "-p", "-t", "ui", "#{pane_dead}").strip() == "1"

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


@pytest.fixture
def server() -> Iterator[ServerThread]:
    directory = Path(tempfile.mkdtemp(prefix="swt-", dir="/tmp"))
    thread = ServerThread(directory / "control.sock").start()
    try:
        yield thread
    finally:
        thread.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_swaptui_in_a_real_terminal(server: ServerThread) -> None:
    env = {
        "TERM": "xterm-256color",
        "TZ": "UTC",
        "PYTHONPATH": os.pathsep.join(str(REPO / d) for d in ("tui", "shared", "daemon")),
    }
    tmux = Tmux([sys.executable, "-m", "swaptui", "--socket", str(server.path)], env)
    try:
        screen = tmux.wait_for(lambda s: "gamma" in s and "● connected" in s, "the models")
        lines = screen.splitlines()
        assert lines[0].startswith("● connected │ swapd 0.1.0-test")
        assert any(line.split()[:3] == ["alpha", "stopped", "-"] for line in lines)
        assert "l Load" in screen and "q Quit" in screen
        # Load the selected model (the first row) with a real key press.
        tmux.keys("l")
        tmux.wait_for(
            lambda s: any(line.split()[:2] == ["alpha", "ready"] for line in s.splitlines()),
            "alpha ready",
        )
        assert server.backend.models_["alpha"].state == "ready"
        # The logs view shows a line the daemon publishes.
        tmux.keys("2")
        server.call(
            server.backend.bus.publish,
            p.LogLines(time=time.time(), source="alpha", text="hello from the tmux check\n"),
        )
        tmux.wait_for(lambda s: "hello from the tmux check" in s, "the log line")
        # The help screen, then quit.
        tmux.keys("?")
        tmux.wait_for(lambda s: "swaptui keys" in s, "the help screen")
        tmux.keys("Escape")
        # A key sent right after Escape would be read as Alt+key: wait for the help to close.
        tmux.wait_for(lambda s: "swaptui keys" not in s, "the help screen to close")
        tmux.keys("q")
        deadline = time.monotonic() + WAIT
        while not tmux.pane_dead():
            assert time.monotonic() < deadline, f"swaptui did not quit:\n{tmux.screen()}"
            time.sleep(0.05)
        status = tmux.run("display-message", "-p", "-t", "ui", "#{pane_dead_status}").strip()
        assert status == "0", tmux.screen()
    finally:
        tmux.kill()
