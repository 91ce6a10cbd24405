"""The history of a whole swapd with fake upstreams: every record field, across restarts.

The daemon runs in the test's trio loop with a state directory of its own;
swapctl runs as a real process against its control socket. A record is made
once the HTTP layer has answered, a moment after the client has its
response, so the tests wait for the record's `request` event (and for the
store's writer) instead of sleeping.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from swapd.config import load_config
from swapd.daemon import Daemon
from swapd.events import Subscription
from swapd.history import RequestRecord
from swapd.history.recorder import RequestFinished
from swapd.testing.ports import free_port_run

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"
RATE = 42.5  # the fake's --timings generation speed

ACTIVITY_KEYS = {
    "id", "start", "client", "requested", "model", "route", "stream", "outcome", "status",
    "queued_s", "load_wait_s", "ttfb_s", "duration_s", "prompt_tokens", "completion_tokens",
    "tokens_per_s",
}  # fmt: skip


def config_text(peer_port: int | None = None, extra: str = "") -> str:
    peers = ""
    if peer_port is not None:
        peers = f"""
peers:
  remote:
    proxy: http://127.0.0.1:{peer_port}
    models: [far]
"""
    return f"""
healthCheckTimeout: 15
startPort: {free_port_run(8)}
captureBuffer: 1
{extra}
models:
  chat:
    cmd: {FAKE} --timings --tokens 5 --load-delay 0.3
    aliases: [gpt]
  plain:
    cmd: {FAKE} --tokens 20 --token-interval 0.005
  endless:
    cmd: {FAKE} --token-interval 0.01 --tokens 100000
{peers}"""


@asynccontextmanager
async def swapd(
    tmp_path: Path, text: str, state: Path | None = None
) -> AsyncIterator[tuple[Daemon, httpx2.AsyncClient, Subscription]]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    d = Daemon(
        load_config(path),
        "127.0.0.1:0",
        control_socket=tmp_path / "control.sock",
        state_dir=state if state is not None else tmp_path / "state",
    )
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(d.run)
        with d.bus.subscribe(topics=("request",), maxlen=4096) as sub:
            async with httpx2.AsyncClient(base_url=urls[0], timeout=20.0) as c:
                try:
                    yield d, c, sub
                finally:
                    d.request_stop()


async def next_record(sub: Subscription) -> RequestRecord:
    """The next finished request published on the bus."""
    with trio.fail_after(20):
        while True:
            event = await sub.receive()
            if isinstance(event, RequestFinished):
                return event.record


async def flushed(d: Daemon) -> None:
    assert d.recorder is not None and d.recorder.store is not None
    with trio.fail_after(20):
        await d.recorder.store.flushed()


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


async def stream_lines(c: httpx2.AsyncClient, payload: dict[str, Any]) -> list[str]:
    async with c.stream("POST", "/v1/chat/completions", json=payload) as r:
        assert r.status_code == 200
        return [line async for line in r.aiter_lines() if line]


@pytest.mark.trio
async def test_every_field_of_a_request_record(tmp_path: Path, start_fake: Any) -> None:
    peer = start_fake("--tokens", "3")
    async with swapd(tmp_path, config_text(peer.port)) as (d, c, sub):
        # A load: the request waits for swap 1, llama-server timings give its speed.
        r = await c.post("/v1/chat/completions", json={"model": "gpt", "max_tokens": 5})
        assert r.status_code == 200
        loaded = await next_record(sub)
        assert loaded.requested == "gpt" and loaded.model == "chat" and loaded.peer is None
        assert (loaded.route, loaded.stream, loaded.outcome, loaded.status) == (
            "/v1/chat/completions", False, "done", 200,
        )  # fmt: skip
        assert loaded.client == "127.0.0.1" and loaded.reason is None
        assert loaded.swap_id is not None and loaded.load_wait_s is not None
        assert loaded.load_wait_s >= 0.3  # the fake is not healthy before --load-delay
        assert loaded.queued_s is not None and 0 <= loaded.queued_s < loaded.load_wait_s
        assert loaded.ttfb_s is not None and loaded.duration_s is not None
        assert loaded.load_wait_s < loaded.ttfb_s <= loaded.duration_s
        assert loaded.completion_tokens == 5 and loaded.prompt_tokens is not None
        assert loaded.prompt_tokens > 0 and loaded.tokens_per_s == RATE

        # A stream to a ready model: no load; usage and timings read from the last event.
        lines = await stream_lines(c, {"model": "chat", "stream": True, "max_tokens": 4})
        assert lines[-1] == "data: [DONE]"
        streamed = await next_record(sub)
        assert streamed.id == loaded.id + 1 and streamed.stream
        assert (streamed.outcome, streamed.status, streamed.swap_id) == ("done", 200, None)
        assert streamed.load_wait_s is None and streamed.queued_s is not None
        assert streamed.queued_s < 0.5
        assert (streamed.completion_tokens, streamed.tokens_per_s) == (4, RATE)

        # A stream without timings: the speed is counted from first to last byte.
        await stream_lines(c, {"model": "plain", "stream": True})
        plain = await next_record(sub)
        assert plain.completion_tokens == 20 and plain.tokens_per_s is not None
        assert plain.ttfb_s is not None and plain.duration_s is not None
        expected = 20 / (plain.duration_s - plain.ttfb_s)
        assert plain.tokens_per_s == pytest.approx(expected, rel=1e-6)

        # A peer: the model asked of it, and which peer.
        r = await c.post("/v1/chat/completions", json={"model": "remote/far"})
        assert r.status_code == 200
        far = await next_record(sub)
        assert (far.requested, far.model, far.peer, far.outcome) == (
            "remote/far", "far", "remote", "done",
        )  # fmt: skip
        assert far.load_wait_s is None and far.queued_s is None and far.completion_tokens == 3

        # Refused: failed, with the reason and the status sent.
        r = await c.post("/v1/chat/completions", json={"model": "nobody"})
        assert r.status_code == 404
        refused = await next_record(sub)
        assert (refused.outcome, refused.status, refused.requested, refused.model) == (
            "failed", 404, "nobody", None,
        )  # fmt: skip
        assert refused.reason is not None and "nobody" in refused.reason
        assert refused.ttfb_s is None and refused.prompt_tokens is None

        # The client leaves mid-stream: client_gone, with the status it had.
        async with c.stream(
            "POST", "/v1/chat/completions", json={"model": "endless", "stream": True}
        ) as resp:
            async for _ in resp.aiter_bytes():
                break
        gone = await next_record(sub)
        assert (gone.outcome, gone.status, gone.model) == ("client_gone", 200, "endless")

        # Cut short by an unload: aborted.
        router = d.router
        assert router is not None
        async with (
            trio.open_nursery() as nursery,
            c.stream(
                "POST", "/v1/chat/completions", json={"model": "endless", "stream": True}
            ) as resp,
        ):
            unloading = False
            async for _ in resp.aiter_bytes():
                if not unloading:  # read on until swapd ends the stream
                    nursery.start_soon(partial(router.unload, ["endless"], now=True))
                    unloading = True
        cut = await next_record(sub)
        assert (cut.outcome, cut.model) == ("aborted", "endless") and cut.reason

        await flushed(d)
        sock = tmp_path / "control.sock"
        # swapctl activity --json: newest first, the keys promised.
        records = await swapctl_json(sock, "activity")
        assert [r["id"] for r in records] == [
            cut.id,
            gone.id,
            refused.id,
            far.id,
            plain.id,
            streamed.id,
            loaded.id,
        ]
        assert all(ACTIVITY_KEYS <= set(r) for r in records)
        assert records[-1]["tokens_per_s"] == RATE and records[-1]["requested"] == "gpt"
        only = await swapctl_json(sock, "activity", "--model", "gpt", "--outcome", "done")
        assert [r["id"] for r in only] == [streamed.id, loaded.id]
        code, out, _ = await swapctl(sock, "activity", "--limit", "2")
        assert code == 0 and out.splitlines()[0].startswith("TIME") and len(out.splitlines()) == 3

        # The same records over HTTP.
        over_http = (await c.get("/api/activity")).json()
        assert over_http == records
        assert [r["id"] for r in (await c.get("/api/activity?outcome=failed")).json()] == [
            refused.id
        ]
        bad = await c.get("/api/activity?limit=0")
        assert bad.status_code == 400 and "limit" in bad.json()["error"]["message"]

        # Swaps and exits: chat's load, and endless stopped by the unload.
        history = await swapctl_json(sock, "history")
        swaps = [h for h in history if h["kind"] == "swap"]
        chat_swap = next(s for s in swaps if s["target"] == "chat")
        assert chat_swap["swap_id"] == loaded.swap_id and chat_swap["result"] == "ok"
        assert chat_swap["load_s"] >= 0.3 and chat_swap["why"]
        exits = [h for h in history if h["kind"] == "exit"]
        stopped = next(e for e in exits if e["model"] == "endless")
        assert stopped["failed"] is False and stopped["pid"] > 0 and stopped["uptime_s"] > 0
        assert stopped["exit_code"] is not None or stopped["signal"] is not None

        stats = await swapctl_json(sock, "stats", "--since", "1h")
        chat = next(m for m in stats["models"] if m["model"] == "chat")
        assert chat["requests"] == 2 and chat["loads"] >= 1 and chat["tokens_per_s_p50"] == RATE
        code, out, _ = await swapctl(sock, "stats")
        assert code == 0 and "chat" in out

        # The capture of the first request: both bodies, credentials hidden.
        capture = await swapctl_json(sock, "capture", str(loaded.id))
        assert capture["req_path"] == "/v1/chat/completions"
        code, out, _ = await swapctl(sock, "capture", str(loaded.id))
        assert code == 0 and '"model": "gpt"' in out and "completion_tokens" in out
        code, _, err = await swapctl(sock, "capture", "999999")
        assert code == 1 and "not_found" in err


@pytest.mark.trio
async def test_the_request_event_carries_the_finished_record(tmp_path: Path) -> None:
    async with swapd(tmp_path, config_text()) as (_d, c, sub):
        # A request that never reaches the router is numbered all the same.
        r = await c.post("/v1/chat/completions", json={"model": "nobody"})
        assert r.status_code == 404 and (await next_record(sub)).id == 1
        r = await c.post("/v1/chat/completions", json={"model": "plain"})
        assert r.status_code == 200
        record = await next_record(sub)
        assert record.id == 2
        code, out, err = await swapctl(
            tmp_path / "control.sock", "events", "--topic", "request", "--json"
        )
        assert code == 0, err
        events = [json.loads(line)["data"] for line in out.splitlines()]
        events = [e for e in events if e["request"] != "1"]  # the 404's
        finished = [e for e in events if e["phase"] == "finished"]
        assert len(finished) == 1 and finished[0]["request"] == str(record.id)
        assert finished[0]["status"] == 200 and finished[0]["duration"] == record.duration_s
        assert finished[0]["record"]["id"] == record.id
        assert finished[0]["record"]["completion_tokens"] == 20
        # The router's own phases are still there, under the same id as the record.
        assert {"granted", "done"} <= {e["phase"] for e in events}
        assert {e["request"] for e in events} == {str(record.id)}
        decisions = await swapctl_json(tmp_path / "control.sock", "decisions")
        assert {d["request"] for d in decisions if d["request"]} == {str(record.id)}


@pytest.mark.trio
async def test_the_history_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with swapd(tmp_path, config_text(), state) as (d, c, sub):
        assert (await c.post("/v1/chat/completions", json={"model": "plain"})).status_code == 200
        first = await next_record(sub)
    # The daemon has stopped: its store wrote everything on the way out.
    async with swapd(tmp_path, config_text(), state) as (d, c, sub):
        assert (await c.post("/v1/chat/completions", json={"model": "plain"})).status_code == 200
        second = await next_record(sub)
        assert second.id > first.id  # ids go on across restarts
        await flushed(d)
        records = await swapctl_json(tmp_path / "control.sock", "activity")
        assert [r["id"] for r in records] == [second.id, first.id]
        history = await swapctl_json(tmp_path / "control.sock", "history", "--kind", "exit")
        # plain's process of the first run stopped at shutdown, and that is kept.
        assert [(e["model"], e["reason"], e["failed"]) for e in history] == [
            ("plain", "shutdown", False)
        ]


@pytest.mark.trio
async def test_failed_loads_crashes_and_reloads_are_kept(tmp_path: Path) -> None:
    broken = f"""
  broken:
    cmd: {FAKE} --exit-during-start 0.05 --exit-code 3 --load-delay 5
