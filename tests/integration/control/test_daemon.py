"""Every swapctl subcommand against a whole swapd (router, pool, HTTP) with fake upstreams.

swapctl runs as a real process, as an operator runs it; the daemon runs in
the test's trio loop on an ephemeral HTTP port.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from swapd.config import load_config
from swapd.daemon import Daemon
from swapd.testing.ports import free_port_run

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"

GROUPS = f"""
healthCheckTimeout: 15
models:
  llama:
    cmd: {FAKE} --print-lines 1
    aliases: [gpt-4]
    ttl: 300
  qwen:
    cmd: {FAKE}
  broken:
    cmd: {FAKE} --exit-during-start 0.05 --exit-code 3 --load-delay 5
"""

MATRIX = f"""
healthCheckTimeout: 15
models:
  a:
    cmd: {FAKE}
  b:
    cmd: {FAKE}
  c:
    cmd: {FAKE}
routing:
  router:
    use: matrix
    settings:
      matrix:
        evict_costs:
          a: 5
        sets:
          ab: "a & b"
          c_alone: "c"
"""


@asynccontextmanager
async def swapd(tmp_path: Path, text: str) -> AsyncIterator[tuple[Daemon, Path]]:
    config = tmp_path / "config.yaml"
    # Ports of our own: other test runs on this machine use the default 5800 and up.
    config.write_text(f"startPort: {free_port_run(8)}\n{text}")
    sock = tmp_path / "control.sock"
    daemon = Daemon(load_config(config), "127.0.0.1:0", control_socket=sock)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        try:
            yield daemon, sock
        finally:
            daemon.request_stop()


async def swapctl(sock: Path, *argv: str) -> tuple[int, str, str]:
    result = await trio.run_process(
        [sys.executable, "-m", "swapctl.cli", "--socket", str(sock), *argv],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def swapctl_json(sock: Path, *argv: str) -> Any:
    code, out, err = await swapctl(sock, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.trio
async def test_swapctl_against_a_group_daemon(tmp_path: Path) -> None:
    async with swapd(tmp_path, GROUPS) as (_daemon, sock):
        status = await swapctl_json(sock, "status")
        assert status["models"] == 3 and status["daemon"]["router"] == "group"
        assert status["daemon"]["listen"] and status["states"] == {"stopped": 3}
        assert [s["name"] for s in status["legend"]][:3] == ["stopped", "starting", "ready"]

        code, out, _ = await swapctl(sock, "load", "gpt-4")
        assert code == 0 and out.startswith("llama is ready (loaded in ")

        models = {m["id"]: m for m in await swapctl_json(sock, "models")}
        assert models["llama"]["state"] == "ready" and models["llama"]["pid"]
        assert models["llama"]["ttl_left"] is not None and models["llama"]["aliases"] == ["gpt-4"]
        assert models["llama"]["groups"] == ["(default)"]

        explained = await swapctl_json(sock, "explain", "qwen")
        assert explained["action"] == "swap" and explained["evict"] == ["llama"]
        code, out, _ = await swapctl(sock, "explain", "llama")
        assert code == 0 and "serve" in out

        code, _, err = await swapctl(sock, "load", "broken")
        assert code == 1 and err.startswith("swapctl: load_failed:")
        code, _, err = await swapctl(sock, "load", "nope")
        assert code == 1 and "not_found" in err

        decisions = await swapctl_json(sock, "decisions")
        assert {d["model"] for d in decisions} >= {"llama", "broken"}
        code, out, _ = await swapctl(sock, "decisions")
        assert code == 0 and out.startswith("TIME")

        view = await swapctl_json(sock, "matrix", "qwen")
        assert view["router"] == "group" and view["groups"][0]["name"] == "(default)"
        assert view["explain"]["model"] == "qwen"

        code, out, _ = await swapctl(sock, "logs")
        assert code == 0 and "listening" in out
        code, out, _ = await swapctl(sock, "logs", "llama")
        assert code == 0 and out

        events = await swapctl_json_lines(sock, "events", "--topic", "state")
        assert ("llama", "starting", "ready") in {
            (e["data"]["model"], e["data"]["old"], e["data"]["new"]) for e in events
        }

        # The failed load of broken evicted llama (one group, swap: true): load it again.
        assert (await swapctl_json(sock, "load", "llama"))["state"] == "ready"
        code, out, _ = await swapctl(sock, "unload", "--all")
        assert (code, out) == (0, "stopped: llama\n")
        status = await swapctl_json(sock, "status")
        assert status["running"] == []


async def swapctl_json_lines(sock: Path, *argv: str) -> list[Any]:
    code, out, err = await swapctl(sock, *argv, "--json")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.trio
async def test_swapctl_against_a_matrix_daemon(tmp_path: Path) -> None:
    async with swapd(tmp_path, MATRIX) as (_daemon, sock):
        assert (await swapctl(sock, "load", "a"))[0] == 0
        assert (await swapctl(sock, "load", "b"))[0] == 0
        view = await swapctl_json(sock, "matrix", "c")
        assert [s["name"] for s in view["sets"]] == ["ab", "c_alone"]
        assert sorted(view["running"]) == ["a", "b"] and view["running_set"] == "ab"
        assert view["explain"]["action"] == "swap"
        assert sorted(view["explain"]["evict"]) == ["a", "b"] and view["explain"]["cost"] == 6
        code, out, _ = await swapctl(sock, "matrix")
        assert code == 0 and "* set ab: a & b" in out

        code, _, _ = await swapctl(sock, "load", "c")
        assert code == 0
        status = await swapctl_json(sock, "status")
        assert status["running"] == ["c"] and status["running_set"] == "c_alone"
        swaps = await swapctl_json_lines(sock, "events", "--topic", "swap")
        finished = [e["data"] for e in swaps if e["data"]["kind"] == "swap_finished"]
        assert finished and finished[-1]["target"] == "c" and finished[-1]["ok"]
        started = [e["data"] for e in swaps if e["data"]["kind"] == "swap_started"]
        assert sorted(started[-1]["evict"]) == ["a", "b"] and started[-1]["set"] == "c_alone"


@pytest.mark.trio
async def test_bridge_and_follow_against_a_daemon(tmp_path: Path) -> None:
    async with swapd(tmp_path, GROUPS) as (_daemon, sock):
        hello = b'{"type":"hello","client":"t"}\n{"type":"status","id":1}\n'
        result = await trio.run_process(
            [sys.executable, "-m", "swapctl.cli", "--socket", str(sock), "bridge"],
            stdin=hello,
            capture_stdout=True,
        )
        welcome, status = (json.loads(line) for line in result.stdout.splitlines())
        assert welcome["type"] == "welcome" and status["type"] == "status_reply"

        async with trio.open_nursery() as nursery:
            follow = [sys.executable, "-m", "swapctl.cli", "--socket", str(sock)]
            follow += ["logs", "-f", "qwen"]
            proc = await nursery.start(
                partial(trio.run_process, follow, stdout=subprocess.PIPE, check=False)
            )
            assert (await swapctl(sock, "load", "qwen"))[0] == 0
            buffered = b""
            with trio.fail_after(20):
                while b"listening" not in buffered:
                    buffered += await proc.stdout.receive_some()
            proc.terminate()
