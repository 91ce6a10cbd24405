"""`swapd serve --state-dir` as a process: the history across a restart, and a state
directory it cannot write, which must not cost a single request."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2

from tests.integration.conftest import free_port
from tests.integration.history.test_store import _drop_file_permission_override
from tests.integration.http.conftest import start_port
from tests.integration.http.test_serve_cli import wait_serving

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"


def serve(
    tmp_path: Path, state: Path, port: int, *, read_only: bool = False
) -> subprocess.Popen[bytes]:
    config = tmp_path / "swapd.yaml"
    config.write_text(f"startPort: {start_port()}\nmodels:\n  m:\n    cmd: {FAKE} --timings\n")
    argv = [sys.executable, "-m", "swapd", "serve", "--config", str(config)]
    argv += ["--listen", f"127.0.0.1:{port}", "--control-socket", str(tmp_path / "c.sock")]
    argv += ["--state-dir", str(state)]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=_drop_file_permission_override if read_only else None,
    )  # fmt: skip


def swapctl(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swapctl.cli", "--socket", str(tmp_path / "c.sock"), *argv],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM, then everything it printed after it started serving."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out.decode()


def run_requests(port: int, count: int) -> None:
    with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
        for _ in range(count):
            r = client.post("/v1/chat/completions", json={"model": "m", "max_tokens": 2})
            assert r.status_code == 200


def status(tmp_path: Path) -> dict[str, Any]:
    result = swapctl(tmp_path, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_history_of_swapd_serve_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for _run in (1, 2):
        port = free_port()
        proc = serve(tmp_path, state, port)
        try:
            wait_serving(proc)
            run_requests(port, 2)
            history = status(tmp_path)["history"]
            assert history["available"] and history["path"] == str(state / "history.sqlite3")
            stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    proc = serve(tmp_path, state, free_port())
    try:
        wait_serving(proc)
        result = swapctl(tmp_path, "activity", "--json")
        assert result.returncode == 0, result.stderr
        records = json.loads(result.stdout)
        assert [r["id"] for r in records] == [4, 3, 2, 1]
        assert {r["tokens_per_s"] for r in records} == {42.5}
        trace = tmp_path / "trace.jsonl"
        result = swapctl(tmp_path, "activity", "--export", str(trace))
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in trace.read_text().splitlines()]
        assert len(lines) == 4 and lines[0]["t"] == 0.0
        assert [line["t"] for line in lines] == sorted(line["t"] for line in lines)
        assert all(set(line) == {"t", "model", "service", "stream"} for line in lines)
        assert all(line["model"] == "m" and line["stream"] is False for line in lines)
        assert all(
            0 < line["service"] < r["duration_s"]
            for line, r in zip(lines, records[::-1], strict=True)
        )
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_read_only_state_directory_keeps_requests_working(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o555)
    port = free_port()
    proc = serve(tmp_path, state, port, read_only=True)
    try:
        head = wait_serving(proc)
        run_requests(port, 5)
        history = status(tmp_path)["history"]
        assert history["available"] is False and "cannot open" in history["error"]
        assert history["written"] == 0
        # five requests and the swap that loaded m: each dropped, or about to be
        assert history["dropped"] + history["pending"] == 6
        result = swapctl(tmp_path, "activity")
        assert result.returncode == 1 and "unavailable" in result.stderr
        output = head + stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert output.count("history: cannot open") == 1
    assert list(state.iterdir()) == []
