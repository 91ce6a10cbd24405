"""KV-cache figures in the history of a whole swapd (fake llama-servers with slots): a swap
that evicts a model keeps its save, the swap back keeps the restore, the exits keep the
save made before them (a TTL stop too), as the control socket and `swapctl history` give
them; the shutdown's saves too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from swapd.daemon import Daemon
from swapd.history.database import Database
from swapd.history.paths import database_path
from swapd.history.queries import HistoryQuery
from swapd.process.events import ProcessExited
from tests.integration.history.test_daemon_history import swapctl, swapctl_json, swapd
from tests.integration.kv_sleep.test_kv_daemon import FAKE, MESSAGES, chat, kv_config

pytestmark = pytest.mark.trio

WAIT = 20.0


async def recorded(d: Daemon) -> None:
    """Every event published so far is in the history file: the recorder has taken what
    the bus gave it (every task waits again) and the store has written it."""
    assert d.recorder is not None and d.recorder.store is not None
    with trio.fail_after(WAIT):
        await trio.testing.wait_all_tasks_blocked()
        await d.recorder.store.flushed()


def swap_to(history: list[dict[str, Any]], target: str) -> list[dict[str, Any]]:
    """The swaps to `target`, oldest first."""
    return [h for h in reversed(history) if h["kind"] == "swap" and h["target"] == target]


async def test_swaps_and_exits_keep_their_kv_figures(tmp_path: Path) -> None:
    kv_root = tmp_path / "kv"
    extra = f"""
  c:
    cmd: {FAKE} --slot-save-path ${{KV_DIR}}
    ttl: 1
"""
    sock = tmp_path / "control.sock"
    async with swapd(tmp_path, kv_config(kv_root, extra)) as (d, c, _sub):
        await chat(c, "a", MESSAGES)
        await chat(c, "b", [{"role": "user", "content": "hi"}])  # evicts a: a's slot is saved
        await chat(c, "a", [*MESSAGES, {"role": "user", "content": "go"}])  # saves b, restores a
        await recorded(d)

        history = await swapctl_json(sock, "history")
        first_a, back_to_a = swap_to(history, "a")
        (to_b,) = swap_to(history, "b")
        assert first_a["kv"] == []  # nothing saved yet, nothing evicted
        (saved,) = to_b["kv"]
        assert (saved["model"], saved["action"], saved["slots"]) == ("a", "save", 1)
        assert saved["bytes"] > 0 and saved["seconds"] >= 0
        assert (saved["timed_out"], saved["errors"]) == (False, [])
        by_action = {k["action"]: k for k in back_to_a["kv"]}
        assert [k["action"] for k in back_to_a["kv"]] == ["save", "restore"]
        assert (by_action["save"]["model"], by_action["save"]["slots"]) == ("b", 1)
        restored = by_action["restore"]
        assert (restored["model"], restored["slots"], restored["bytes"]) == (
            "a", 1, saved["bytes"],
        )  # fmt: skip

        exits = await swapctl_json(sock, "history", "--kind", "exit", "--model", "a")
        (evicted,) = exits
        assert evicted["reason"] == "evicted for b" and evicted["kv"] == saved

        code, out, err = await swapctl(sock, "history")
        assert code == 0, err
        assert "kv: saved 1 slot" in out and "restored 1 in" in out

        # A stop outside any swap: c's TTL. Its exit keeps the save.
        with d.bus.subscribe(topics=("exit",)) as exits_sub:
            await chat(c, "c", MESSAGES)
            with trio.fail_after(WAIT):
                while True:
                    event = await exits_sub.receive()
                    if isinstance(event, ProcessExited) and event.model == "c":
                        break
        assert "TTL" in event.reason
        await recorded(d)
        (ttl_exit,) = await swapctl_json(sock, "history", "--kind", "exit", "--model", "c")
        assert ttl_exit["reason"] == event.reason
        assert (ttl_exit["kv"]["action"], ttl_exit["kv"]["slots"]) == ("save", 1)
        assert ttl_exit["kv"]["bytes"] > 0
        await chat(c, "a", MESSAGES)  # running at the shutdown
    # The daemon has stopped: the shutdown saved a's slots, and that is in its exit record.
    reader = Database.open_reader(database_path(tmp_path / "state"))
    try:
        (last_a, *_) = reader.history(HistoryQuery(kinds=("exit",), model="a"))
    finally:
        reader.close()
    assert last_a.reason == "shutdown"
    assert last_a.kv is not None and (last_a.kv.action, last_a.kv.slots) == ("save", 1)
