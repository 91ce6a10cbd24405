"""Local models through a whole in-process swapd: relay, filters, errors, loading stream.

The models are fake upstreams; unloads, metrics of swaps and disconnects in
every phase are in `test_daemon.py`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.integration.conftest import free_port
from tests.integration.http.conftest import client, daemon, start_port

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"


def config(extra_models: str = "", top: str = "") -> str:
    return f"""
healthCheckTimeout: 15
startPort: {start_port()}
{top}
models:
  a:
    cmd: {FAKE} --echo
    aliases: [alpha]
    useModelName: real-a
    filters:
      stripParams: "temperature, model"
      setParams: {{top_k: 7, "opts.deep": true}}
      setParamsByID:
        "a:hot": {{temperature: 1.5}}
  b:
    cmd: {FAKE} --echo --load-delay 0.6
    sendLoadingState: true
{extra_models}
"""


def sse_events(text: str) -> list[Any]:
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: ") and block != "data: [DONE]":
            out.append(json.loads(block[6:]))
    return out


async def wait_state(d: Any, model: str, wanted: str) -> None:
    """Wait for a model's process state, on the daemon's own state events."""
    with trio.fail_after(10), d.bus.subscribe(topics=("state",)) as sub:
        while d.services.state_of(model) != wanted:
            await sub.receive()


@pytest.mark.trio
async def test_chat_filters_aliases_and_credentials(tmp_path: Path) -> None:
    async with daemon(tmp_path, config()) as (base, _), client(base) as c:
        r = await c.post(
            "/v1/chat/completions",
            json={"model": "alpha", "temperature": 0.2, "messages": [], "max_tokens": 2},
            headers={"authorization": "Bearer client", "x-api-key": "client"},
        )
        assert r.status_code == 200, r.text
        echo = r.json()["echo"]
        assert echo["body"] == {"model": "real-a", "messages": [], "max_tokens": 2, "top_k": 7,
                                "opts": {"deep": True}}  # fmt: skip
        assert "authorization" not in echo["headers"] and "x-api-key" not in echo["headers"]
        assert echo["headers"]["x-forwarded-for"] == "127.0.0.1"
        r = await c.post("/v1/chat/completions", json={"model": "a:hot", "temperature": 0.2})
        assert r.json()["echo"]["body"]["temperature"] == 1.5, "setParamsByID wins, by alias"
        r = await c.post("/v/chat/completions", json={"model": "a"})
        assert r.json()["error"]["message"] == "no route POST /chat/completions", "/v/ is dropped"
        r = await c.post("/v1/embeddings", json={"model": "a", "input": ["x y", "z"]})
        assert len(r.json()["data"]) == 2
        listing = (await c.get("/v1/models")).json()["data"]
        assert {m["id"]: m["status"]["value"] for m in listing} == {"a": "loaded", "b": "unloaded"}
        running = (await c.get("/running")).json()["running"]
        assert [(m["model"], m["state"]) for m in running] == [("a", "ready")]


@pytest.mark.trio
async def test_streaming_and_upstream_passthrough(tmp_path: Path) -> None:
    async with daemon(tmp_path, config()) as (base, _), client(base) as c:
        async with c.stream(
            "POST", "/v1/chat/completions", json={"model": "a", "stream": True, "max_tokens": 5}
        ) as r:
            assert r.status_code == 200
            assert r.headers["x-accel-buffering"] == "no"
            assert r.headers["content-type"].startswith("text/event-stream")
            text = "".join([t async for t in r.aiter_text()])
        assert text.endswith("data: [DONE]\n\n")
        tokens = [e["choices"][0]["delta"].get("content", "") for e in sse_events(text)]
        assert "".join(tokens) == "tok0 tok1 tok2 tok3 tok4 "
        r = await c.get("/upstream/alpha/v1/models?x=1")
        assert r.status_code == 200 and r.json()["data"][0]["object"] == "model"
        r = await c.get("/upstream/a", follow_redirects=False)
        assert r.status_code == 301 and r.headers["location"] == "/upstream/a/"
        r = await c.post("/upstream/a/v1/chat/completions", json={"model": "zzz", "temperature": 1})
        assert r.json()["echo"]["body"] == {"model": "zzz", "temperature": 1}, "never filtered"
        r = await c.get("/upstream/nobody/v1/models")
        assert r.status_code == 404
        r = await c.get("/upstream/b/favicon.ico")
        assert r.status_code == 409 and "upstream.ignorePaths" in r.json()["error"]["message"]
        r = await c.get("/upstream/a/favicon.ico")
        assert r.status_code == 404, "a ready model gets the request (the fake has no such file)"
        assert r.json()["error"]["message"] == "no route GET /favicon.ico"


@pytest.mark.trio
async def test_load_failure_reports_reason_and_log(tmp_path: Path) -> None:
    models = f"""
  crashy:
    cmd: {FAKE} --print-lines 3 --never-healthy --exit-during-start 0.4 --exit-code 9
