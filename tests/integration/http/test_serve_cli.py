"""`swapd serve` as a process: start, serve, stop on SIGTERM with no child left behind."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import psutil

from tests.integration.conftest import free_port
from tests.integration.http.conftest import start_port

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"


def serve(config: Path, port: int, control: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "swapd", "serve", "--config", str(config)]
    argv += ["--listen", f"127.0.0.1:{port}", "--control-socket", str(control)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_serving(proc: subprocess.Popen[bytes], within: float = 20.0) -> str:
    """Read swapd's output until it says it is serving; returns what it printed."""
    assert proc.stdout is not None
    deadline = time.monotonic() + within
    seen = b""
    while b"swapd serving" not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"swapd did not start within {within}s: {seen!r}")
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            raise AssertionError(f"swapd exited early: {seen!r}")
        seen += chunk
    return seen.decode()


def test_config_error_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("models:\n  m:\n    ttl: soon\n")
    proc = serve(config, free_port(), tmp_path / "c.sock")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert b"bad.yaml:3:" in out and b"ttl" in out


def test_bad_listen_address_exits_2_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text("models:\n  m:\n    cmd: x\n    proxy: http://127.0.0.1:1\n")
    argv = [sys.executable, "-m", "swapd", "serve", "--config", str(config), "--listen", "::1:80"]
    proc = subprocess.run(argv, capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b"[::1]:8080" in proc.stderr


def test_serve_then_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "swapd.yaml"
    config.write_text(f"startPort: {start_port()}\nmodels:\n  m:\n    cmd: {FAKE}\n")
    port = free_port()
    proc = serve(config, port, tmp_path / "c.sock")
    try:
        base = f"http://127.0.0.1:{port}"
        head = wait_serving(proc)
        with httpx2.Client(base_url=base, timeout=20) as client:
            r = client.post("/v1/chat/completions", json={"model": "m", "max_tokens": 2})
            assert r.status_code == 200
            assert r.json()["choices"][0]["message"]["content"] == "tok0 tok1 "
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "the model's server runs as a child of swapd"
        assert (tmp_path / "c.sock").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"children outlived swapd: {alive}"
        assert not (tmp_path / "c.sock").exists()
        assert proc.stdout is not None
        output = head + proc.stdout.read().decode()
        # every line in swapd's one format, the HTTP server's included
        assert f"INFO swapd.http: listening on {base}" in output
        assert "] [INFO] " not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_busy_port_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "swapd.yaml"
    config.write_text(f"startPort: {start_port()}\nmodels:\n  m:\n    cmd: {FAKE}\n")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = serve(config, port, tmp_path / "c.sock")
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out
    assert b"cannot start" in out


def test_sd_notify_ready_status_stopping(tmp_path: Path) -> None:
    config = tmp_path / "swapd.yaml"
    config.write_text(f"startPort: {start_port()}\nmodels:\n  m:\n    cmd: {FAKE}\n")
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(notify))
        receiver.settimeout(20)
        port = free_port()
        argv = [sys.executable, "-m", "swapd", "serve", "--config", str(config)]
        argv += ["--listen", f"127.0.0.1:{port}", "--control-socket", str(tmp_path / "c.sock")]
        env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert receiver.recv(4096) == b"READY=1"
            with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
                assert client.post("/v1/chat/completions", json={"model": "m"}).status_code == 200
            messages = []
            while b"STATUS=running: m" not in messages:
                messages.append(receiver.recv(4096))
            proc.send_signal(signal.SIGTERM)
            while b"STOPPING=1" not in messages:
                messages.append(receiver.recv(4096))
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_config_warnings_are_logged_at_start(tmp_path: Path) -> None:
    config = tmp_path / "swapd.yaml"
    config.write_text(
        f"startPort: {start_port()}\n"
        f"models:\n  a:\n    cmd: {FAKE}\n  b:\n    cmd: {FAKE}\n  lonely:\n    cmd: {FAKE}\n"
        "routing:\n  router:\n    use: matrix\n    settings:\n      matrix:\n"
        "        vars: {a: a, b: b}\n        sets:\n          pair: a & b\n"
    )
    proc = serve(config, free_port(), tmp_path / "c.sock")
    try:
        head = wait_serving(proc)
        assert "WARNING swapd: " in head and "lonely" in head and "swapd.yaml:" in head, head
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
