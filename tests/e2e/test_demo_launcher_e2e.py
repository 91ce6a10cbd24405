"""`swapd-llama-server` on its own: it serves the real model, and SIGTERM ends it with 0."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx2
import pytest

from swapd.testing.ports import free_port


def launch(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [env["SWAPD_LLAMA_SERVER"], *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_healthy(proc: subprocess.Popen[str], base: str, within: float = 60.0) -> None:
    """Poll /health until 200 (it answers 503 while the model loads); fail if the process ends."""
    deadline = time.monotonic() + within
    with httpx2.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            try:
                if client.get(base + "/health").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.05)
    pytest.fail(f"not healthy within {within}s")


def test_serves_the_model_then_exits_cleanly_on_sigterm(demo_installed: dict[str, str]) -> None:
    port = free_port()
    proc = launch(
        demo_installed,
        *f"--host 127.0.0.1 --port {port} --ctx-size 512 --threads 1 --alias demo".split(),
        "--model",
        demo_installed["SWAPD_SMOLLM2_GGUF"],
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(proc, base)
        with httpx2.Client(timeout=60.0) as client:
            models = client.get(base + "/v1/models").json()
            assert [m["id"] for m in models["data"]] == ["demo"]
            body = {"model": "demo", "messages": [{"role": "user", "content": "Hi"}]}
            answer = client.post(base + "/v1/chat/completions", json={**body, "max_tokens": 4})
            assert answer.status_code == 200, answer.text
            assert answer.json()["usage"]["completion_tokens"] >= 1
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output[-3000:]
        assert "SIGTERM: shutting down" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_model_that_cannot_load_exits_1_with_the_reason(
    demo_installed: dict[str, str], tmp_path
) -> None:
    missing = tmp_path / "missing.gguf"
    proc = launch(demo_installed, "--port", str(free_port()), "--model", str(missing))
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output[-3000:]
    assert "swapd-llama-server: Failed to init server" in output