"""
    async with daemon(tmp_path, config(models)) as (base, _), client(base) as c:
        r = await c.post("/v1/chat/completions", json={"model": "crashy"})
        assert r.status_code == 500
        message = r.json()["error"]["message"]
        assert "startup line 2" in message, message
        r = await c.post("/v1/chat/completions", json={"model": "a"})
        assert r.status_code == 200, "a failed load wedges nothing"


@pytest.mark.trio
async def test_a_child_killed_by_a_signal_is_reported_by_name(tmp_path: Path) -> None:
    """A server dying of SIGILL (a binary built for another CPU) says so, with its real uptime."""
    script = tmp_path / "sigill.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "print('about to die', flush=True)\n"
        "time.sleep(0.3)\n"
        "os.kill(os.getpid(), signal.SIGILL)\n"
    )
    models = f"""
  cpu:
    cmd: {sys.executable} {script} ${{PORT}}
"""
    async with daemon(tmp_path, config(models)) as (base, _), client(base) as c:
        r = await c.post("/v1/chat/completions", json={"model": "cpu"})
        assert r.status_code == 500
        error = r.json()["error"]
        meaning = "illegal instruction: the binary needs CPU features this machine lacks"
        assert f"killed by SIGILL ({meaning}) while starting" in error["message"], error
        assert "about to die" in error["message"], "the log tail comes with it"
        assert "code -4" not in error["message"]
        log = (await c.get("/logs")).text
        lines = [line for line in log.splitlines() if "[cpu] pid" in line]
        assert lines, log
        match = re.search(rf"killed by SIGILL \({meaning}\) ([0-9.]+)s after spawn", lines[-1])
        assert match, lines[-1]
        assert float(match.group(1)) >= 0.3, "the time since spawn, not the time the stop took"


@pytest.mark.trio
async def test_upstream_unreachable_is_502(tmp_path: Path) -> None:
    port = free_port()
    models = f"""
  hollow:
    cmd: {sys.executable} -c "import time; time.sleep(60)"
    proxy: http://127.0.0.1:{port}
    checkEndpoint: none
"""
    async with daemon(tmp_path, config(models)) as (base, _), client(base) as c:
        r = await c.post("/v1/chat/completions", json={"model": "hollow"})
        assert r.status_code == 502
        assert r.json()["error"]["message"].startswith("upstream unreachable")


@pytest.mark.trio
async def test_concurrency_limit_429(tmp_path: Path) -> None:
    models = f"""
  slow:
    cmd: {FAKE} --token-interval 0.02 --tokens 500
    concurrencyLimit: 1
"""
    async with daemon(tmp_path, config(models)) as (base, _), client(base) as c:
        async with c.stream(
            "POST", "/v1/chat/completions", json={"model": "slow", "stream": True}
        ) as first:
            chunks = first.aiter_bytes()  # keep it referenced: a dropped one closes the stream
            await anext(chunks)
            r = await c.post("/v1/chat/completions", json={"model": "slow"})
            assert r.status_code == 429
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"] == {"message": r.json()["error"]["message"],
                                         "type": "rate_limit_error", "param": None,
                                         "code": "concurrency_limit"}  # fmt: skip


@pytest.mark.trio
async def test_upstream_death_mid_stream_ends_cleanly(tmp_path: Path) -> None:
    models = f"""
  fragile:
    cmd: {FAKE} --crash-mid-stream 3 --tokens 50
