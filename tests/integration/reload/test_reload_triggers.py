"""The reload triggers: SIGHUP to `swapd serve` (with systemd's RELOADING/READY
bracket on a notify socket) and `--watch-config` noticing an edit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from swapctl import protocol as p
from tests.integration.conftest import free_port
from tests.integration.http.conftest import start_port
from tests.integration.reload.conftest import FAKE, Watch, running


def two_models(port: int, *models: str) -> str:
    text = f"startPort: {port}\nmodels:\n"
    for model in models:
        text += f"  {model}:\n    cmd: {FAKE}\n"
    return text


def listed(base: str) -> list[str]:
    with httpx2.Client(base_url=base, timeout=20) as client:
        return [m["id"] for m in client.get("/v1/models").json()["data"]]


def receive_until(receiver: socket.socket, wanted: bytes) -> list[bytes]:
    """Notify messages up to and including the first that starts with `wanted`."""
    messages: list[bytes] = []
    while not (messages and messages[-1].startswith(wanted)):
        messages.append(receiver.recv(4096))
    return messages


def test_sighup_reloads_with_reloading_then_ready(tmp_path: Path) -> None:
    config = tmp_path / "swapd.yaml"
    port = start_port()
    config.write_text(two_models(port, "a"))
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(notify))
        receiver.settimeout(20)
        http = free_port()
        argv = [sys.executable, "-m", "swapd", "serve", "--config", str(config)]
        argv += ["--listen", f"127.0.0.1:{http}", "--control-socket", str(tmp_path / "c.sock")]
        env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert receiver.recv(4096) == b"READY=1"
            base = f"http://127.0.0.1:{http}"
            assert listed(base) == ["a"]

            config.write_text(two_models(port, "a", "b"))
            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            proc.send_signal(signal.SIGHUP)
            messages = receive_until(receiver, b"RELOADING=1")
            lines = messages[-1].decode().split("\n")
            assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
            assert int(lines[1].removeprefix("MONOTONIC_USEC=")) >= before
            receive_until(receiver, b"READY=1")
            assert listed(base) == ["a", "b"]

            # A broken file is refused, and systemd still hears READY=1 after it.
            config.write_text("models: [oops\n")
            proc.send_signal(signal.SIGHUP)
            receive_until(receiver, b"RELOADING=1")
            receive_until(receiver, b"READY=1")
            assert listed(base) == ["a", "b"] and proc.poll() is None

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_serve_watch_config_flag(tmp_path: Path) -> None:
    """`swapd serve --watch-config` reloads on an edit (about two polls of 1 s)."""
    config = tmp_path / "swapd.yaml"
    port = start_port()
    config.write_text(two_models(port, "a"))
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(notify))
        receiver.settimeout(20)
        http = free_port()
        argv = [sys.executable, "-m", "swapd", "serve", "--config", str(config), "--watch-config"]
        argv += ["--listen", f"127.0.0.1:{http}", "--control-socket", str(tmp_path / "c.sock")]
        env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert receiver.recv(4096) == b"READY=1"
            config.write_text(two_models(port, "a", "b"))
            receive_until(receiver, b"RELOADING=1")
            receive_until(receiver, b"READY=1")
            assert listed(f"http://127.0.0.1:{http}") == ["a", "b"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.trio
async def test_watch_config_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    port = start_port()
    path.write_text(two_models(port, "a"))
    async with running(path, watch_config=True, watch_interval=0.05) as (daemon, c, _sock):
        with Watch(daemon.bus, "config") as events:
            path.write_text(two_models(port, "a", "b"))
            event = await events.until(lambda e: isinstance(e, p.ConfigReloaded))
        assert event.ok and event.added == ["b"]
        assert (await c.post("/v1/chat/completions", json={"model": "b"})).status_code == 200
        with Watch(daemon.bus, "config") as events:
            path.write_text(two_models(port, "a", "b").replace("cmd:", "ttl: 5\n    cmd:", 1))
            event = await events.until(lambda e: isinstance(e, p.ConfigReloaded))
        assert event.ok and event.changes == {"a": ["ttl"]}, "the event says what changed"
        assert event.changed_labels() == ["a (ttl)"]
        with Watch(daemon.bus, "config") as events:
            path.write_text(two_models(port, "a", "b") + "  c:\n    ttl: soon\n")
            event = await events.until(lambda e: isinstance(e, p.ConfigReloaded))
        assert not event.ok and event.problems
        assert daemon.loaded.path == path and list(daemon.loaded.models) == ["a", "b"]
