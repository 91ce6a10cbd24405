"""Sleep in the history, through a whole swapd with a state directory and swapctl as a real
process: B's swap names A as slept, A's next swap is a wake; `swapctl stats` counts them;
and after a restart on the same state directory, `swapctl models` still shows A's asleep
footprint and wake time measured before it (the planner's books read them back)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swapd.daemon import Daemon
from swapd.process.states import ProcessState
from tests.integration.history.test_daemon_history import (
    flushed,
    next_record,
    swapctl_json,
    swapd,
)
from tests.integration.kv_sleep.test_budget_sleep_daemon import budget_config

pytestmark = pytest.mark.trio


def model_json(models: Any, model_id: str) -> dict[str, Any]:
    rows = models["models"] if isinstance(models, dict) else models
    found: dict[str, Any] = next(m for m in rows if m["id"] == model_id)
    return found


async def chat(c: Any, sub: Any, model: str) -> None:
    r = await c.post("/v1/chat/completions", json={"model": model})
    assert r.status_code == 200, r.text
    await next_record(sub)


async def test_slept_and_woken_in_the_history_and_measured_across_a_restart(
    tmp_path: Path,
) -> None:
    # learn: true so A's asleep readings count; --hold-mib: A holds memory it drops asleep.
    text = budget_config("--hold-mib 64").replace("learn: false", "learn: true")
    state = tmp_path / "state"
    sock = tmp_path / "control.sock"
    d: Daemon
    async with swapd(tmp_path, text, state) as (d, c, sub):
        await chat(c, sub, "A")
        await chat(c, sub, "B")
        assert d.services.pool["A"].state is ProcessState.ASLEEP
        assert d.meter is not None
        await d.meter.next_pass()  # a reading of A asleep
        asleep_peaks = dict(d.meter.live_asleep_peaks("A"))
        assert asleep_peaks.get("ram", 0) > 0
        await chat(c, sub, "A")  # wakes A, stops B
        await flushed(d)

        history = await swapctl_json(sock, "history", "--kind", "swap")
        swaps = {r["swap_id"]: r for r in history}
        to_b = next(r for r in swaps.values() if r["target"] == "B")
        assert (to_b["slept"], to_b["evicted"], to_b["wake"]) == (["A"], [], False)
        woke = max((r for r in swaps.values() if r["target"] == "A"), key=lambda r: r["start"])
        first = min((r for r in swaps.values() if r["target"] == "A"), key=lambda r: r["start"])
        assert (woke["wake"], woke["evicted"], woke["slept"]) == (True, ["B"], [])
        assert first["wake"] is False and woke["result"] == "ok"

        stats = {m["model"]: m for m in (await swapctl_json(sock, "stats"))["models"]}
        assert (stats["A"]["loads"], stats["A"]["wakes"], stats["A"]["sleeps"]) == (1, 1, 1)
        assert stats["A"]["wake_p50_s"] == pytest.approx(woke["load_s"])
        assert (stats["B"]["loads"], stats["B"]["wakes"], stats["B"]["sleeps"]) == (1, 0, 0)

        before = model_json(await swapctl_json(sock, "models"), "A")["footprint"]
        # A is awake again: no reading since counts as asleep.
        assert before["asleep_measured"]["ram"] == d.meter.live_asleep_peaks("A")["ram"]
        assert before["asleep_measured"]["ram"] >= asleep_peaks["ram"]
        assert before["wake_s"] is not None and before["wake_s"] > 0
    assert d.runs is not None and d.runs.written >= 1, "A's run was written at the stop"

    async with swapd(tmp_path, text, state) as (d, c, sub):
        assert d.services.pool["A"].state is ProcessState.STOPPED
        after = model_json(await swapctl_json(sock, "models"), "A")["footprint"]
        assert after["asleep_measured"] == before["asleep_measured"]
        assert after["wake_s"] == pytest.approx(before["wake_s"])
        # What the planner prices A's sleep at: the wake measured before the restart.
        assert d.runs is not None
        assert d.runs.books.costs.median_wake("A") == pytest.approx(before["wake_s"])
        # The history of the earlier run is there too.
        history = await swapctl_json(sock, "history", "--kind", "swap", "--model", "B")
        assert [r["slept"] for r in history if r["target"] == "B"] == [["A"]]
