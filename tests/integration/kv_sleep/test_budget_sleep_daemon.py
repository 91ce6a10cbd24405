"""A budget swap that puts one model to sleep to make room for another, through a whole
swapd and the fake upstream's vLLM sleep API: the slept model keeps its process and wakes
on its next request; one that fails to go to sleep is stopped instead."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from swapctl import protocol as p
from swapctl import render
from swapctl.client import connect
from swapd.process.states import ProcessState
from swapd.router.build import footprint_table
from swapd.router.events import RequestEvent
from swapd.router.footprints import Learned
from tests.integration.http.conftest import client, daemon, start_port
from tests.integration.kv_sleep.test_sleep_daemon import WAIT, chat, wait_state

pytestmark = pytest.mark.trio

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"


def budget_config(a_options: str = "") -> str:
    """vram 10 GiB: A (8 GiB, 1 GiB asleep, vLLM's sleep API) and B (8 GiB) never fit
    together awake; A asleep and B do."""
    return f"""
healthCheckTimeout: 15
startPort: {start_port()}
resources:
  capacity: {{vram: 10GiB}}
  learn: false
models:
  A:
    cmd: {FAKE} {a_options}
    sleep: {{endpoint: /sleep?level=1}}
    wake: {{endpoint: /wake_up}}
    resources: {{vram: 8GiB, asleep: {{vram: 1GiB}}}}
  B:
    cmd: {FAKE}
    resources: {{vram: 8GiB}}
routing:
  router: {{use: budget}}
"""


def swaps_to(d: Any, model: str) -> list[Any]:
    return [x for x in d.router.decisions() if x.action == "swap" and x.model == model]


async def test_a_swap_sleeps_a_to_make_room_for_b_and_a_wakes_in_the_same_process(
    tmp_path: Path,
) -> None:
    async with daemon(tmp_path, budget_config()) as (base, d), client(base) as c:
        pool = d.services.pool
        assert (await chat(c, "A")).status_code == 200
        pid = pool["A"].pid
        r = await chat(c, "B")
        assert r.status_code == 200, r.text
        assert pool["A"].state is ProcessState.ASLEEP, "put to sleep, not stopped"
        assert pool["A"].pid == pid and pool["B"].state is ProcessState.READY
        (to_b,) = swaps_to(d, "B")
        assert (to_b.evict, to_b.sleep) == ((), ("A",))
        assert "sleeps A (frees vram 7GiB)" in to_b.reason
        states = (await c.get("/running")).json()["running"]
        assert {m["model"]: m["state"] for m in states} == {"A": "asleep", "B": "ready"}

        r = await chat(c, "A")
        assert r.status_code == 200, r.text
        assert pool["A"].pid == pid and pool["A"].starts == 1, "woken, not spawned again"
        assert pool["A"].state is ProcessState.READY
        assert pool["B"].state is ProcessState.STOPPED
        last = swaps_to(d, "A")[-1]
        assert (last.evict, last.sleep) == (("B",), ())
        wake = d.runs.books.costs.median_wake("A")
        assert wake is not None and 0 < wake < 15, "the wake was timed: it prices the next sleep"


async def test_a_model_that_fails_to_go_to_sleep_is_stopped_instead(tmp_path: Path) -> None:
    config = budget_config("--sleep-fail")
    async with daemon(tmp_path, config) as (base, d), client(base) as c:
        pool = d.services.pool
        assert (await chat(c, "A")).status_code == 200
        r = await chat(c, "B")
        assert r.status_code == 200, r.text
        (to_b,) = swaps_to(d, "B")
        assert to_b.sleep == ("A",), "the plan was a sleep"
        await wait_state(d, "A", ProcessState.STOPPED)
        assert pool["B"].state is ProcessState.READY


async def test_the_meter_learns_what_a_sleeping_model_still_takes(tmp_path: Path) -> None:
    config = budget_config("--hold-mib 64").replace("learn: false", "learn: true")
    async with daemon(tmp_path, config) as (base, d), client(base) as c:
        assert (await chat(c, "A")).status_code == 200
        await d.meter.next_pass()  # a reading of A awake
        assert (await chat(c, "B")).status_code == 200
        assert d.services.pool["A"].state is ProcessState.ASLEEP
        await d.meter.next_pass()  # and one of A asleep
        awake, asleep = d.meter.live_peaks("A"), d.meter.live_asleep_peaks("A")
        assert asleep["ram"] < awake["ram"] - (48 << 20), "the 64 MiB it held are released"
        learned = Learned(live=d.meter.live_peaks, live_asleep=d.meter.live_asleep_peaks)
        table = footprint_table(d.loaded, learned)
        assert table is not None
        assert table.asleep_planned("A")["ram"] == -(-asleep["ram"] * 11 // 10)
        assert table.asleep_planned("A")["vram"] == 1 << 30, "declared"


REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "examples" / "budget-sleep.yaml"


def control_view(sock: Path) -> tuple[p.Explanation, list[p.ModelInfo], p.Status]:
    with connect(sock) as c:
        return c.explain("b"), c.models(), c.status()


def control_decisions(sock: Path) -> list[p.Decision]:
    with connect(sock) as c:
        return c.decisions()


async def test_the_example_through_the_control_socket(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("python3", sys.executable)
    text = f"startPort: {start_port()}\nhealthCheckTimeout: 15\n" + text
    sock = tmp_path / "control.sock"
    async with daemon(tmp_path, text) as (base, d), client(base) as c:
        with d.bus.subscribe(topics=("request",)) as sub:
            assert (await chat(c, "v")).status_code == 200
            with trio.fail_after(WAIT):  # v is idle once its request is done
                while True:
                    event = await sub.receive()
                    if isinstance(event, RequestEvent) and event.phase == "done":
                        break
        x, models, _ = await trio.to_thread.run_sync(control_view, sock)
        assert (x.action, x.evict, x.sleep) == ("swap", [], ["v"])
        assert "sleeps v (frees vram 7GiB)" in x.why
        assert "sleep    v" in render.explanation(x)
        v = next(m for m in models if m.id == "v")
        assert v.footprint is not None and v.footprint.asleep is not None
        assert v.footprint.asleep["vram"] == 1 << 30
        assert (await chat(c, "b")).status_code == 200
        _, _, status = await trio.to_thread.run_sync(control_view, sock)
        assert [(u.resource, u.used) for u in status.capacity] == [("vram", 9 << 30)]
        decisions = await trio.to_thread.run_sync(control_decisions, sock)
        (swap,) = [x for x in decisions if x.action == "swap" and x.model == "b"]
        assert swap.sleep == ["v"] and swap.evict == []
        assert (await chat(c, "v")).status_code == 200
        assert d.services.pool["v"].starts == 1 and d.services.pool["b"].state is (
            ProcessState.STOPPED
        )
