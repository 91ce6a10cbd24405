"""The dashboard on a real `swapd serve`: fake upstreams for the Pilot test, and the
embedded demo (real llama-server, SmolLM2) for the end-to-end check under tmux."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from swaptui.app import SwapTUI
from swaptui.connection import Backoff, DaemonSource, Target
from swaptui.screens.confirm import ConfirmScreen
from swaptui.screens.unload import UnloadScreen
from swaptui.screens.verdict import VerdictScreen
from swaptui.state import DashboardState
from swaptui.widgets.log_view import LogView
from tests.tui.fakes import rows_of, screen_text, until
from tests.tui.swapd_process import FAKE_UPSTREAM_CMD, SwapdProcess
from tests.tui.tmux import TMUX, Tmux

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short: the control socket's path must fit in sun_path (108 bytes).
    directory = Path(tempfile.mkdtemp(prefix="swt-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def fake_config(directory: Path) -> Path:
    config = directory / "swapd.yaml"
    config.write_text(
        "models:\n"
        "  alpha:\n"
        f"    cmd: {FAKE_UPSTREAM_CMD}\n"
        "    ttl: 300\n"
        "  beta:\n"
        f"    cmd: {FAKE_UPSTREAM_CMD}\n"
        "  chatty:\n"
        f"    cmd: {FAKE_UPSTREAM_CMD} --print-lines 10000\n"
    )
    return config


@pytest.mark.anyio
async def test_dashboard_drives_a_real_daemon(workdir: Path) -> None:
    control = workdir / "c.sock"
    daemon = SwapdProcess(fake_config(workdir), control)
    try:
        await asyncio.to_thread(daemon.wait_serving)
        source = DaemonSource(Target(socket=control), backoff=Backoff(initial=0.05, maximum=0.3))
        app = SwapTUI(source, DashboardState(), refresh_interval=0.01)
        async with app.run_test(size=(100, 30)) as pilot:
            models = {"alpha", "beta", "chatty"}
            await until(pilot, lambda: set(app.state.models) == models, "the models")
            assert screen_text(app).splitlines()[0].startswith("● connected │ swapd ")
            # Load alpha (first row, sorted): a real process with a pid and a port.
            await pilot.press("l")
            # Ready and with its pid: the pid comes with the models reply a state change
            # prompts, which may have been taken while it was still starting.
            await until(
                pilot,
                lambda: (
                    app.state.models["alpha"].state == "ready"
                    and app.state.models["alpha"].pid is not None
                ),
                "alpha ready, with its pid",
            )
            rows = [line.split() for line in screen_text(app).splitlines()]
            alpha = next(row for row in rows if row[:1] == ["alpha"])
            assert alpha[1] == "ready" and alpha[2].isdigit()
            # Beta evicts alpha (both in the default exclusive group).
            await pilot.press("down", "l")
            await until(
                pilot,
                lambda: (
                    app.state.models["beta"].state == "ready"
                    and app.state.models["alpha"].state == "stopped"
                ),
                "the swap to beta",
            )
            # The logs view has lines from the model's own process.
            await pilot.press("2")
            view = app.query_one(LogView)
            await until(
                pilot,
                lambda: any(line.source == "beta" for line in view.visible_lines()),
                "beta's log",
            )
            # A model that prints 10k lines as it starts: the lines (or, if the daemon
            # had to drop some for us, a note saying how many) arrive, and keys answer.
            await pilot.press("1", "down", "down", "l", "2")
            await until(
                pilot,
                lambda: any(line.text == "startup line 9999" for line in view.visible_lines()),
                "the last of 10k lines, on screen",
                within=30,
            )
            chatty = sum(1 for line in app.state.logs.lines if line.source == "chatty")
            if chatty < 10_000:
                assert app.state.events_missed > 0, chatty
            began = time.monotonic()
            await pilot.press("1")
            assert app.current_view == "models"
            assert time.monotonic() - began < 2
            await pilot.press("1", "U")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            await pilot.press("y")
            await until(
                pilot,
                lambda: all(row.state == "stopped" for row in app.state.models.values()),
                "everything stopped",
            )
            # The daemon goes away and comes back: the dashboard follows.
            await asyncio.to_thread(daemon.stop)
            await until(
                pilot, lambda: app.state.connection.status == "disconnected", "the disconnection"
            )
            daemon = SwapdProcess(fake_config(workdir), control)
            await asyncio.to_thread(daemon.wait_serving)
            await until(pilot, lambda: source.connections == 2, "the reconnection")
    finally:
        await asyncio.to_thread(daemon.stop)


@pytest.mark.anyio
async def test_reload_verdict_from_a_real_daemon(workdir: Path) -> None:
    control = workdir / "c.sock"
    config = fake_config(workdir)
    daemon = SwapdProcess(config, control)
    try:
        await asyncio.to_thread(daemon.wait_serving)
        source = DaemonSource(Target(socket=control), backoff=Backoff(initial=0.05, maximum=0.3))
        app = SwapTUI(source, DashboardState(), refresh_interval=0.01)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: "chatty" in app.state.models, "the models")
            # A broken config is refused with its location; the old one keeps running.
            config.write_text(config.read_text().replace("ttl: 300", "ttl: soon"))
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, VerdictScreen), "the verdict")
            verdict = app.state.verdict
            assert verdict is not None and not verdict.ok
            assert any(
                problem.startswith(f"{config}:4:") and "ttl" in problem
                for problem in verdict.problems
            ), verdict
            assert f"{config}:4:" in screen_text(app)
            await pilot.press("escape")
            assert set(app.state.models) == {"alpha", "beta", "chatty"}
            # A good config: the verdict says what changed, and the new model appears.
            fixed = config.read_text().replace("ttl: soon", "ttl: 300")
            config.write_text(fixed + f"  delta:\n    cmd: {FAKE_UPSTREAM_CMD}\n")
            await pilot.press("r")
            await until(
                pilot,
                lambda: app.state.verdict is not None and app.state.verdict.ok,
                "the reload",
            )
            assert "added: delta" in app.state.verdict.message
            await until(pilot, lambda: "delta" in app.state.models, "the new model")
    finally:
        await asyncio.to_thread(daemon.stop)


@pytest.mark.anyio
async def test_a_failed_start_is_shown_as_failed_with_how_and_counts(workdir: Path) -> None:
    control = workdir / "c.sock"
    config = workdir / "swapd.yaml"
    config.write_text(
        f"models:\n  broken:\n    cmd: {FAKE_UPSTREAM_CMD}"
        " --exit-during-start 0 --exit-code 3 --load-delay 30\n"
    )
    daemon = SwapdProcess(config, control)
    try:
        await asyncio.to_thread(daemon.wait_serving)
        source = DaemonSource(Target(socket=control), backoff=Backoff(initial=0.05, maximum=0.3))
        app = SwapTUI(source, DashboardState(), refresh_interval=0.01)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: "broken" in app.state.models, "the models")
            await pilot.press("l")
            await until(
                pilot,
                lambda: app.state.verdict is not None and app.state.verdict.action == "load",
                "the load's verdict",
            )
            assert app.state.verdict is not None and not app.state.verdict.ok
            await until(pilot, lambda: app.state.models["broken"].failures == 1, "the counts")
            rows = rows_of(screen_text(app))
            assert any(row.startswith("broken failed - ") for row in rows), rows
            note = next(row for row in rows if row.startswith("broken: failed "))
            assert re.fullmatch(
                r"broken: failed \S+ ago: exited with code 3 while starting "
                r"\(1 failure in 1 start\)",
                note,
            ), note
    finally:
        await asyncio.to_thread(daemon.stop)


async def stream_until_cut(url: str, model: str, first: asyncio.Event) -> str:
    """A streaming chat request: set `first` once a chunk arrived, return its whole text."""
    async with httpx2.AsyncClient(base_url=url, timeout=60) as client:
        body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            chunks = response.aiter_text()
            text = await anext(chunks)
            first.set()
            return text + "".join([chunk async for chunk in chunks])


@pytest.mark.anyio
async def test_unloading_a_model_that_streams_asks_then_cuts_the_stream(workdir: Path) -> None:
    control = workdir / "c.sock"
    config = workdir / "swapd.yaml"
    config.write_text(
        f"models:\n  endless:\n    cmd: {FAKE_UPSTREAM_CMD} --token-interval 0.01 --tokens 100000\n"
    )
    daemon = SwapdProcess(config, control)
    try:
        await asyncio.to_thread(daemon.wait_serving)
        source = DaemonSource(Target(socket=control), backoff=Backoff(initial=0.05, maximum=0.3))
        app = SwapTUI(source, DashboardState(), refresh_interval=0.01)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: "endless" in app.state.models, "the models")
            first = asyncio.Event()
            stream = asyncio.create_task(
                stream_until_cut(f"http://127.0.0.1:{daemon.port}", "endless", first)
            )
            await asyncio.wait_for(first.wait(), 30)
            # The request's events make the dashboard ask for the count in flight.
            await until(
                pilot, lambda: app.state.models["endless"].in_flight == 1, "1 request in flight"
            )
            await pilot.press("u")
            await until(pilot, lambda: isinstance(app.screen, UnloadScreen), "the question")
            assert "endless is serving 1 request in flight" in screen_text(app)
            await pilot.press("c")
            text = await asyncio.wait_for(stream, 30)
            await until(
                pilot,
                lambda: app.state.verdict is not None and app.state.verdict.action == "unload",
                "the verdict",
            )
            verdict = app.state.verdict
            assert verdict is not None and verdict.message == "unloaded endless"
            assert verdict.warnings == ("cut 1 request in flight: their clients got an error",)
            assert "[DONE]" not in text and '"error"' in text.rstrip().split("\n\n")[-1]
            await until(
                pilot, lambda: app.state.models["endless"].state == "stopped", "endless stopped"
            )
    finally:
        await asyncio.to_thread(daemon.stop)


def demo_env() -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "swapd", "demo-env", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        pytest.fail(f"the demo's server or model is not installed: {result.stderr.strip()}")
    return {str(k): str(v) for k, v in json.loads(result.stdout).items()}


@pytest.mark.e2e
@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux)")
def test_tmux_on_the_demo(workdir: Path) -> None:
    """swaptui in a real terminal against the demo: a real llama-server loads on `l`."""
    env = demo_env()
    control = workdir / "c.sock"
    config = workdir / "demo.yaml"
    shutil.copy(REPO / "config" / "demo.yaml", config)
    daemon = SwapdProcess(config, control, env=env)
    tmux: Tmux | None = None
    try:
        daemon.wait_serving(60)
        tmux = Tmux(
            [sys.executable, "-m", "swaptui", "--socket", str(control)],
            {
                "TERM": "xterm-256color",
                "PYTHONPATH": ":".join(str(REPO / d) for d in ("tui", "shared", "daemon")),
            },
        )
        screen = tmux.wait_for(lambda s: "● connected" in s and "chat" in s, "the demo's models")
        first = next(
            line.split()[0]
            for line in screen.splitlines()[3:]
            if line.split() and line.split()[1:2] == ["stopped"]
        )
        tmux.keys("l")
        tmux.wait_for(
            lambda s: any(line.split()[:2] == [first, "ready"] for line in s.splitlines()),
            f"{first} ready (a real llama-server)",
        )
        tmux.keys("4")
        tmux.wait_for(lambda s: "running:" in s and first in s, "the matrix view")
        tmux.keys("q")
        assert tmux.exit_status() == "0", tmux.screen()
    finally:
        if tmux is not None:
            tmux.kill()
        daemon.stop()
