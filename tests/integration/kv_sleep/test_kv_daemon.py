"""KV-cache slots through a whole swapd: an eviction saves, the next swap restores before
the request is relayed, the swap's decision record carries both, a TTL unload and the
shutdown save too."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from swapd.process.events import KvActivity, StateChanged
from swapd.process.kv_files import model_dir_name
from swapd.process.states import ProcessState
from tests.integration.http.conftest import client, daemon, start_port

pytestmark = pytest.mark.trio

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"
MESSAGES = [{"role": "user", "content": "tell me about foxes " * 20}]
WAIT = 15.0


def kv_config(kv_root: Path, extra: str = "") -> str:
    return f"""
healthCheckTimeout: 15
startPort: {start_port()}
kvCache: {{persist: true, dir: {kv_root}, timeout: 10}}
models:
  a:
    cmd: {FAKE} --slot-save-path ${{KV_DIR}}
  b:
    cmd: {FAKE} --slot-save-path ${{KV_DIR}}
{extra}
"""


def tokens(messages: list[dict[str, str]]) -> int:
    return len(json.dumps(messages).split())


async def chat(c: Any, model: str, messages: list[dict[str, str]]) -> dict[str, int]:
    r = await c.post("/v1/chat/completions", json={"model": model, "messages": messages})
    assert r.status_code == 200, r.text
    timings: dict[str, int] = r.json()["timings"]
    return timings


def slot_files(kv_root: Path, model: str) -> list[str]:
    return sorted(p.name for p in (kv_root / model_dir_name(model)).glob("*/slot-*.bin"))


async def test_an_eviction_saves_and_the_next_swap_restores(tmp_path: Path) -> None:
    kv_root = tmp_path / "kv"
    async with daemon(tmp_path, kv_config(kv_root)) as (base, d), client(base) as c:
        assert (await chat(c, "a", MESSAGES))["cache_n"] == 0
        await chat(c, "b", [{"role": "user", "content": "hi"}])  # evicts a: a's slot is saved
        assert slot_files(kv_root, "a") == ["slot-0.bin"]
        more = [
            *MESSAGES,
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "go"},
        ]
        timings = await chat(c, "a", more)  # evicts b, restores a
        assert timings["cache_n"] >= tokens(MESSAGES) - 1

        done = [x for x in d.router.decisions() if x.action == "swap_done"]
        assert [x.model for x in done] == ["a", "b", "a"]
        assert done[0].kv == ()  # nothing was saved for a yet, b never ran
        (saved,) = done[1].kv
        assert (saved.model, saved.action, saved.slots) == ("a", "save", 1)
        assert saved.bytes > 0 and saved.seconds >= 0
        kinds = sorted((k.model, k.action) for k in done[2].kv)
        assert kinds == [("a", "restore"), ("b", "save")]
        restored = next(k for k in done[2].kv if k.action == "restore")
        assert (restored.slots, restored.bytes) == (1, saved.bytes)
    # the shutdown stopped a with a save too (b's was saved when a evicted it)
    assert slot_files(kv_root, "a") == ["slot-0.bin"]
    assert slot_files(kv_root, "b") == ["slot-0.bin"]


async def test_a_ttl_unload_saves(tmp_path: Path) -> None:
    kv_root = tmp_path / "kv"
    extra = f"""
  c:
    cmd: {FAKE} --slot-save-path ${{KV_DIR}}
    ttl: 1
"""
    async with daemon(tmp_path, kv_config(kv_root, extra)) as (base, d), client(base) as c:
        with d.bus.subscribe(topics=("kv",)) as sub:
            await chat(c, "c", MESSAGES)
            with trio.fail_after(WAIT):
                event = await sub.receive()
        assert isinstance(event, KvActivity)
        assert (event.model, event.action, event.slots) == ("c", "save", 1)
        assert slot_files(kv_root, "c") == ["slot-0.bin"]


async def test_a_crash_saves_nothing(tmp_path: Path) -> None:
    kv_root = tmp_path / "kv"
    extra = f"""
  crashy:
    cmd: {FAKE} --slot-save-path ${{KV_DIR}} --crash-after 1
"""
    async with daemon(tmp_path, kv_config(kv_root, extra)) as (base, d), client(base) as c:
        with d.bus.subscribe(topics=("kv", "state")) as sub:
            await chat(c, "crashy", MESSAGES)
            with trio.fail_after(WAIT):
                while True:
                    event = await sub.receive()
                    assert not isinstance(event, KvActivity)
                    if isinstance(event, StateChanged) and event.new is ProcessState.FAILED:
                        break
    assert slot_files(kv_root, "crashy") == []
