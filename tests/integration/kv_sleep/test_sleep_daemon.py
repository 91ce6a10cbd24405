"""Sleep instead of kill through a whole swapd: sleepAfter puts a model to sleep, a request
wakes it (planned like a start: a swap, the same process), a failed wake is a failed load,
and another model's swap evicts a sleeping one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from swapd.process.events import StateChanged
from swapd.process.states import ProcessState
from tests.integration.http.conftest import client, daemon, start_port

pytestmark = pytest.mark.trio

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"
WAIT = 15.0
SLEEPY = """
    sleep: {endpoint: /sleep?level=1}
    wake: {endpoint: /wake_up}
    sleepAfter: 1
"""


def sleep_config(v_options: str = "") -> str:
    return f"""
healthCheckTimeout: 15
startPort: {start_port()}
models:
  v:
    cmd: {FAKE} {v_options}
{SLEEPY}
  b:
    cmd: {FAKE}
"""


async def wait_state(d: Any, model: str, state: ProcessState) -> None:
    with trio.fail_after(WAIT), d.bus.subscribe(topics=("state",)) as sub:
        while d.services.pool[model].state is not state:
            event = await sub.receive()
            assert isinstance(event, StateChanged)


async def chat(c: Any, model: str) -> Any:
    return await c.post("/v1/chat/completions", json={"model": model, "messages": []})


async def test_a_request_wakes_a_sleeping_model(tmp_path: Path) -> None:
    async with daemon(tmp_path, sleep_config()) as (base, d), client(base) as c:
        assert (await chat(c, "v")).status_code == 200
        pid = d.services.pool["v"].pid
        await wait_state(d, "v", ProcessState.ASLEEP)
        assert (await c.get("/running")).json()["running"][0]["state"] == "asleep"
        r = await chat(c, "v")
        assert r.status_code == 200, r.text
        assert d.services.pool["v"].pid == pid  # woken, not started again
        swaps = [x for x in d.router.decisions() if x.action == "swap_done" and x.model == "v"]
        assert [x.reason for x in swaps] == ["ready", "ready"]  # the wake was a swap


async def test_a_failed_wake_is_a_failed_load(tmp_path: Path) -> None:
    async with daemon(tmp_path, sleep_config("--wake-fail")) as (base, d), client(base) as c:
        assert (await chat(c, "v")).status_code == 200
        await wait_state(d, "v", ProcessState.ASLEEP)
        r = await chat(c, "v")
        assert r.status_code == 500, r.text
        assert r.json()["error"]["reason"] == "load_failed" and "wake failed" in r.text
        assert d.services.pool["v"].state is ProcessState.FAILED


async def test_a_swap_to_another_model_stops_a_sleeping_one(tmp_path: Path) -> None:
    async with daemon(tmp_path, sleep_config()) as (base, d), client(base) as c:
        assert (await chat(c, "v")).status_code == 200
        await wait_state(d, "v", ProcessState.ASLEEP)
        assert (await chat(c, "b")).status_code == 200
        assert d.services.pool["v"].state is ProcessState.STOPPED
        done = [x for x in d.router.decisions() if x.action == "swap" and x.model == "b"]
        assert done[0].evict == ("v",)
