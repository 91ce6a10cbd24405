"""`swapctl simulate` against a whole swapd: its own history through an edited config.

The daemon runs in the test's trio loop with a state directory of its own and
fake upstreams; swapctl runs as a real process. Each request is waited for
through its record's event on the bus, never by sleeping.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

from swapctl import protocol as p
from swapctl.client import Client, DaemonError
from swapd.control import backend
from swapd.testing.ports import free_port_run
from tests.integration.history.test_daemon_history import next_record, swapctl, swapctl_json, swapd

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"


def models(start_port: int) -> str:
    return f"""
healthCheckTimeout: 15
startPort: {start_port}
models:
  a:
    cmd: {FAKE} --tokens 2
    aliases: [alpha]
  b:
    cmd: {FAKE} --tokens 2
"""


MATRIX = """
routing:
  router:
    use: matrix
    settings:
      matrix:
        sets:
          ab: "a & b"
"""

ORDER = ["a", "b", "alpha", "b", "a"]


@pytest.mark.trio
async def test_the_edited_file_against_the_running_config_on_the_recorded_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = models(free_port_run(8))
    async with swapd(tmp_path, base) as (d, c, sub):
        for name in ORDER:
            r = await c.post("/v1/chat/completions", json={"model": name})
            assert r.status_code == 200
            await next_record(sub)
        config = tmp_path / "config.yaml"
        config.write_text(base + MATRIX)  # edited, not reloaded
        sock = tmp_path / "control.sock"

        sim = await swapctl_json(sock, "simulate")
        new, old = sim["configs"]
        assert new["config"] == str(d.loaded.path)
        assert old["config"] == f"{d.loaded.path} (running)"
        assert (new["router"], old["router"]) == ("matrix", "group")
        assert sim["requests"] == len(ORDER)
        for cfg in (new, old):
            assert cfg["totals"]["requests"] == len(ORDER)
            assert cfg["models"]["a"]["requests"] == 3 and cfg["models"]["b"]["requests"] == 2
            assert cfg["totals"]["failures"] == 0
        assert {m: lt["source"] for m, lt in sim["load_times"].items()} == {
            "a": "history",
            "b": "history",
        }
        # One slot swaps on every change of model; a matrix pairing them loads each once.
        # Loads take no time here: with the measured ones (a median, on a busy machine
        # longer than the load a request really waited for) a request could still be
        # loading when the next arrives, and queued requests are collated.
        sim = await swapctl_json(sock, "simulate", "--load-time", "a=0", "--load-time", "b=0")
        new, old = sim["configs"]
        assert old["totals"]["loads"] == len(ORDER)
        assert new["totals"]["loads"] == 2
        assert sim["diff"]["total"]["loads"] == 2 - len(ORDER)

        # Another file; a load time given (by alias) wins over the history.
        other = tmp_path / "other.yaml"
        other.write_text(base)
        sim = await swapctl_json(sock, "simulate", "--config", str(other), "--load-time", "alpha=7")
        assert sim["configs"][0]["config"] == str(other)
        assert sim["configs"][0]["totals"]["requests"] == len(ORDER)
        assert sim["load_times"]["a"] == {"seconds": 7.0, "source": "flag"}
        assert sim["load_times"]["b"]["source"] == "history"

        # The table is swapd simulate's.
        code, out, err = await swapctl(sock, "simulate")
        assert code == 0, err
        assert out.startswith(f"{len(ORDER)} requests replayed\n")
        assert f"{d.loaded.path} minus {d.loaded.path} (running)" in out

        # A window that starts after the requests holds none of them.
        sim = await swapctl_json(sock, "simulate", "--since", "2100-01-01T00:00")
        assert sim["requests"] == 0 and sim["configs"][0]["totals"]["requests"] == 0

        # Past the bound, only the latest requests are replayed, and the reply says so.
        monkeypatch.setattr(backend, "SIMULATE_MAX_REQUESTS", 2)
        sim = await swapctl_json(sock, "simulate")
        assert (sim["requests"], sim["truncated"]) == (2, True)
        assert {m: s["requests"] for m, s in sim["configs"][1]["models"].items()} == {
            "a": 1,
            "b": 1,
        }


@pytest.mark.trio
async def test_a_broken_file_is_an_error_frame_with_its_lines(tmp_path: Path) -> None:
    base = models(free_port_run(8))
    async with swapd(tmp_path, base) as (d, c, sub):
        r = await c.post("/v1/chat/completions", json={"model": "a"})
        assert r.status_code == 200
        await next_record(sub)
        broken = tmp_path / "broken.yaml"
        broken.write_text(base + "    ttl: soon\n")
        sock = tmp_path / "control.sock"

        code, out, err = await swapctl(sock, "simulate", "--config", str(broken), "--json")
        assert code == 1, err
        error = json.loads(out)
        assert error["type"] == "error" and error["code"] == "config_invalid"
        assert str(broken) in error["message"]
        line = base.count("\n") + 1  # the line appended
        (problem,) = error["problems"]
        assert problem["file"] == str(broken) and problem["line"] == line
        assert problem["path"] == "models.b.ttl"

        code, out, err = await swapctl(sock, "simulate", "--config", str(broken))
        assert code == 1
        assert f"{broken}:{line}:" in err

        code, out, err = await swapctl(sock, "simulate", "--load-time", "nobody=1")
        assert code == 1 and "nobody" in err

        def relative() -> p.Error:
            with Client(sock, timeout=30) as client:
                with pytest.raises(DaemonError) as caught:
                    client.simulate("broken.yaml")
            return caught.value.error

        error_frame = await trio.to_thread.run_sync(relative)
        assert error_frame.code == "bad_request" and "absolute" in error_frame.message

        # The daemon carries on.
        status = await swapctl_json(sock, "status")
        assert status["daemon"]["config_path"] == str(d.loaded.path)