"""
    text = config_text() + broken
    async with swapd(tmp_path, text) as (d, c, sub):
        r = await c.post("/v1/chat/completions", json={"model": "broken"})
        assert r.status_code == 500
        failed = await next_record(sub)
        assert (failed.outcome, failed.status, failed.model) == ("failed", 500, "broken")
        assert failed.reason is not None and "exited with code 3" in failed.reason
        assert failed.swap_id is not None and failed.load_wait_s is not None

        (tmp_path / "config.yaml").write_text(text + f"  extra:\n    cmd: {FAKE}\n")
        sock = tmp_path / "control.sock"
        code, _, err = await swapctl(sock, "reload")
        assert code == 0, err
        await flushed(d)
        history = await swapctl_json(sock, "history")
        reload, exit_, swap = history[:3]
        assert (reload["kind"], reload["ok"], reload["source"], reload["added"]) == (
            "reload", True, "control", ["extra"],
        )  # fmt: skip
        assert (exit_["kind"], exit_["model"], exit_["exit_code"], exit_["failed"]) == (
            "exit", "broken", 3, True,
        )  # fmt: skip
        assert "exited with code 3 while starting" in exit_["reason"]
        assert (swap["kind"], swap["swap_id"], swap["result"]) == ("swap", failed.swap_id, "failed")
        assert "exited with code 3" in swap["error"]
        only = await swapctl_json(sock, "history", "--kind", "exit", "--model", "broken")
        assert [h["pid"] for h in only] == [exit_["pid"]]
        stats = await swapctl_json(sock, "stats")
        row = next(m for m in stats["models"] if m["model"] == "broken")
        assert (row["requests"], row["errors"], row["load_failures"], row["crashes"]) == (
            1,
            1,
            1,
            1,
        )
        code, out, _ = await swapctl(sock, "history")
        assert code == 0 and "reload" in out and "broken" in out
