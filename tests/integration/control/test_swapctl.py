"""Every swapctl subcommand against a running server with the fake backend.

One-shot commands run in-process (`cli.main(argv)`); the streaming ones
(`logs -f`, `events -f`) and `bridge` run as real processes, as users run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import trio

from swapctl import cli, codec
from swapctl import protocol as p
from swapd.control import ControlError
from tests.integration.control.server_thread import ServerThread


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread() as thread:
        yield thread


def swapctl(server: ServerThread, capsys: pytest.CaptureFixture[str], *argv: str):
    code = cli.main(["--socket", str(server.path), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = swapctl(server, capsys, "status", "--legend")
    assert code == 0
    assert "swapd 0.1.0-test (pid 4242)" in out and "3: 3 stopped" in out
    assert "STATE" in out and "waiting for health" in out
    code, out, _ = swapctl(server, capsys, "status", "--json")
    assert code == 0 and json.loads(out)["models"] == 3
    code, out, _ = swapctl(server, capsys, "--json", "status")
    assert code == 0 and json.loads(out)["models"] == 3


def test_models(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = swapctl(server, capsys, "models")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["MODEL", "STATE", "PID"]
    assert lines[1].split()[:2] == ["alpha", "stopped"] and "s1" in lines[1]
    code, out, _ = swapctl(server, capsys, "models", "--json")
    assert [m["id"] for m in json.loads(out)] == ["alpha", "beta", "gamma"]


def test_load_and_unload(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = swapctl(server, capsys, "load", "alpha")
    assert (code, out) == (0, "alpha is ready (loaded in 250ms)\n")
    code, out, _ = swapctl(server, capsys, "load", "alpha", "--json")
    assert json.loads(out) == {"model": "alpha", "state": "ready", "seconds": None, "evicted": []}
    code, out, _ = swapctl(server, capsys, "unload", "--all")
    assert (code, out) == (0, "stopped: alpha\n")
    code, out, _ = swapctl(server, capsys, "unload", "beta", "--json")
    assert (code, json.loads(out)) == (0, {"models": [], "cut": 0})


def test_load_failure_exits_1_with_the_log_tail(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    server.backend.failing.add("beta")
    code, out, err = swapctl(server, capsys, "load", "beta")
    assert code == 1 and out == ""
    assert err.startswith("swapctl: load_failed: beta exited with code 1\n")
    assert "error: no such file" in err
    code, out, err = swapctl(server, capsys, "load", "nope", "--json")
    assert code == 1 and json.loads(out)["code"] == "not_found" and err == "", "JSON on stdout"


def test_unload_usage_errors_exit_2(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = swapctl(server, capsys, "unload")
    assert code == 2
    assert err.splitlines() == [
        "usage: swapctl unload [-h] [--json] [--all] [--now] [MODEL ...]",
        "swapctl unload: name the models to unload (swapctl unload MODEL [MODEL ...]), "
        "or give --all to unload every model",
    ]
    code, out, err = swapctl(server, capsys, "unload", "--json")
    assert code == 2 and err == "" and json.loads(out)["code"] == "usage"
    code, _, err = swapctl(server, capsys, "unload", "alpha", "--all")
    assert code == 2


def test_reload(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = swapctl(server, capsys, "reload")
    assert code == 0 and out.startswith("reloaded /etc/swapd/config.yaml\n  unchanged: alpha")
    server.backend.reload_outcome = ControlError(
        "config_invalid",
        "the new config has 2 problems; the old one keeps running",
        problems=[
            p.Problem(
                message='expected int >= -1, got "soon"',
                file="c.yaml",
                line=12,
                column=5,
                path="models.llama.ttl",
            ),
            p.Problem(message="unknown key", file="c.yaml", line=20, column=3, path="x"),
        ],
    )
    code, out, err = swapctl(server, capsys, "reload")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "swapctl: config_invalid: the new config has 2 problems; the old one keeps running",
        '  c.yaml:12:5: models.llama.ttl: expected int >= -1, got "soon"',
        "  c.yaml:20:3: x: unknown key",
    ]
    code, out, err = swapctl(server, capsys, "reload", "--json")
    assert code == 1 and len(json.loads(out)["problems"]) == 2 and err == ""


def test_logs(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    server.backend.logs_["alpha"] = "line one\nline two\n"
    code, out, _ = swapctl(server, capsys, "logs", "alpha")
    assert (code, out) == (0, "line one\nline two\n")
    code, out, _ = swapctl(server, capsys, "logs")
    assert out == "proxy started\n"
    code, out, _ = swapctl(server, capsys, "logs", "alpha", "--bytes", "9", "--json")
    assert json.loads(out) == {"source": "alpha", "text": "line two\n", "truncated": True}
    code, _, err = swapctl(server, capsys, "logs", "nope")
    assert code == 1 and "not_found" in err


def test_events_prints_history_and_exits(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = swapctl(server, capsys, "events")
    assert (code, out) == (0, "")
    swapctl(server, capsys, "load", "alpha")
    code, out, _ = swapctl(server, capsys, "events", "--topic", "state")
    assert code == 0
    assert [line.split(None, 2)[2] for line in out.splitlines()] == [
        "alpha: stopped -> starting (load)",
        "alpha: starting -> ready (healthy)",
    ]
    code, out, _ = swapctl(server, capsys, "events", "--json", "--model", "alpha")
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["data"]["new"] for e in events] == ["starting", "ready"]


def test_explain(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    swapctl(server, capsys, "load", "alpha")
    code, out, _ = swapctl(server, capsys, "explain", "beta")
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["action"] == "swap" and fields["evict"] == "alpha" and fields["cost"] == "1"
    code, out, _ = swapctl(server, capsys, "explain", "beta", "--json")
    assert json.loads(out)["evict"] == ["alpha"]
    code, _, err = swapctl(server, capsys, "explain", "nope")
    assert code == 1 and err.startswith("swapctl: not_found:")


def test_matrix(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    swapctl(server, capsys, "load", "alpha")
    code, out, _ = swapctl(server, capsys, "matrix", "--limit", "2")
    assert code == 0
    assert out.splitlines()[:6] == [
        "router: matrix",
        "running: alpha (set s1)",
        "* set s1: alpha | beta | gamma",
        "    > alpha",
        "      beta",
        "      ... 1 more",
    ]
    code, out, _ = swapctl(server, capsys, "matrix", "gamma")
    explained = dict(line.split(None, 1) for line in out.split("\n\n")[1].splitlines())
    assert explained["action"] == "swap" and explained["evict"] == "alpha"
    code, out, _ = swapctl(server, capsys, "matrix", "--json")
    assert json.loads(out)["sets"][0]["name"] == "s1"


def test_decisions(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    swapctl(server, capsys, "load", "alpha")
    code, out, _ = swapctl(server, capsys, "decisions")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["TIME", "MODEL", "ACTION"]
    assert lines[1].split()[1:3] == ["alpha", "start"]
    code, out, _ = swapctl(server, capsys, "decisions", "--json", "--limit", "0")
    assert json.loads(out) == []


def test_connection_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--socket", str(tmp_path / "none.sock"), "status"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no such socket" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["events", "--topic", "weather"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


# --- as processes ---------------------------------------------------------------------


def _spawn(server: ServerThread, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "swapctl.cli", "--socket", str(server.path), *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _publish_when_subscribed(server: ServerThread, count: int, *events: p.EventData) -> None:
    """Publish once the process under test has subscribed (no sleeping, no races)."""

    async def go() -> None:
        with trio.fail_after(30):
            await server.server.counters.wait_for(subscribers=count)
        for event in events:
            server.backend.bus.publish(event)

    server.run(go)


def test_logs_follow_prints_history_then_live(server: ServerThread) -> None:
    server.backend.logs_["alpha"] = "ignored: logs -f starts from the subscription history\n"
    proc = _spawn(server, "logs", "-f", "alpha")
    try:
        _publish_when_subscribed(
            server,
            1,
            p.LogLines(time=1.0, source="beta", text="not this model\n"),
            p.LogLines(time=2.0, source="alpha", text="hello\n"),
            p.LogLines(time=3.0, source="alpha", text="world\n"),
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"hello\n"
        assert proc.stdout.readline() == b"world\n"
    finally:
        proc.terminate()
        proc.wait(10)


def test_events_follow_streams_json_lines(server: ServerThread) -> None:
    proc = _spawn(server, "events", "-f", "--topic", "state", "--json")
    try:
        _publish_when_subscribed(
            server, 1, p.StateChanged(time=1.0, model="alpha", old="stopped", new="starting")
        )
        assert proc.stdout is not None
        event = json.loads(proc.stdout.readline())
        assert event["type"] == "event" and event["data"]["new"] == "starting"
    finally:
        proc.terminate()
        proc.wait(10)


def test_events_follow_says_so_and_exits_2_when_the_daemon_stops(server: ServerThread) -> None:
    proc = _spawn(server, "events", "-f")
    _publish_when_subscribed(server, 1)
    server.stop()
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert err.decode() == "swapctl: swapd closed the connection (it stopped or restarted)\n"


def test_logs_follow_json_reports_the_daemon_gone_as_json(server: ServerThread) -> None:
    proc = _spawn(server, "logs", "-f", "--json")
    _publish_when_subscribed(server, 1)
    server.stop()
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert json.loads(out.splitlines()[-1])["code"] == "daemon_gone"


def test_logs_follow_retry_reconnects_to_a_restarted_daemon(server: ServerThread) -> None:
    proc = _spawn(server, "logs", "-f", "--retry")
    try:
        _publish_when_subscribed(server, 1, p.LogLines(time=1.0, source="proxy", text="one\n"))
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"one\n"
        server.stop()
        assert b"reconnecting" in proc.stderr.readline()
        with ServerThread(directory=server.directory) as again:
            _publish_when_subscribed(again, 1, p.LogLines(time=2.0, source="proxy", text="two\n"))
            assert proc.stdout.readline() == b"two\n"
            assert proc.poll() is None, "still following"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("program", ["swapctl", "swaptui", "swapd"])
def test_every_program_tells_its_version(program: str) -> None:
    module = {"swapctl": "swapctl.cli", "swaptui": "swaptui", "swapd": "swapd"}[program]
    result = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{program} ") and result.stdout.split()[1][0].isdigit()


def test_bridge_relays_the_protocol(server: ServerThread) -> None:
    proc = _spawn(server, "bridge")
    script = codec.encode(p.Hello(client="bridge-test")) + codec.encode(p.StatusRequest(id=1))
    out, err = proc.communicate(script, timeout=20)
    assert proc.returncode == 0, err
    decoder = codec.server_decoder()
    decoder.feed(out)
    decoder.feed(b"")
    welcome, status = list(decoder)
    assert isinstance(welcome, p.Welcome) and isinstance(status, p.StatusReply)


def test_bridge_without_a_daemon_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "swapctl.cli", "--socket", str(tmp_path / "x.sock"), "bridge"],
        capture_output=True,
        timeout=20,
        env={**os.environ},
    )
    assert result.returncode == 2 and b"no such socket" in result.stderr


# --- history: activity, history, stats, capture ----------------------------------------

ACTIVITY_KEYS = {
    "id", "start", "client", "requested", "model", "route", "stream", "outcome", "status",
    "queued_s", "load_wait_s", "ttfb_s", "duration_s", "prompt_tokens", "completion_tokens",
    "tokens_per_s",
}  # fmt: skip


def _record(request_id: int, start: float, **fields: object) -> p.RequestRecord:
    base: dict[str, object] = {
        "id": request_id, "start": start, "client": "127.0.0.1", "requested": "gpt",
        "model": "alpha", "route": "/v1/chat/completions", "stream": False, "outcome": "done",
        "status": 200, "queued_s": 0.01, "load_wait_s": 1.5, "ttfb_s": 1.6, "duration_s": 2.0,
        "prompt_tokens": 10, "completion_tokens": 20, "tokens_per_s": 50.0,
    }  # fmt: skip
    base.update(fields)
    return msgspec.convert(base, p.RequestRecord)


def _finish(server: ServerThread, *records: p.RequestRecord) -> None:
    for record in records:
        server.run_sync(server.backend.finish, record)


def test_activity_json_newest_first_with_the_promised_keys(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    _finish(
        server,
        _record(1, now - 7200),
        _record(2, now - 60, model="beta", outcome="failed", status=500, reason="boom"),
        _record(3, now - 5, stream=True, prompt_tokens=None, tokens_per_s=None),
    )
    code, out, _ = swapctl(server, capsys, "activity", "--json")
    records = json.loads(out)
    assert code == 0 and [r["id"] for r in records] == [3, 2, 1]
    assert all(ACTIVITY_KEYS <= set(r) for r in records)
    assert records[0]["prompt_tokens"] is None and records[0]["tokens_per_s"] is None
    code, out, _ = swapctl(server, capsys, "activity", "--since", "10m", "--json")
    assert [r["id"] for r in json.loads(out)] == [3, 2]
    code, out, _ = swapctl(server, capsys, "activity", "--outcome", "failed", "--json")
    assert [r["id"] for r in json.loads(out)] == [2]
    code, out, _ = swapctl(server, capsys, "activity")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["TIME", "ID", "MODEL"]
    assert "failed: boom" in lines[2] and "(stream)" in lines[1] and "alpha (gpt)" in lines[3]
    code, _, err = swapctl(server, capsys, "activity", "--since", "yesterday")
    assert code == 2 and "not a time" in err


def test_activity_export_writes_a_trace_oldest_first(
    server: ServerThread, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    now = time.time()
    _finish(
        server,
        _record(1, now - 30.0),
        _record(2, now - 20.0, requested="beta", stream=True, queued_s=None, load_wait_s=None),
        _record(3, now - 19.5, requested=None, outcome="failed", status=400),
        _record(4, now - 10.0, duration_s=None),
    )
    trace = tmp_path / "trace.jsonl"
    code, _, err = swapctl(server, capsys, "activity", "--export", str(trace), "--since", "1m")
    assert code == 0 and "3 requests written" in err
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert lines == [
        {"t": 0.0, "model": "gpt", "service": pytest.approx(0.49), "stream": False},
        {"t": pytest.approx(10.0), "model": "beta", "service": 2.0, "stream": True},
        {"t": pytest.approx(20.0), "model": "gpt", "service": None, "stream": False},
    ]
    code, _, err = swapctl(server, capsys, "activity", "--export", "-", "-f")
    assert code == 2 and "cannot follow" in err


def test_activity_follow_prints_the_latest_then_each_request_as_it_ends(
    server: ServerThread,
) -> None:
    _finish(server, _record(1, time.time() - 5))
    proc = _spawn(server, "activity", "-f", "--json", "--outcome", "done")
    try:
        assert proc.stdout is not None
        # Printed once subscribed: what ends from now on is followed.
        assert json.loads(proc.stdout.readline())["id"] == 1
        _finish(
            server,
            _record(2, time.time(), outcome="client_gone", status=None),
            _record(3, time.time(), model="beta"),
        )
        line = json.loads(proc.stdout.readline())
        assert (line["id"], line["model"]) == (3, "beta")
    finally:
        proc.terminate()
        proc.wait(10)


def test_history_stats_and_capture(
    server: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = server.backend
    backend.history_ = [
        p.SwapRecord(swap_id=1, start=1.8e9, target="alpha", why="request", load_s=1.25),
        p.ExitRecord(time=1.8e9 + 5, model="alpha", pid=42, signal="SIGKILL", reason="crash",
                     failed=True, uptime_s=5.0),
        p.ReloadRecord(time=1.8e9 + 6, ok=False, source="signal", path="/c.yaml",
                       errors=["/c.yaml:3:5: ttl: bad"]),
    ]  # fmt: skip
    code, out, _ = swapctl(server, capsys, "history")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["TIME", "KIND", "WHAT"]
    assert "reload" in lines[1] and "refused: /c.yaml:3:5: ttl: bad" in lines[1]
    assert "alpha pid 42 SIGKILL, up 5.0s: crash (failed)" in lines[2]
    assert "#1 to alpha: ok in 1.2s; request" in lines[3]
    code, out, _ = swapctl(server, capsys, "history", "--json")
    assert [h["kind"] for h in json.loads(out)] == ["reload", "exit", "swap"]

    _finish(server, _record(1, time.time()))
    code, out, _ = swapctl(server, capsys, "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["models"][0]["requests"] == 1
    assert stats["until"] - stats["since"] == pytest.approx(3600, abs=5)
    code, out, _ = swapctl(server, capsys, "stats")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["MODEL", "REQUESTS", "ERRORS"]

    backend.captures_[1] = p.Capture(
        id=1, req_path="/v1/chat/completions", req_headers={"authorization": "[REDACTED]"},
        req_body=b'{"model": "gpt"}', resp_headers={"content-type": "application/json"},
        resp_body=b'{"ok": true}',
    )  # fmt: skip
    code, out, _ = swapctl(server, capsys, "capture", "1")
    assert code == 0 and "> authorization: [REDACTED]" in out
    assert '{"model": "gpt"}' in out and '{"ok": true}' in out
    code, out, _ = swapctl(server, capsys, "capture", "1", "--json")
    assert json.loads(out)["req_body"] == "eyJtb2RlbCI6ICJncHQifQ=="  # base64
    code, _, err = swapctl(server, capsys, "capture", "7")
    assert code == 1 and "not_found" in err
