"""The dashboard against the real control server: views, actions, errors, reconnects.

The server is swapd's own (`swapd.control.server`) with the control tests'
in-memory backend, in a trio thread; the dashboard talks to it over the Unix
socket exactly as it would to a running daemon.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import msgspec
import pytest

from swapctl import protocol as p
from swaptui.app import SwapTUI
from swaptui.connection import Backoff, DaemonSource, Target
from swaptui.screens.confirm import ConfirmScreen
from swaptui.screens.unload import UnloadScreen
from swaptui.screens.verdict import VerdictScreen
from swaptui.state import DashboardState
from swaptui.widgets.log_view import LogView
from tests.tui.fakes import rows_of, screen_text, until

pytest.importorskip("swapd.control.server", reason="the control server is not in this tree")

from swapd.control.interface import ControlError
from tests.integration.control.fake_backend import FakeBackend
from tests.tui.control_server import ServerThread

pytestmark = pytest.mark.anyio


@pytest.fixture
def sock_path() -> Iterator[Path]:
    # sun_path holds 108 bytes: keep the socket in a short directory.
    directory = Path(tempfile.mkdtemp(prefix="swt-", dir="/tmp"))
    try:
        yield directory / "control.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def server(sock_path: Path) -> Iterator[ServerThread]:
    thread = ServerThread(sock_path).start()
    try:
        yield thread
    finally:
        thread.stop()


def live_app(path: Path) -> tuple[SwapTUI, DaemonSource]:
    source = DaemonSource(Target(socket=path), backoff=Backoff(initial=0.05, maximum=0.2))
    return SwapTUI(source, DashboardState(), refresh_interval=0.01), source


async def test_views_show_what_the_daemon_reports(server: ServerThread) -> None:
    app, _ = live_app(server.path)
    async with app.run_test(size=(100, 30)) as pilot:
        # Waits on the screen itself: a table re-laid out with new rows takes a refresh.
        await until(
            pilot,
            lambda: "alpha stopped - 5800 - - - (1m00s) - s1" in rows_of(screen_text(app)),
            "the models on screen",
        )
        text = screen_text(app)
        assert text.splitlines()[0].startswith("● connected │ swapd 0.1.0-test │ up ")
        assert "beta stopped - 5801 - - - (1m00s) - s2" in rows_of(text)
        assert "states: ● stopped  ● starting  ● ready  ● stopping" in text
        # Matrix view: the daemon's sets and its explanation of the selected model.
        await pilot.press("4")
        await until(pilot, lambda: "alpha" in app.state.explain, "the explanation")
        text = screen_text(app)
        assert "s1" in text and "alpha" in text
        assert "alpha (stopped): start" in text
        # Live log events land in the log view.
        server.call(
            server.backend.bus.publish, p.LogLines(time=time.time(), source="beta", text="hi\n")
        )
        await pilot.press("2")
        await until(pilot, lambda: app.query_one(LogView).line_count >= 1, "the log line")
        assert "beta         hi" in screen_text(app)


async def test_keys_drive_the_daemon(server: ServerThread) -> None:
    backend = server.backend
    app, _ = live_app(server.path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "gamma" in app.state.models, "the models reply")
        await pilot.press("l")  # alpha, the first row
        await until(pilot, lambda: app.state.models["alpha"].state == "ready", "alpha ready")
        assert backend.models_["alpha"].state == "ready"
        assert app.state.verdict is not None and app.state.verdict.message.startswith(
            "alpha ready in 0.2"
        )
        rows = [line.split()[:2] for line in screen_text(app).splitlines()]
        assert ["alpha", "ready"] in rows
        # The swaps view shows the daemon's decision log, refreshed on the state change.
        await pilot.press("down", "l")
        await until(pilot, lambda: app.state.models["beta"].state == "ready", "beta ready")
        await pilot.press("u")
        await until(pilot, lambda: app.state.models["beta"].state == "stopped", "beta stopped")
        await pilot.press("U")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await until(pilot, lambda: app.state.models["alpha"].state == "stopped", "all stopped")
        assert app.state.verdict is not None
        assert app.state.verdict.message == "unloaded alpha"


async def test_daemon_refusals_are_shown_not_raised(server: ServerThread) -> None:
    backend = server.backend
    backend.failing.add("alpha")
    backend.reload_outcome = ControlError(
        "config_invalid",
        "/etc/swapd/config.yaml: 1 problem; the old config keeps running",
        problems=[
            p.Problem(
                message='expected int >= -1, got "soon"',
                file="config.yaml",
                line=12,
                column=5,
                path="models.llama.ttl",
            )
        ],
    )
    app, _ = live_app(server.path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "gamma" in app.state.models, "the models reply")
        await pilot.press("l")
        await until(
            pilot,
            lambda: app.state.verdict is not None and not app.state.verdict.ok,
            "the load failure",
        )
        verdict = app.state.verdict
        assert verdict is not None
        assert verdict.message == "load_failed: alpha exited with code 1"
        assert verdict.problems == ("log tail:", "error: no such file")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, VerdictScreen), "the reload verdict")
        text = screen_text(app)
        assert "config_invalid: /etc/swapd/config.yaml: 1 problem" in text
        assert 'config.yaml:12:5: models.llama.ttl: expected int >= -1, got "soon"' in text
        assert app.is_running


async def test_reconnects_and_resubscribes_after_the_daemon_restarts(
    server: ServerThread, sock_path: Path
) -> None:
    app, source = live_app(sock_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: source.connections == 1, "the first connection")
        await asyncio.to_thread(server.stop)
        await until(
            pilot, lambda: app.state.connection.status == "disconnected", "the disconnection"
        )
        header = screen_text(app).splitlines()[0]
        assert header.startswith("✖ disconnected")
        await until(pilot, lambda: app.state.connection.attempts >= 2, "a failed retry")
        assert "no such socket (is swapd running?" in screen_text(app).splitlines()[0]
        # The daemon comes back with different models.
        restarted = ServerThread(sock_path, FakeBackend(models=("delta",))).start()
        try:
            await until(pilot, lambda: source.connections == 2, "the reconnection")
            await until(pilot, lambda: list(app.state.models) == ["delta"], "the new models")
            assert screen_text(app).splitlines()[0].startswith("● connected")
            # Resubscribed: events of the new daemon arrive.
            restarted.call(
                restarted.backend.bus.publish,
                p.StateChanged(time=time.time(), model="delta", old="stopped", new="starting"),
            )
            await until(
                pilot, lambda: app.state.models["delta"].state == "starting", "the new event"
            )
        finally:
            await asyncio.to_thread(restarted.stop)


FAKE_SSH = (sys.executable, str(Path(__file__).with_name("fake_ssh.py")))


async def test_over_ssh_the_bridge_carries_the_protocol(server: ServerThread) -> None:
    target = Target(ssh_host="gpu-box", remote_socket=str(server.path), ssh_command=FAKE_SSH)
    source = DaemonSource(target, backoff=Backoff(initial=0.05, maximum=0.2))
    app = SwapTUI(source, DashboardState(), refresh_interval=0.01)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "gamma" in app.state.models, "the models over ssh")
        await pilot.press("l")
        await until(pilot, lambda: app.state.models["alpha"].state == "ready", "alpha ready")
        assert server.backend.models_["alpha"].state == "ready"


async def test_ssh_failures_are_shown_with_sshs_own_words() -> None:
    target = Target(ssh_host="unreachable", ssh_command=FAKE_SSH)
    # A long first retry delay keeps the header on "disconnected" while we read it.
    source = DaemonSource(target, backoff=Backoff(initial=30))
    app = SwapTUI(source, DashboardState(), refresh_interval=0.01)
    async with app.run_test(size=(140, 30)) as pilot:
        await until(pilot, lambda: app.state.connection.attempts >= 1, "the failure")
        header = screen_text(app).splitlines()[0]
        # The countdown may have ticked below 30s on a loaded machine.
        assert re.match(
            r"✖ disconnected \(retry [\d.]+s, #1\): "
            r"ssh: connect to host unreachable port 22: Connection refused",
            header,
        ), header


async def test_a_burst_of_10k_log_lines_through_the_socket(server: ServerThread) -> None:
    app, _ = live_app(server.path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "gamma" in app.state.models, "the models reply")
        await pilot.press("2")

        def burst() -> None:
            # 100 chunks of 100 lines, published at once, as a chatty server's pipe delivers.
            for chunk in range(100):
                text = "".join(f"line {chunk * 100 + i}\n" for i in range(100))
                server.backend.bus.publish(p.LogLines(time=time.time(), source="alpha", text=text))

        began = time.monotonic()
        server.call(burst)
        view = app.query_one(LogView)
        await until(pilot, lambda: view.line_count >= 10_000, "the burst")
        # Following: the view scrolls to the end once the new size is laid out.
        await until(
            pilot,
            lambda: view.visible_lines()[-1].text == "line 9999",
            "the last line at the bottom of the view",
        )
        assert time.monotonic() - began < 10
        # Still answering keys promptly.
        began = time.monotonic()
        await pilot.press("1")
        assert app.current_view == "models"
        assert time.monotonic() - began < 2


async def test_an_unexpected_error_reconnects_instead_of_freezing(server: ServerThread) -> None:
    app, source = live_app(server.path)
    original = app.state.apply_status
    calls = 0

    def flaky(status: p.Status) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("a status we cannot use")
        original(status)

    app.state.apply_status = flaky  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: source.connections == 1, "the second attempt to connect")
        assert calls >= 2  # the first status failed; a later session took one
        assert app.state.connection.status == "connected"
        assert "gamma" in app.state.models


class CuttingBackend(FakeBackend):
    """Records each unload; one with `now` cuts what is in flight on the models it stops."""

    def __init__(self) -> None:
        super().__init__()
        self.unloads: list[tuple[list[str] | None, bool]] = []

    async def unload(self, models: Sequence[str] | None, now: bool = False) -> p.UnloadReply:
        self.unloads.append((None if models is None else list(models), now))
        names = list(self.models_) if models is None else list(models)
        in_flight = sum(self.models_[m].in_flight for m in names if m in self.models_)
        reply = await super().unload(models, now)
        return msgspec.structs.replace(reply, cut=in_flight if now else 0)


def set_model(backend: FakeBackend, model: str, **fields: object) -> Callable[[], None]:
    """A change to one of the backend's models, to run in the server's loop."""

    def change() -> None:
        backend.models_[model] = msgspec.structs.replace(backend.models_[model], **fields)

    return change


async def test_requests_in_flight_are_kept_current_and_cutting_them_asks_first(
    sock_path: Path,
) -> None:
    backend = CuttingBackend()
    server = ServerThread(sock_path, backend).start()
    try:
        app, _ = live_app(sock_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: "gamma" in app.state.models, "the models reply")
            await pilot.press("l")
            await until(pilot, lambda: app.state.models["alpha"].state == "ready", "alpha ready")
            # Two requests are granted: their events make the dashboard ask for the counts.
            server.call(set_model(backend, "alpha", state="ready", in_flight=2))
            server.call(
                backend.bus.publish,
                p.RequestEvent(time=time.time(), model="alpha", phase="granted", request="1"),
            )
            await until(
                pilot,
                lambda: any(
                    row.startswith("alpha ready - 5800 2 ") for row in rows_of(screen_text(app))
                ),
                "2 in flight on alpha's row",
            )
            await pilot.press("u")
            await until(pilot, lambda: isinstance(app.screen, UnloadScreen), "the question")
            assert "alpha is serving 2 requests in flight" in screen_text(app)
            await pilot.press("c")
            await until(
                pilot,
                lambda: app.state.verdict is not None and app.state.verdict.action == "unload",
                "the unload's verdict",
            )
            assert backend.unloads == [(["alpha"], True)]
            verdict = app.state.verdict
            assert verdict is not None and verdict.message == "unloaded alpha"
            assert verdict.warnings == ("cut 2 requests in flight: their clients got an error",)
    finally:
        await asyncio.to_thread(server.stop)


async def test_who_waits_and_how_a_model_failed_come_from_the_daemon(server: ServerThread) -> None:
    backend = server.backend
    app, _ = live_app(server.path)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: "gamma" in app.state.models, "the models reply")
        server.call(
            backend.bus.publish,
            p.QueueChanged(
                time=time.time(), queued={"beta": 1}, waiting={"gamma": 3}, order=["beta"]
            ),
        )
        await until(pilot, lambda: app.state.models["gamma"].waiting == 3, "the queue event")
        rows = rows_of(screen_text(app))
        assert "beta stopped - 5801 - - 1 (1m00s) - s2" in rows
        assert "gamma stopped - 5802 - 3 - (1m00s) - s1" in rows
        # beta crashes: the event says how, the models reply it prompts brings the counts.
        failed_at = time.time() - 1
        change = set_model(
            backend,
            "beta",
            state="failed",
            starts=2,
            failures=1,
            last_failure="exited with code 3 while serving",
            last_failure_at=failed_at,
        )
        server.call(change)
        server.call(
            backend.bus.publish,
            p.StateChanged(
                time=failed_at,
                model="beta",
                old="ready",
                new="failed",
                reason="exited with code 3 while serving",
            ),
        )
        await pilot.press("down")
        await until(pilot, lambda: app.state.models["beta"].failures == 1, "the counts")
        await until(
            pilot,
            lambda: "exited with code 3 while serving (1 failure in 2 starts)" in screen_text(app),
            "the note under the table",
        )
        assert any(row.startswith("beta failed - 5801") for row in rows_of(screen_text(app)))


async def test_a_reload_verdict_carries_what_changed_and_the_warnings(server: ServerThread) -> None:
    server.backend.reload_outcome = p.ReloadResult(
        path="/etc/swapd/config.yaml",
        changed=["alpha"],
        changes={"alpha": ["cmd", "env"]},
        unchanged=["beta", "gamma"],
        warnings=[
            p.Problem(
                message="in no set: it runs alone and evicts everything",
                file="config.yaml",
                line=9,
                column=3,
                path="models.gamma",
            )
        ],
    )
    app, _ = live_app(server.path)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: "gamma" in app.state.models, "the models reply")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, VerdictScreen), "the verdict")
        text = screen_text(app)
        assert "/etc/swapd/config.yaml: reloaded (changed: alpha (cmd, env))" in text
        assert (
            "warning: config.yaml:9:3: models.gamma: in no set: it runs alone and evicts everything"
            in text
        )


async def test_a_model_removed_while_explained_leaves_nothing_to_explain_and_the_link_up(
    sock_path: Path,
) -> None:
    backend = FakeBackend()
    server = ServerThread(sock_path, backend).start()
    app, source = live_app(sock_path)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: "gamma" in app.state.models, "the models reply")
            await pilot.press("down", "4")  # beta, explained in the Matrix view
            await until(pilot, lambda: "beta" in app.state.explain, "beta's explanation")

            def remove_beta() -> None:
                del backend.models_["beta"]
                backend.bus.publish(
                    p.ConfigReloaded(
                        time=time.time(), ok=True, path="/etc/swapd/config.yaml", removed=["beta"]
                    )
                )

            server.call(remove_beta)
            await until(
                pilot,
                lambda: app.state.explain["beta"].action == "none",
                "the daemon's not_found read as nothing to explain",
            )
            assert set(app.state.models) == {"alpha", "gamma"}
            # The selection moved to a model that exists, and that one is explained.
            await until(
                pilot, lambda: "alpha (stopped): start" in screen_text(app), "alpha explained"
            )
            assert app.state.connection.status == "connected" and source.connections == 1
            # A new session (the daemon restarted) must not trip over it either.
            await asyncio.to_thread(server.stop)
            await until(
                pilot, lambda: app.state.connection.status != "connected", "the disconnection"
            )
            server = ServerThread(sock_path, backend).start()
            await until(pilot, lambda: source.connections == 2, "the reconnection")
            assert app.state.connection.status == "connected"
    finally:
        await asyncio.to_thread(server.stop)


class ActivityFails(FakeBackend):
    """A daemon that fails on `activity`: with an error frame, or (an older server) by
    ending the connection."""

    async def activity(self, query: p.ActivityRequest) -> list[p.RequestRecord]:
        raise RuntimeError("no history here")


async def test_a_daemon_that_fails_on_activity_is_shown_without_it(sock_path: Path) -> None:
    server = ServerThread(sock_path, ActivityFails()).start()
    app, source = live_app(sock_path)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: source.connections == 1, "a session that lasts")
            assert "gamma" in app.state.models
            await pilot.press("5")
            # Why there are no records, in the daemon's words or ours.
            await until(
                pilot,
                lambda: (
                    bool(app.state.activity_note) and app.state.activity_note in screen_text(app)
                ),
                "the activity view saying why it is empty",
            )
            assert app.state.connection.status == "connected"
    finally:
        await asyncio.to_thread(server.stop)