"""
    async with daemon(tmp_path, config(models)) as (base, d), client(base) as c:
        async with c.stream(
            "POST", "/v1/chat/completions", json={"model": "fragile", "stream": True}
        ) as r:
            assert r.status_code == 200
            text = "".join([t async for t in r.aiter_text()])  # no exception: a clean end
        assert len(sse_events(text)) == 3 and "[DONE]" not in text
        await wait_state(d, "fragile", "failed")
        r = await c.post("/v1/chat/completions", json={"model": "fragile"})
        assert r.status_code == 200, "the next request starts it again"


@pytest.mark.trio
async def test_loading_state_stream(tmp_path: Path) -> None:
    async with daemon(tmp_path, config()) as (base, _), client(base) as c:
        async with c.stream(
            "POST", "/v1/chat/completions", json={"model": "b", "stream": True, "max_tokens": 3}
        ) as r:
            assert r.status_code == 200
            text = "".join([t async for t in r.aiter_text()])
        events = sse_events(text)
        reasoning = "".join(e["choices"][0]["delta"].get("reasoning_content", "") for e in events)
        assert reasoning.startswith("━━━━━\nswapd loading model: b\n")
        assert "Done! (" in reasoning and reasoning.endswith("━━━━━\n \n")
        content = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
        assert content == "tok0 tok1 tok2 "
        assert text.endswith("data: [DONE]\n\n")
        # already loaded: no loading text at all
        async with c.stream(
            "POST", "/v1/chat/completions", json={"model": "b", "stream": True, "max_tokens": 1}
        ) as r:
            text = "".join([t async for t in r.aiter_text()])
        assert "reasoning_content" not in text


@pytest.mark.trio
async def test_loading_state_then_load_failure(tmp_path: Path) -> None:
    models = f"""
  doomed:
    cmd: {FAKE} --print-lines 2 --never-healthy --exit-during-start 0.3
    sendLoadingState: true
"""
    async with daemon(tmp_path, config(models)) as (base, _), client(base) as c:
        async with c.stream(
            "POST", "/v1/chat/completions", json={"model": "doomed", "stream": True}
        ) as r:
            assert r.status_code == 200, "the loading stream had already begun"
            text = "".join([t async for t in r.aiter_text()])
        head, _, tail = text.rpartition("\n\n")
        reasoning = "".join(
            e["choices"][0]["delta"]["reasoning_content"] for e in sse_events(head + "\n\n")
        )
        assert reasoning.startswith("━━━━━\nswapd loading model: doomed\n")
        assert "Done!" in reasoning
        error = json.loads(tail)["error"]
        assert error["code"] == "internal_error" and error["reason"] == "load_failed"
        assert "startup line 1" in error["message"]


@pytest.mark.trio
async def test_model_and_upstream_log_streams(tmp_path: Path) -> None:
    async with daemon(tmp_path, config()) as (base, _), client(base) as c:
        assert (await c.post("/v1/chat/completions", json={"model": "a"})).status_code == 200
        async with c.stream("GET", "/logs/stream/alpha") as r:
            chunks = r.aiter_text()
            first = await anext(chunks)
        assert "fake upstream pid" in first and "listening on" in first
        async with c.stream("GET", "/logs/stream/upstream") as r:
            chunks = r.aiter_text()
            first = await anext(chunks)
        assert "[a] fake upstream pid" in first
        proxy_only = (await c.get("/logs")).text
        assert "[a] started pid" in proxy_only, "logToStdout defaults to proxy"
        assert "[a] fake upstream pid" not in proxy_only


@pytest.mark.trio
@pytest.mark.parametrize(
    ("setting", "proxy_lines", "model_lines"),
    [
        ("proxy", True, False),
        ("upstream", False, True),
        ("both", True, True),
        ("none", False, False),
    ],
)
async def test_log_to_stdout_decides_what_logs_keeps(
    tmp_path: Path, setting: str, proxy_lines: bool, model_lines: bool
) -> None:
    async with (
        daemon(tmp_path, config(top=f"logToStdout: {setting}")) as (base, _),
        client(base) as c,
    ):
        assert (await c.post("/v1/chat/completions", json={"model": "a"})).status_code == 200
        async with c.stream("GET", "/logs/stream/upstream") as r:
            await anext(r.aiter_text())  # the model's lines went through the hub
        text = (await c.get("/logs")).text
        assert ("[a] started pid" in text) == proxy_lines, text
        assert ("[a] fake upstream pid" in text) == model_lines, text
        assert (text == "") == (setting == "none")
