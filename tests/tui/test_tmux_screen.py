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
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from swapctl import protocol as p

pytest.importorskip("swapd.control.server", reason="the control server is not in this tree")

from tests.tui.control_server import ServerThread
from tests.tui.swapd_process import FAKE_UPSTREAM_CMD, SwapdProcess
from tests.tui.tmux import TMUX, Tmux

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux)")

REPO = Path(__file__).resolve().parents[2]


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
        screen = tmux.wait_for(
            lambda s: "gamma" in s and "● connected" in s and "q Quit" in s, "the models"
        )
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
        assert tmux.exit_status() == "0", tmux.screen()
    finally:
        tmux.kill()


def test_the_activity_view_in_a_real_terminal() -> None:
    """A real swapd (fake upstream): a request finishes, the Activity view shows it, Enter
    opens its record and capture, `e` narrows the outcome, `q` exits cleanly."""
    pytest.importorskip("swapd.history.recorder", reason="this swapd records no requests")
    directory = Path(tempfile.mkdtemp(prefix="swt-", dir="/tmp"))
    config = directory / "swapd.yaml"
    config.write_text(f"models:\n  alpha:\n    cmd: {FAKE_UPSTREAM_CMD} --timings\n")
    daemon = SwapdProcess(config, directory / "c.sock")
    tmux: Tmux | None = None
    try:
        daemon.wait_serving()
        body = {"model": "alpha", "messages": [{"role": "user", "content": "hello tmux"}]}
        response = httpx2.post(
            f"http://127.0.0.1:{daemon.port}/v1/chat/completions", json=body, timeout=60
        )
        assert response.status_code == 200
        tmux = Tmux(
            [sys.executable, "-m", "swaptui", "--socket", str(directory / "c.sock")],
            {
                "TERM": "xterm-256color",
                "TZ": "UTC",
                "PYTHONPATH": os.pathsep.join(str(REPO / d) for d in ("tui", "shared", "daemon")),
            },
        )
        tmux.wait_for(lambda s: "● connected" in s and "alpha" in s, "the models")
        tmux.keys("5")
        screen = tmux.wait_for(
            lambda s: any(line.split()[1:3] == ["alpha", "200"] for line in s.splitlines()),
            "the request's row",
        )
        assert "1 of 1 requests  outcome all" in screen
        row = next(line for line in screen.splitlines() if line.split()[1:3] == ["alpha", "200"])
        assert "42.5" in row.split()  # tokens/s, from llama-server's timings
        tmux.keys("Enter")
        screen = tmux.wait_for(lambda s: "request #1" in s and "path" in s, "the record")
        assert "outcome     200  done" in screen
        tmux.keys("Escape")
        tmux.wait_for(lambda s: "request #1" not in s, "the record to close")
        tmux.keys("e")
        tmux.wait_for(lambda s: "outcome done" in s and "1 shown" in s, "the outcome filter")
        tmux.keys("e")
        tmux.wait_for(lambda s: "outcome client_gone  no match" in s, "no match")
        tmux.keys("q")
        assert tmux.exit_status() == "0", tmux.screen()
    finally:
        if tmux is not None:
            tmux.kill()
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)
